"""The general-purpose denoiser's network: a fast residual U-Net, blind or noise-conditioned."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

from medden.core.validation import check_int
from medden.networks.residual import ResidualDenoiser

__all__ = ["GENERAL_CHANNELS", "FastResUNet", "general_denoiser_net"]

#: feature channels per level (after a 2x2 pixel unshuffle, so the first level is at half size)
GENERAL_CHANNELS = (16, 32, 64, 128)


def _res_blocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualUnit(spatial_dims=2, in_channels=channels, out_channels=channels, subunits=2,
                                        act="relu", norm=None, last_conv_only=True) for _ in range(count)))


class FastResUNet(nn.Module):
    """A U-Net built for CPU speed and full-resolution detail (FFDNet/DRUNet ideas, MONAI blocks).

    * A 2x2 pixel unshuffle turns the image into four half-size sub-images without losing a
      pixel (FFDNet), so every convolution runs at half resolution or below.
    * Each level has ``blocks`` residual units (two 3x3 convolutions, ReLU, no normalisation: a
      denoiser must keep intensities), a 2x2 stride-2 convolution down and a 2x2 transposed
      convolution up; skips are added, not concatenated (DRUNet), which halves decoder cost.
    * The output convolution starts at zero, so an untrained network predicts a zero map and,
      wrapped in :class:`~medden.networks.ResidualDenoiser`, starts as the identity.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        channels: features per level; inputs must be divisible by ``2 ** len(channels)``.
        blocks: residual units per level and at the bottom.

    Shapes:
        ``(B, in_channels, H, W)`` float to ``(B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, channels: Sequence[int] = GENERAL_CHANNELS,
                 blocks: int = 1) -> None:
        super().__init__()
        channels = tuple(check_int(c, f"channels[{i}]") for i, c in enumerate(channels))
        if len(channels) < 2:
            raise ValueError(f"channels must list at least two levels, got {channels}.")
        check_int(blocks, "blocks")
        self.divisor = 2 ** len(channels)
        self.head = nn.Sequential(nn.PixelUnshuffle(2), Convolution(2, 4 * in_channels, channels[0], conv_only=True))
        self.encoders = nn.ModuleList(_res_blocks(c, blocks) for c in channels[:-1])
        self.downs = nn.ModuleList(Convolution(2, a, b, strides=2, kernel_size=2, padding=0, conv_only=True)
                                   for a, b in zip(channels[:-1], channels[1:]))
        self.bottom = _res_blocks(channels[-1], blocks)
        # decoder modules are stored deepest first, the order they run in
        self.ups = nn.ModuleList(Convolution(2, b, a, strides=2, kernel_size=2, padding=0, output_padding=0,
                                             is_transposed=True, conv_only=True)
                                 for a, b in reversed(list(zip(channels[:-1], channels[1:]))))
        self.decoders = nn.ModuleList(_res_blocks(c, blocks) for c in reversed(channels[:-1]))
        tail = nn.Conv2d(channels[0], 4 * out_channels, kernel_size=3, padding=1)
        nn.init.zeros_(tail.weight)
        nn.init.zeros_(tail.bias)
        self.tail = nn.Sequential(tail, nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.divisor or x.shape[-1] % self.divisor:
            raise ValueError("input height and width must be multiples of " + str(self.divisor) + ", got "
                             + str(x.shape[-2]) + " x " + str(x.shape[-1])
                             + "; pad it (e.g. monai.transforms.DivisiblePad) or use a sliding-window inferer.")
        features = self.head(x)
        skips = []
        for encode, down in zip(self.encoders, self.downs):
            features = encode(features)
            skips.append(features)
            features = down(features)
        features = self.bottom(features)
        level = len(skips)
        for up, decode in zip(self.ups, self.decoders):
            level -= 1
            features = decode(up(features) + skips[level])
        return self.tail(features)


def general_denoiser_net(conditioned: bool = False, channels: Sequence[int] = GENERAL_CHANNELS,
                         blocks: int = 1, image_channels: int = 1) -> nn.Module:
    """The general denoiser: ``y -> y + FastResUNet(y)`` on 2D images.

    Args:
        conditioned: when True, the U-Net also sees a constant map of the input's own noise
            level (estimated inside ``forward``, FFDNet style; see
            :class:`~medden.networks.conditioned.NoiseConditionedDenoiser`); else it is blind.
        channels, blocks: see :class:`FastResUNet`.
        image_channels: channels of the image (2 for one complex image as real/imaginary
            channels); the noise-conditioned variant takes one-channel images only.

    Shapes:
        ``(B, image_channels, H, W)`` float in [0, 1] (nominally), H and W multiples of
        ``2 ** len(channels)``, to the same shape.
    """
    if conditioned and image_channels != 1:
        raise ValueError(f"the noise-conditioned denoiser takes one-channel images, got image_channels={image_channels}.")
    unet = FastResUNet(in_channels=image_channels + int(conditioned), out_channels=image_channels, channels=channels,
                       blocks=blocks)
    if conditioned:
        from medden.networks.conditioned import NoiseConditionedDenoiser

        return NoiseConditionedDenoiser(unet)
    return ResidualDenoiser(unet)
