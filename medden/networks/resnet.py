"""A full-resolution ResNet denoiser: the stage-2 network of unpaired flow-prior denoising."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

from medden.core.validation import check_int

__all__ = ["ResNetDenoiser"]


class ResNetDenoiser(nn.Module):
    """A head convolution, ``n_blocks`` residual blocks and a tail convolution at full
    resolution, predicting the correction added to the input (Kattakinda & Rajagopalan
    train "a ResNet" as the denoiser; this is that shape, without pooling).

    Each block is MONAI's :class:`~monai.networks.blocks.ResidualUnit`: two 3 x 3
    convolutions with ReLU and an identity skip (no normalisation, so outputs keep the input's
    intensity scale). No pooling, so any ``H, W`` works.

    Args:
        in_channels: image channels (the output has the same).
        features: width of the blocks.
        n_blocks: residual blocks, >= 1.

    Shapes:
        ``(B, in_channels, H, W)`` float (nominally [0, 1]) to the same shape and units.
    """

    def __init__(self, in_channels: int = 1, features: int = 64, n_blocks: int = 8) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels")
        features = check_int(features, "features")
        n_blocks = check_int(n_blocks, "n_blocks")
        self.head = Convolution(2, in_channels, features, act="relu", norm=None)
        self.blocks = nn.Sequential(*(ResidualUnit(2, features, features, act="relu", norm=None)
                                      for _ in range(n_blocks)))
        self.tail = Convolution(2, features, in_channels, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x``: ``(B, C, H, W)`` float to the same shape, ``x + correction``."""
        return x + self.tail(self.blocks(self.head(x)))
