"""RIDNet: the residual-on-residual real-image denoiser of Anwar & Barnes (2019)."""

from __future__ import annotations

import torch
from monai.networks.blocks import ChannelSELayer, Convolution
from torch import nn
from medden.core.validation import check_int


__all__ = ["EnhancementAttentionModule", "RIDNet"]


def _conv(a: int, b: int, kernel_size: int = 3, dilation: int = 1, relu: bool = True) -> Convolution:
    return Convolution(2, a, b, kernel_size=kernel_size, dilation=dilation, act="relu" if relu else None, norm=None,
                       conv_only=not relu)


class EnhancementAttentionModule(nn.Module):
    """RIDNet's EAM: merge-and-run, residual block, enhanced residual block, feature attention.

    1. Two branches of dilated 3x3 conv + ReLU (dilations 1 then 2, and 3 then 4), their
       outputs concatenated, a 3x3 conv + ReLU, plus the module input (merge-and-run).
    2. A residual block: conv-ReLU-conv, plus its input, then ReLU.
    3. An enhanced residual block: conv-ReLU-conv-ReLU-1x1 conv, plus its input, then ReLU.
    4. Feature attention: global average pool, squeeze to ``features // reduction`` (at
       least 1) channels, ReLU, expand, sigmoid, rescale the channels (MONAI's
       ``ChannelSELayer``, whose linear layers equal the paper's 1x1 convolutions on the
       pooled vector).
    5. Plus the module input (the long skip).

    Args:
        features: channels in and out.
        reduction: squeeze ratio of the feature attention.

    Shapes:
        ``(B, features, H, W)`` float to the same shape.
    """

    def __init__(self, features: int = 64, reduction: int = 16) -> None:
        super().__init__()
        self.branch1 = nn.Sequential(_conv(features, features, dilation=1), _conv(features, features, dilation=2))
        self.branch2 = nn.Sequential(_conv(features, features, dilation=3), _conv(features, features, dilation=4))
        self.merge = _conv(2 * features, features)
        self.residual = nn.Sequential(_conv(features, features), _conv(features, features, relu=False))
        self.enhanced = nn.Sequential(_conv(features, features), _conv(features, features),
                                      _conv(features, features, kernel_size=1, relu=False))
        self.attention = ChannelSELayer(2, features, r=reduction if features // reduction >= 1 else features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        merged = self.merge(torch.cat([self.branch1(x), self.branch2(x)], dim=1)) + x
        features = torch.relu(self.residual(merged) + merged)
        features = torch.relu(self.enhanced(features) + features)
        return self.attention(features) + x


class RIDNet(nn.Module):
    """Anwar & Barnes, "Real Image Denoising with Feature Attention", ICCV 2019.

    Feature extraction (one 3x3 conv to ``features``), ``n_blocks`` enhancement attention
    modules (:class:`EnhancementAttentionModule`), reconstruction (one 3x3 conv back to the
    image channels), plus the input (global skip): the network learns the residual. Runs at
    full resolution, so any size works without padding. The paper trains with L1; the seed
    uses MSE.

    Args:
        in_channels: image channels (the output has the same).
        features: width of every hidden layer.
        n_blocks: number of enhancement attention modules (the paper uses 4).
        reduction: squeeze ratio of the feature attention (``features // reduction``
            channels, at least 1).

    Shapes:
        ``(B, in_channels, H, W)`` float (any range; nominally [0, 1]) to the same shape and
        units: ``x`` plus the reconstructed correction.
    """

    def __init__(self, in_channels: int = 1, features: int = 64, n_blocks: int = 4, reduction: int = 16) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels")
        features = check_int(features, "features")
        n_blocks = check_int(n_blocks, "n_blocks")
        reduction = check_int(reduction, "reduction", hint="pass 1 for no squeeze, 16 as in the paper")
        self.head = Convolution(2, in_channels, features, conv_only=True)
        self.blocks = nn.Sequential(*(EnhancementAttentionModule(features, reduction) for _ in range(n_blocks)))
        self.tail = Convolution(2, features, in_channels, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x``: ``(B, C, H, W)`` float to the same shape, ``x + correction``."""
        return x + self.tail(self.blocks(self.head(x)))
