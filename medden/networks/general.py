"""The general-purpose denoiser's network: a fast residual U-Net, blind or noise-conditioned."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

from medden.core.validation import check_int
from medden.networks.padding import pad_to_multiple
from medden.networks.residual import ResidualDenoiser

__all__ = ["ARCHITECTURES", "GENERAL_CHANNELS", "BilinearResUNet", "FastResUNet", "general_denoiser_net"]

#: feature channels per level (after a 2x2 pixel unshuffle, so the first level is at half size)
GENERAL_CHANNELS = (16, 32, 64, 128)
#: the U-Nets :func:`general_denoiser_net` builds: name -> class
ARCHITECTURES = ("pixel_shuffle", "bilinear")


def _res_blocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualUnit(spatial_dims=2, in_channels=channels, out_channels=channels, subunits=2,
                                        act="relu", norm=None, last_conv_only=True) for _ in range(count)))


class _LevelledUNet(nn.Module):
    """The encoder-decoder levels both U-Nets share: ``encoders``, ``downs``, ``bottom``, ``ups``
    and ``decoders`` (set by the subclass; decoder modules deepest first); skips are added.
    ``_upsampled`` is what follows each ``up`` (nothing here: ``up`` itself doubles the size)."""

    def _upsampled(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _levels(self, features: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for encode, down in zip(self.encoders, self.downs):
            features = encode(features)
            skips.append(features)
            features = down(features)
        features = self.bottom(features)
        level = len(skips)
        for up, decode in zip(self.ups, self.decoders):
            level -= 1
            features = decode(self._upsampled(up(features)) + skips[level])
        return features


class FastResUNet(_LevelledUNet):
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
        return self.tail(self._levels(self.head(x)))


class BilinearResUNet(_LevelledUNet):
    """A U-Net as fast as :class:`FastResUNet` that cannot print a 2-pixel grid into its output.

    :class:`FastResUNet` works on four half-size sub-images (pixel unshuffle) and returns to
    full size by a pixel shuffle and 2 x 2 transposed convolutions: whatever it learns unevenly
    between the four sub-images comes out as stripes or a checkerboard that alternate every
    pixel (found on real CT, radiographs and MR with no noise added). Here:

    * a thin full-resolution level (``full_channels`` features: one 3 x 3 convolution in, one
      after the skip, one out) is the only path to the output's finest detail, and every one of
      its operations is shift-equivariant;
    * every coarser level reaches full size through a 1 x 1 convolution at its own size and a
      bilinear 2x upsampling, whose response is zero at the Nyquist frequency, so no coarse
      level can add a pattern that alternates every pixel;
    * levels below are those of :class:`FastResUNet` (residual units of two 3 x 3 convolutions
      + ReLU, no normalisation, stride-2 convolutions down, skips added), starting at half size.
    * The output convolution starts at zero (an untrained residual denoiser is the identity).
    * Any height and width: the input is replicate-padded to a multiple of
      ``2 ** len(channels)`` and the output cropped back, so a whole slice runs as one window
      (no tiles, hence no tile seams).

    Args:
        in_channels, out_channels: image channels in and out.
        channels: features of the half-size level and each coarser one.
        full_channels: features at full resolution.
        blocks: residual units per level and at the bottom.

    Shapes:
        ``(B, in_channels, H, W)`` float to ``(B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, channels: Sequence[int] = GENERAL_CHANNELS,
                 full_channels: int = 8, blocks: int = 1) -> None:
        super().__init__()
        channels = tuple(check_int(c, f"channels[{i}]") for i, c in enumerate(channels))
        if len(channels) < 2:
            raise ValueError(f"channels must list at least two levels, got {channels}.")
        check_int(full_channels, "full_channels")
        check_int(blocks, "blocks")
        self.divisor = 2 ** len(channels)
        self.head = nn.Sequential(nn.Conv2d(in_channels, full_channels, 3, padding=1), nn.ReLU())
        self.to_half = nn.Conv2d(full_channels, channels[0], 3, stride=2, padding=1)
        self.encoders = nn.ModuleList(_res_blocks(c, blocks) for c in channels[:-1])
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 2, stride=2) for a, b in zip(channels[:-1], channels[1:]))
        self.bottom = _res_blocks(channels[-1], blocks)
        # decoder modules are stored deepest first, the order they run in
        self.ups = nn.ModuleList(nn.Conv2d(b, a, 1) for a, b in reversed(list(zip(channels[:-1], channels[1:]))))
        self.decoders = nn.ModuleList(_res_blocks(c, blocks) for c in reversed(channels[:-1]))
        self.to_full = nn.Conv2d(channels[0], full_channels, 1)
        self.full = nn.Sequential(nn.Conv2d(full_channels, full_channels, 3, padding=1), nn.ReLU())
        self.tail = nn.Conv2d(full_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def _upsampled(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, top, left = pad_to_multiple(x, self.divisor)
        return self._unet(padded)[..., top:top + x.shape[-2], left:left + x.shape[-1]]

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        full = self.head(x)
        features = self._levels(self.to_half(full))
        full = self.full(self._upsampled(self.to_full(features)) + full)
        return self.tail(full)


def general_denoiser_net(conditioned: bool = False, channels: Sequence[int] = GENERAL_CHANNELS,
                         blocks: int = 1, image_channels: int = 1, architecture: str = "pixel_shuffle",
                         full_channels: int = 8) -> nn.Module:
    """The general denoiser: ``y -> y + UNet(y)`` on 2D images.

    Args:
        conditioned: when True, the U-Net also sees a constant map of the input's own noise
            level (estimated inside ``forward``, FFDNet style; see
            :class:`~medden.networks.conditioned.NoiseConditionedDenoiser`); else it is blind.
        channels, blocks: see :class:`FastResUNet`.
        image_channels: channels of the image (2 for one complex image as real/imaginary
            channels); the noise-conditioned variant takes one-channel images only.
        architecture: ``"pixel_shuffle"`` (:class:`FastResUNet`, the default model of
            version 1) or ``"bilinear"`` (:class:`BilinearResUNet`, version 2, with
            ``full_channels`` features at full resolution).

    Shapes:
        ``(B, image_channels, H, W)`` float in [0, 1] (nominally), H and W multiples of
        ``2 ** len(channels)``, to the same shape.
    """
    if conditioned and image_channels != 1:
        raise ValueError(f"the noise-conditioned denoiser takes one-channel images, got image_channels={image_channels}.")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}.")
    in_channels = image_channels + int(conditioned)
    if architecture == "bilinear":
        unet = BilinearResUNet(in_channels, image_channels, channels, full_channels=full_channels, blocks=blocks)
    else:
        unet = FastResUNet(in_channels, image_channels, channels=channels, blocks=blocks)
    if conditioned:
        from medden.networks.conditioned import NoiseConditionedDenoiser

        return NoiseConditionedDenoiser(unet)
    return ResidualDenoiser(unet)
