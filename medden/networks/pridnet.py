"""PRIDNet: the pyramid real-image denoising network of Zhao et al. (2019)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import ChannelSELayer, Convolution
from monai.networks.nets import UNet
from torch import nn

from medden.networks.padding import check_widths, pad_to_multiple
from medden.core.validation import check_int

__all__ = ["KernelSelectingModule", "PRIDNet"]

#: kernel sizes of the kernel-selecting module's three branches
KERNEL_SIZES = (3, 5, 7)


class KernelSelectingModule(nn.Module):
    """PRIDNet's stage 3: fuse features with an attention-weighted choice of kernel sizes.

    Three parallel conv + ReLU branches with kernels 3, 5 and 7 keep the channel count; their
    sum is squeezed by global average pooling, a 1x1 conv to ``channels // reduction`` (at
    least 1) + ReLU and a 1x1 conv to three attention vectors, which a softmax across the
    branches turns into per-channel weights; the output is the weighted sum of the branches.

    Args:
        channels: channels in and out.
        reduction: squeeze ratio of the attention.

    Shapes:
        ``(B, channels, H, W)`` float to the same shape.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.branches = nn.ModuleList(Convolution(2, channels, channels, kernel_size=k, act="relu", norm=None)
                                      for k in KERNEL_SIZES)
        hidden = max(channels // reduction, 1)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), Convolution(2, channels, hidden, kernel_size=1,
                                                                            act="relu", norm=None),
                                       Convolution(2, hidden, len(KERNEL_SIZES) * channels, kernel_size=1,
                                                   conv_only=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = torch.stack([branch(x) for branch in self.branches], dim=1)  # (B, 3, C, H, W)
        logits = self.attention(branches.sum(dim=1))  # (B, 3 * C, 1, 1)
        weights = torch.softmax(logits.view(x.shape[0], len(KERNEL_SIZES), x.shape[1], 1, 1), dim=1)
        return (weights * branches).sum(dim=1)


class PRIDNet(nn.Module):
    """Zhao et al., "Pyramid Real Image Denoising Network", IEEE VCIP 2019.

    1. Noise estimation: ``estimation_layers`` 3x3 conv + ReLU layers of ``features``
       channels, then channel attention (global average pool, 1x1 conv squeeze, ReLU, 1x1
       conv, sigmoid, rescale: MONAI's ``ChannelSELayer``).
    2. Multi-scale denoising: the stage-1 features are average-pooled by each factor in
       ``pool_sizes``, each scale runs its own small U-Net (MONAI ``UNet``, widths
       ``level_channels``, stride-2 convolutions, concatenated skips, ReLU, no
       normalisation), is upsampled back bilinearly, and all scales are concatenated with
       the stage-1 features.
    3. Feature fusion: a :class:`KernelSelectingModule` on the concatenation, then a 3x3 conv
       to the image channels.

    Unlike the paper, which outputs the image directly, the output is residual (``x`` plus
    the stage-3 output): an untrained network starts near the identity, intensities are
    kept, and training converges faster. The pyramid runs on the stage-1 features
    replicate-padded to a multiple of ``lcm(pool_sizes) * 2 ** (len(level_channels) - 1)``
    (64 by default), cropped back before fusion, so any size works.

    Args:
        in_channels: image channels (the output has the same).
        features: width of stage 1 and of each scale's U-Net output.
        estimation_layers: convolutions in stage 1.
        pool_sizes: average-pooling factors of the pyramid's scales.
        level_channels: widths of each scale's U-Net, >= 2 entries; None means
            ``(features, 2 * features, 4 * features)``.
        reduction: squeeze ratio of the channel attention and the kernel-selecting module.

    Shapes:
        ``(B, in_channels, H, W)`` float (any range; nominally [0, 1]) to the same shape and
        units.
    """

    def __init__(self, in_channels: int = 1, features: int = 32, estimation_layers: int = 4,
                 pool_sizes: Sequence[int] = (1, 2, 4, 8, 16), level_channels: Sequence[int] | None = None,
                 reduction: int = 4) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels")
        features = check_int(features, "features")
        estimation_layers = check_int(estimation_layers, "estimation_layers")
        self.pool_sizes = check_widths(pool_sizes, "pool_sizes")
        level_channels = check_widths((features, 2 * features, 4 * features) if level_channels is None
                                      else level_channels, "level_channels", min_length=2)
        reduction = check_int(reduction, "reduction", hint="pass 1 for no squeeze")
        self.multiple = math.lcm(*self.pool_sizes) * 2 ** (len(level_channels) - 1)
        self.estimation = nn.Sequential(
            *(Convolution(2, in_channels if i == 0 else features, features, act="relu", norm=None)
              for i in range(estimation_layers)),
            ChannelSELayer(2, features, r=reduction if features // reduction >= 1 else features))
        self.levels = nn.ModuleList(
            UNet(2, features, features, channels=level_channels, strides=(2,) * (len(level_channels) - 1),
                 act="relu", norm=None) for _ in self.pool_sizes)
        fused = features * (len(self.pool_sizes) + 1)
        self.fusion = KernelSelectingModule(fused, reduction)
        self.tail = Convolution(2, fused, in_channels, conv_only=True)

    def _pyramid(self, features: torch.Tensor) -> list[torch.Tensor]:
        padded, top, left = pad_to_multiple(features, self.multiple)
        scales = []
        for pool, unet in zip(self.pool_sizes, self.levels):
            level = unet(F.avg_pool2d(padded, pool) if pool > 1 else padded)
            if pool > 1:
                level = F.interpolate(level, size=padded.shape[-2:], mode="bilinear", align_corners=False)
            scales.append(level[..., top:top + features.shape[-2], left:left + features.shape[-1]])
        return scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x``: ``(B, C, H, W)`` float to the same shape, ``x + correction``."""
        if x.ndim != 4:
            raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}; add dimensions with x[None].")
        features = self.estimation(x)
        fused = self.fusion(torch.cat([features, *self._pyramid(features)], dim=1))
        return x + self.tail(fused)
