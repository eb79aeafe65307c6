"""CBDNet: noise-level estimation plus non-blind U-Net denoising (Guo et al. 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

from medden.networks.padding import check_widths, pad_to_multiple
from medden.core.validation import check_int

__all__ = ["AdditiveSkipUNet", "CBDNet"]


def _convs(a: int, b: int, count: int) -> nn.Sequential:
    """``count`` 3x3 conv + ReLU layers, the first from ``a`` to ``b`` channels."""
    return nn.Sequential(*(Convolution(2, a if i == 0 else b, b, act="relu", norm=None) for i in range(count)))


class AdditiveSkipUNet(nn.Module):
    """CBDNet's denoising U-Net: 2x2 average-pool down, 2x2 transposed conv up, skips added.

    Level ``l`` runs ``convs[l]`` 3x3 conv + ReLU layers at width ``features[l]`` on the way
    down and again on the way up (the last level is the bottom); the upsampled features are
    added to the encoder's, not concatenated. A final 3x3 conv (no activation) maps to
    ``out_channels``. With ``features=(64, 128, 256)`` and ``convs=(2, 3, 6)`` this is the
    paper's CNN_D.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        features: width per level; ``len(features) - 1`` poolings, so inputs must be
            divisible by ``2 ** (len(features) - 1)``.
        convs: convolutions per level, same length as ``features``.

    Shapes:
        ``(B, in_channels, H, W)`` float to ``(B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, features: Sequence[int] = (64, 128, 256),
                 convs: Sequence[int] = (2, 3, 6)) -> None:
        super().__init__()
        features = check_widths(features, "features", min_length=2)
        convs = check_widths(convs, "convs", length=len(features))
        self.divisor = 2 ** (len(features) - 1)
        widths = (in_channels, *features)
        self.encoders = nn.ModuleList(_convs(widths[i], features[i], convs[i]) for i in range(len(features)))
        self.pool = nn.AvgPool2d(2)
        # decoder modules are stored deepest first, the order they run in
        self.ups = nn.ModuleList(Convolution(2, features[i + 1], features[i], strides=2, kernel_size=2, padding=0,
                                             output_padding=0, is_transposed=True, conv_only=True)
                                 for i in reversed(range(len(features) - 1)))
        self.decoders = nn.ModuleList(_convs(features[i], features[i], convs[i])
                                      for i in reversed(range(len(features) - 1)))
        self.tail = Convolution(2, features[0], out_channels, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encode in self.encoders[:-1]:
            x = encode(x)
            skips.append(x)
            x = self.pool(x)
        x = self.encoders[-1](x)
        for up, decode, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decode(up(x) + skip)
        return self.tail(x)


class CBDNet(nn.Module):
    """Guo et al., "Toward Convolutional Blind Denoising of Real Photographs", CVPR 2019.

    * CNN_E, the noise estimator: ``estimator_layers`` 3x3 conv + ReLU layers of
      ``estimator_features`` channels (no pooling, no normalisation), the last giving one
      noise-level map per image channel through a softplus, so the map is >= 0 and keeps a
      gradient everywhere (a final ReLU, as in the paper, can die and stop the asymmetric
      loss from raising an under-estimate).
    * CNN_D, the non-blind denoiser: an :class:`AdditiveSkipUNet` on ``concat(x, noise_map)``
      whose output is added to ``x`` (residual learning).

    Inputs are replicate-padded to a multiple of ``2 ** (len(features) - 1)`` and cropped
    back, so any size works. Train with :class:`~medden.losses.CBDNetLoss` on
    ``forward(x, return_noise_map=True)`` to use the paper's asymmetric and total-variation
    terms on the noise map.

    Args:
        in_channels: image channels (the output and the noise map have the same).
        features: U-Net width per level.
        convs: U-Net convolutions per level, same length as ``features``.
        estimator_features: width of the noise estimator.
        estimator_layers: convolutions in the noise estimator, >= 2.

    Shapes:
        ``(B, in_channels, H, W)`` float (any range; nominally [0, 1]) to the denoised image
        of the same shape and units, and with ``return_noise_map`` also the noise-level map
        ``(B, in_channels, H, W)``, >= 0, in ``x``'s units (a noise standard deviation).
    """

    def __init__(self, in_channels: int = 1, features: Sequence[int] = (64, 128, 256), convs: Sequence[int] = (2, 3, 6),
                 estimator_features: int = 32, estimator_layers: int = 5) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels")
        estimator_features = check_int(estimator_features, "estimator_features")
        estimator_layers = check_int(estimator_layers, "estimator_layers", minimum=2,
                                     hint="the estimator needs an input and an output convolution")
        self.estimator = nn.Sequential(_convs(in_channels, estimator_features, estimator_layers - 1),
                                       Convolution(2, estimator_features, in_channels, conv_only=True), nn.Softplus())
        self.denoiser = AdditiveSkipUNet(2 * in_channels, in_channels, features, convs)

    def forward(self, x: torch.Tensor,
                return_noise_map: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Denoise ``x``; return ``denoised``, or ``(denoised, noise_map)`` if ``return_noise_map``."""
        noise_map = self.estimator(x)  # fully convolutional: estimated on the unpadded image
        padded, top, left = pad_to_multiple(torch.cat([x, noise_map], dim=1), self.denoiser.divisor)
        correction = self.denoiser(padded)[..., top:top + x.shape[-2], left:left + x.shape[-1]]
        if return_noise_map:
            return x + correction, noise_map
        return x + correction
