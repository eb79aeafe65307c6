"""The convolutional autoencoder baseline of supervised denoising (Solomon 2021, after Keras)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from monai.networks.blocks import Convolution
from torch import nn

from medden.networks.padding import check_widths, pad_to_multiple
from medden.core.validation import check_int

__all__ = ["ConvAutoencoder"]


class ConvAutoencoder(nn.Module):
    """A plain convolutional autoencoder: the baseline the other supervised denoisers beat.

    Encoder: for each width in ``features``, a 3x3 convolution + ReLU and a 2x2 max-pool.
    Decoder: for each width in reverse, a 3x3 stride-2 transposed convolution + ReLU; then a
    3x3 convolution to ``out_channels`` with no activation. It is not residual: the image is
    rebuilt from the bottleneck, which is why it blurs detail (the seed's PSNR 31.2 dB against
    CBDNet's 35.3 dB). Inputs are replicate-padded to a multiple of ``2 ** len(features)``
    and the output cropped back, so any size works.

    Args:
        in_channels: image channels.
        out_channels: output channels; None means ``in_channels``.
        features: encoder widths, one per 2x2 pooling; the decoder mirrors them.

    Shapes:
        ``(B, in_channels, H, W)`` float (any range; nominally [0, 1]) to
        ``(B, out_channels, H, W)`` float, unbounded (linear output layer).
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None,
                 features: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels")
        out_channels = in_channels if out_channels is None else check_int(out_channels, "out_channels")
        features = check_widths(features, "features")
        self.multiple = 2 ** len(features)
        widths = (in_channels, *features)
        self.encoder = nn.Sequential(*(nn.Sequential(Convolution(2, a, b, act="relu", norm=None), nn.MaxPool2d(2))
                                       for a, b in pairwise(widths)))
        decoder_widths = (features[-1], *reversed(features))
        self.decoder = nn.Sequential(*(Convolution(2, a, b, strides=2, is_transposed=True, act="relu", norm=None)
                                       for a, b in pairwise(decoder_widths)))
        self.head = Convolution(2, features[0], out_channels, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x``: ``(B, in_channels, H, W)`` float to ``(B, out_channels, H, W)``."""
        padded, top, left = pad_to_multiple(x, self.multiple)
        out = self.head(self.decoder(self.encoder(padded)))
        return out[..., top:top + x.shape[-2], left:left + x.shape[-1]]
