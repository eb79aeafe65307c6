"""A multi-scale normalizing flow for images (Glow / RealNVP) with exact log-likelihood.

The flow maps an image ``x`` in [0, 1] (centred to [-0.5, 0.5]) to latents ``z`` of the same
total size through invertible layers (:mod:`medden.networks.flow_layers`), so

    log f(x) = log N(z) + sum_i log |det J_i|

exactly. Trained on clean images it is the prior ``f_C`` of the unpaired-denoising objective
(:class:`~medden.losses.FlowPriorLoss`). Images are continuous here while a likelihood in
bits per dimension refers to ``n_bins`` discrete levels: :func:`dequantize` adds uniform noise
within each level, and :func:`bits_per_dim` converts a density to bits per value (an upper
bound on the discrete model's code length, as in RealNVP and Glow).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from medden.networks.flow_layers import (
    COUPLING_MASKS,
    FlowStep,
    SplitPrior,
    gaussian_log_density,
    squeeze,
    unsqueeze,
)
from medden.core.validation import check_int

__all__ = ["COUPLINGS", "FlowEncoding", "ImageFlow", "bits_per_dim", "dequantize", "dequantized_bits_per_dim"]

#: coupling layouts: every step channel-wise, every step checkerboard, or alternating
COUPLINGS = (*COUPLING_MASKS, "alternate")


def dequantize(images: torch.Tensor, n_bins: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantisation: clip to [0, 1], round down to one of ``n_bins`` levels, add
    ``U(0, 1 / n_bins)``. Continuous images (medical intensities are rarely 8-bit) become
    the discrete data a bits-per-dimension figure refers to.

    Args:
        images: float tensor, any shape, nominally in [0, 1].
        n_bins: discrete levels (256 for 8 bits).

    Returns:
        float tensor of the same shape in [0, 1].
    """
    n_bins = check_int(n_bins, "n_bins", minimum=2)
    levels = torch.clamp(torch.floor(images.clamp(0.0, 1.0) * n_bins), max=n_bins - 1)
    if generator is None:
        noise = torch.rand(images.shape, dtype=images.dtype, device=images.device)
    else:  # drawn on the generator's device, so a CPU generator serves CUDA images too
        noise = torch.rand(images.shape, generator=generator, dtype=images.dtype, device=generator.device)
        noise = noise.to(images.device)
    return (levels + noise) / n_bins


def bits_per_dim(log_density: torch.Tensor, n_dims: int, n_bins: int = 256) -> torch.Tensor:
    """Bits per dimension of dequantised images from their log density in nats.

    ``(-log f(x) + D log n_bins) / (D log 2)`` for ``D = n_dims`` values per image: the
    density of [0, 1]-scaled data is converted to probability mass of bins ``1 / n_bins``
    wide. Uniform noise over 256 levels scores 8 bits/dim.

    Args:
        log_density: ``(B,)`` nats, e.g. ``ImageFlow()(dequantize(x))``.
        n_dims: values per image, ``C * H * W``.

    Returns:
        ``(B,)`` tensor, bits per dimension (lower means more likely).
    """
    return (-log_density + n_dims * math.log(n_bins)) / (n_dims * math.log(2.0))


def dequantized_bits_per_dim(flow: nn.Module, images: torch.Tensor, n_bins: int = 256,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """``(B,)`` bits per dimension of ``(B, C, H, W)`` images in [0, 1] under ``flow``: the
    images are dequantised (:func:`dequantize`) and passed through ``flow``'s ``forward``
    (so a DDP-wrapped flow works), and the log densities converted (:func:`bits_per_dim`)."""
    return bits_per_dim(flow(dequantize(images, n_bins, generator)), images[0].numel(), n_bins)


class FlowEncoding(NamedTuple):
    """What :meth:`ImageFlow.encode` returns.

    Attributes:
        latents: one tensor per level: the factored-out halves, then the top latent.
        log_density: ``(B,)`` ``log f(x)`` in nats: latent log-prior plus ``log_det``.
        log_det: ``(B,)`` ``log |det dz/dx|`` summed over every invertible layer, in nats.
    """

    latents: list[torch.Tensor]
    log_density: torch.Tensor
    log_det: torch.Tensor


class ImageFlow(nn.Module):
    """Multi-scale Glow for ``(B, C, H, W)`` images in [0, 1].

    Each of ``levels`` levels squeezes (``C -> 4C``, halving the size), runs
    ``steps_per_level`` :class:`~medden.networks.flow_layers.FlowStep` (actnorm, invertible
    1 x 1 convolution, affine coupling) and, except the last, factors out half the channels
    with a learned conditional Gaussian prior (:class:`~medden.networks.flow_layers.SplitPrior`).
    The last level's latents are standard normal.

    Args:
        in_channels: image channels.
        levels: squeeze levels; ``H`` and ``W`` must be multiples of ``2 ** levels``.
        steps_per_level: flow steps per level.
        hidden: width of each coupling's network.
        coupling: ``"channel"`` (Glow), ``"checkerboard"`` (RealNVP's spatial mask) or
            ``"alternate"`` (checkerboard then channel).
        seed: seeds the random rotations that start the 1 x 1 convolutions.

    Shapes:
        ``forward(x)``: ``x`` ``(B, C, H, W)`` float (any values; the flow was fitted to
        [0, 1]) -> ``(B,)`` log density in nats. ``encode`` gives the latents,
        ``decode`` inverts them, ``sample`` draws images.
    """

    def __init__(self, in_channels: int = 1, levels: int = 3, steps_per_level: int = 4, hidden: int = 64,
                 coupling: str = "channel", seed: int = 0) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels")
        self.levels = check_int(levels, "levels")
        steps_per_level = check_int(steps_per_level, "steps_per_level")
        hidden = check_int(hidden, "hidden")
        if coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}.")
        self.in_channels = in_channels
        generator = torch.Generator().manual_seed(int(seed))
        self.level_steps = nn.ModuleList()
        self.splits = nn.ModuleList()
        channels = in_channels
        for level in range(self.levels):
            channels *= 4
            masks = [coupling if coupling != "alternate" else COUPLING_MASKS[(k + 1) % 2]
                     for k in range(steps_per_level)]
            self.level_steps.append(nn.ModuleList(
                FlowStep(channels, hidden, mask, parity=k % 2, generator=generator) for k, mask in enumerate(masks)))
            if level < self.levels - 1:
                self.splits.append(SplitPrior(channels))
                channels = channels // 2
        self.top_channels = channels

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"the flow takes (B, {self.in_channels}, H, W) images, got shape {list(x.shape)}.")
        self._check_size(x.shape[2], x.shape[3])

    def _check_size(self, height: int, width: int) -> None:
        multiple = 2**self.levels
        if height % multiple or width % multiple:
            raise ValueError(f"image size {height} x {width} must be a multiple of {multiple} "
                             f"(2 ** levels, levels={self.levels}); crop or pad the patches.")

    def encode(self, x: torch.Tensor) -> FlowEncoding:
        """``x -> z``, with the log density and log-determinant (see :class:`FlowEncoding`)."""
        self._check(x)
        h = x - 0.5
        log_det = x.new_zeros(x.shape[0])
        log_prior = x.new_zeros(x.shape[0])
        latents = []
        for level, steps in enumerate(self.level_steps):
            h = squeeze(h)
            for step in steps:
                h, step_log_det = step(h)
                log_det = log_det + step_log_det
            if level < self.levels - 1:
                h, latent, latent_log_prior = self.splits[level](h)
                latents.append(latent)
                log_prior = log_prior + latent_log_prior
        latents.append(h)
        log_prior = log_prior + gaussian_log_density(h)
        return FlowEncoding(latents, log_prior + log_det, log_det)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B,)`` log density in nats (what training maximises)."""
        return self.encode(x).log_density

    def decode(self, latents: list[torch.Tensor | None], temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Invert :meth:`encode`: the top latent is required; a factored-out latent given as
        None is drawn from its conditional prior at ``temperature``. Returns ``(B, C, H, W)``."""
        if len(latents) != self.levels or latents[-1] is None:
            raise ValueError(f"decode needs {self.levels} latents (one per level, the last not None), "
                             f"got {len(latents)}.")
        h = latents[-1]
        for level in reversed(range(self.levels)):
            if level < self.levels - 1:
                h = self.splits[level].inverse(h, latents[level], temperature, generator)
            for step in reversed(self.level_steps[level]):
                h = step.inverse(h)
            h = unsqueeze(h)
        return h + 0.5

    @torch.no_grad()
    def sample(self, n: int, size: tuple[int, int], temperature: float = 0.7,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` images of ``size`` (H, W): ``(n, C, H, W)`` float, nominally in [0, 1]
        (not clipped). A temperature below 1 trades diversity for cleaner samples (Glow)."""
        height, width = (check_int(s, "size") for s in size)
        self._check_size(height, width)
        scale = 2**self.levels
        param = next(self.parameters())
        top = torch.randn(n, self.top_channels, height // scale, width // scale, generator=generator,
                          dtype=param.dtype).to(param.device)
        return self.decode([None] * (self.levels - 1) + [top * temperature], temperature, generator)
