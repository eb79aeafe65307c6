"""The Direct Denoiser U-Net of Salmon & Krull ("Direct unsupervised denoising").

The Direct Denoiser is trained to regress the mean of an unsupervised denoiser's posterior
samples (e.g. :class:`~medden.networks.LadderVAE`), giving that MMSE estimate in one forward
pass. The seed paper describes the network as: depth four; at each level a residual block of
two 3x3 convolutions followed by a ReLU; stride-2 convolutions down; nearest-neighbour
upsampling followed by one stride-1 convolution up; 32 filters at the first level, doubling
per level; skips concatenated with the upsampled features and passed through a residual
block; all kernels 3x3. Read with depth four meaning four downsamplings (five levels, 32 to
512 filters), this comes to about 12 million parameters for one channel, the paper's figure.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

from medden.core.validation import check_int

__all__ = ["DirectDenoiser"]


def _residual_block(in_channels: int, out_channels: int) -> ResidualUnit:
    # conv-ReLU-conv-ReLU plus the input (a 1x1 projection when the widths differ)
    return ResidualUnit(spatial_dims=2, in_channels=in_channels, out_channels=out_channels, subunits=2,
                        act="relu", norm=None)


def _conv(in_channels: int, out_channels: int, strides: int = 1) -> Convolution:
    return Convolution(spatial_dims=2, in_channels=in_channels, out_channels=out_channels, strides=strides,
                       kernel_size=3, conv_only=True)


class DirectDenoiser(nn.Module):
    """Salmon & Krull's Direct Denoiser: a residual U-Net with concatenated skips.

    No MONAI network matches the description: ``monai.networks.nets.BasicUNet`` uses plain
    (non-residual) double convolutions and max pooling, and ``monai.networks.nets.UNet``
    upsamples with transposed convolutions and has no residual block after the
    concatenation. So this module assembles MONAI's ``ResidualUnit`` (two 3x3 convolutions,
    each followed by ReLU, no normalisation; the paper does not say whether the ReLU also
    follows the first convolution) and ``Convolution`` blocks in the paper's layout. The
    stride-2 and upsampling convolutions are linear, as are the first convolution (channels to
    ``base_filters``) and the last (``base_filters`` to ``out_channels``).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        depth: number of stride-2 downsamplings; level ``l`` (0 to ``depth``) has
            ``base_filters * 2**l`` filters.
        base_filters: filters at the first level.

    Shapes:
        ``(B, in_channels, H, W)`` float, any ``H, W >= 1`` (padded internally by reflection,
        or replication where the image is too small, to a multiple of ``2**depth`` and
        cropped back), to ``(B, out_channels, H, W)`` in the same units.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, depth: int = 4, base_filters: int = 32) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("depth", depth),
                            ("base_filters", base_filters)):
            check_int(value, name)
        widths = [base_filters * 2 ** level for level in range(depth + 1)]
        self.multiple = 2 ** depth
        self.head = _conv(in_channels, widths[0])
        self.encoders = nn.ModuleList(_residual_block(w, w) for w in widths)  # the last one is the bottleneck
        self.downs = nn.ModuleList(_conv(a, b, strides=2) for a, b in pairwise(widths))
        # decoder modules are stored deepest first, the order they run in
        pairs = list(pairwise(widths))[::-1]
        self.ups = nn.ModuleList(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(b, a))
                                 for a, b in pairs)
        self.merges = nn.ModuleList(_residual_block(2 * a, a) for a, _ in pairs)
        self.tail = _conv(widths[0], out_channels)
        # the model_id of the LadderVAE whose posterior this network learned (0: none yet)
        self.register_buffer("teacher_id", torch.zeros((), dtype=torch.int64))

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x)
        skips = []
        for encode, down in zip(self.encoders[:-1], self.downs):
            features = encode(features)
            skips.append(features)
            features = down(features)
        features = self.encoders[-1](features)
        for up, merge, skip in zip(self.ups, self.merges, reversed(skips)):
            features = merge(torch.cat([skip, up(features)], dim=1))
        return self.tail(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x``: ``(B, in_channels, H, W)`` float to ``(B, out_channels, H, W)``."""
        if x.ndim != 4:
            raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}; add dimensions with x[None].")
        height, width = x.shape[-2], x.shape[-1]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        # a traced export (TorchScript, ONNX) records only shape arithmetic, no size-dependent branch, so it
        # pads (maybe by zero) and reflects at every size: it needs each side at least multiple / 2
        tracing = torch.jit.is_tracing()
        if not tracing and not (pad_h or pad_w):
            return self._unet(x)
        top, left = pad_h // 2, pad_w // 2
        fits = tracing or (max(pad_h - top, top) < height and max(pad_w - left, left) < width)
        padded = F.pad(x, (left, pad_w - left, top, pad_h - top), mode="reflect" if fits else "replicate")
        return self._unet(padded)[..., top:top + height, left:left + width]
