"""Reconstruction of undersampled MRI: an image network followed by data consistency."""

from __future__ import annotations

import torch
from torch import nn

from medden.core.fourier import data_consistency

__all__ = ["KspaceDenoiser"]


class KspaceDenoiser(nn.Module):
    """Zero-filled image in, reconstruction out, with the measured frequencies kept exactly.

    Wraps an image-to-image network (the trained weights live in ``net``; this wrapper has no
    parameters of its own, so a checkpoint of ``net`` loads into it via ``.net``). Called
    with only an image it is ``net``; with the measured k-space and its mask it applies
    :func:`medden.core.fourier.data_consistency` to the network's output.

    Args:
        net: ``(B, C, H, W) -> (B, C, H, W)`` network.
        is_complex: images are complex, as channels ``(B, 2C, H, W)`` (real parts, then
            imaginary parts); else real ``(B, C, H, W)``.

    ``forward(image, kspace=None, mask=None)``: ``image`` the zero-filled reconstruction,
    ``kspace`` ``(B, C, H, W, 2)`` the raw measured samples, ``mask`` ``(B, 1, H, W)`` 0/1;
    returns ``image``'s shape and dtype.
    """

    def __init__(self, net: nn.Module, is_complex: bool = False) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}.")
        self.net = net
        self.is_complex = bool(is_complex)

    def forward(self, image: torch.Tensor, kspace: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        output = self.net(image)
        if kspace is None:
            return output
        if mask is None:
            raise ValueError("data consistency needs the sampling mask with the measured k-space; pass mask=.")
        return data_consistency(output, kspace, mask, self.is_complex)
