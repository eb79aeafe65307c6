"""Residual learning wrapper: the inner network predicts the correction to its input."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResidualDenoiser"]


class ResidualDenoiser(nn.Module):
    """``y -> y + net(y)``: a denoiser that learns the residual, not the image.

    Residual learning (DnCNN) makes an untrained network the identity instead of a random
    map, which speeds up training and keeps intensities and detail the network has not learnt
    to change. TorchScript-compatible whenever ``net`` is.

    Args:
        net: any module mapping ``(B, C, *spatial)`` to the same shape, e.g.
            ``monai.networks.nets.BasicUNet(spatial_dims=2, in_channels=1, out_channels=1)``.

    Shapes:
        input ``(B, C, *spatial)`` float, output the same shape and dtype, same value range as
        the input plus the learnt correction.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}.")
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        correction = self.net(x)
        if correction.shape != x.shape:
            raise ValueError(
                "the inner network must keep the input shape " + str(x.shape) + ", got " + str(correction.shape)
                + "; give it out_channels equal to in_channels, and pad inputs to a size it accepts."
            )
        return x + correction
