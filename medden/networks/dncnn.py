"""DnCNN: the residual-learning denoising CNN of Zhang et al. (2017)."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from torch import nn
from medden.core.validation import check_int


__all__ = ["DnCNN"]


class DnCNN(nn.Module):
    """Zhang et al., "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image
    Denoising", IEEE TIP 2017.

    A plain stack of 3x3 convolutions at full resolution: conv + ReLU, then ``depth - 2``
    layers of conv + BatchNorm + ReLU, then a conv back to the image channels. The stack
    predicts the noise ``v`` and the network returns ``x - v`` (residual learning), so no
    pooling and no padding are needed. Convolutions followed by BatchNorm have no bias (the
    norm's shift replaces it). With the defaults and one channel: 556,097 parameters, BatchNorm
    scales and shifts included (the paper's 17-layer grey-scale model).

    Args:
        in_channels: image channels (the output has the same).
        depth: number of convolution layers, >= 2.
        features: width of the hidden layers.
        batch_norm: put BatchNorm between the hidden convolutions and their ReLU; without it
            the hidden convolutions have a bias instead.

    Shapes:
        ``(B, in_channels, H, W)`` float (any range; nominally [0, 1]) to the same shape and
        units: the input minus the predicted noise.
    """

    def __init__(self, in_channels: int = 1, depth: int = 17, features: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels")
        depth = check_int(depth, "depth", minimum=2, hint="DnCNN needs an input and an output convolution")
        features = check_int(features, "features")
        norm = "batch" if batch_norm else None
        layers = [Convolution(2, in_channels, features, act="relu", norm=None)]
        layers += [Convolution(2, features, features, act="relu", norm=norm, bias=not batch_norm)
                   for _ in range(depth - 2)]
        layers.append(Convolution(2, features, in_channels, conv_only=True))
        self.noise = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x``: ``(B, C, H, W)`` float to the same shape, ``x - predicted_noise``."""
        return x - self.noise(x)
