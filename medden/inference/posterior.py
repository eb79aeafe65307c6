"""Posterior statistics of a ladder VAE: mean (MMSE), median (MMAE) and per-pixel uncertainty.

An unsupervised VAE denoiser (:class:`~medden.networks.LadderVAE`) gives no single answer but
samples ``s ~ q(s | x)`` of plausible clean images. Their pixel-wise mean approximates the
MMSE estimate, their pixel-wise median the MMAE estimate, and their per-pixel standard
deviation is an uncertainty map. Salmon & Krull's Direct Denoiser learns the mean or median
in one pass; these functions compute it the expensive way (hundreds of samples), as the
reference it is compared against and as an uncertainty estimate it cannot give.

* :func:`posterior_statistics`: mean, median and std of ``n_samples`` draws, in chunks.
* :class:`PosteriorMeanInferer`: the mean or median as a MONAI inferer (evaluators,
  ``SlidingWindowInferer`` for large images).
* :func:`denoise_image_with_uncertainty`: a whole image in its own intensity units, scaled to
  [0, 1] by its percentiles as :func:`~medden.inference.denoise_image` does (NIfTI files and
  folders of them: :mod:`medden.apps.folders`).

Memory: mean and std are accumulated in float64 chunk by chunk (Chan et al.'s pairwise
update), so they need about ``chunk`` samples at a time. The median needs every sample: with
``median=True`` they are kept as float32 on the CPU, ``N * B * C * H * W * 4`` bytes (1000
samples of one 256 x 256 image: 262 MB), plus working memory for ``torch.median``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from monai.config import NdarrayOrTensor
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type
from torch import nn

from medden.inference.checks import check_batch, evaluate, resolve_inferer
from medden.inference.volumes import to_unit_range
from medden.networks.ladder_vae import LadderVAE
from medden.core.validation import check_int

__all__ = [
    "POSTERIOR_STATISTICS",
    "PosteriorMeanInferer",
    "PosteriorStatistics",
    "check_statistic",
    "denoise_image_with_uncertainty",
    "posterior_statistics",
    "resolve_vae",
]

#: the central tendencies a VAE's samples can be reduced to: "mean" (MMSE), "median" (MMAE)
POSTERIOR_STATISTICS = ("mean", "median")
#: how many posterior samples are drawn per ``sample_posterior`` call by default
DEFAULT_CHUNK = 32


@dataclass(frozen=True)
class PosteriorStatistics:
    """Pixel-wise statistics of ``n_samples`` posterior samples of a ``(B, C, H, W)`` batch.

    Attributes:
        mean: ``(B, C, H, W)``, the input's dtype and device, data units; approximates the
            MMSE estimate.
        median: ``(B, C, H, W)`` like ``mean`` (the lower of the two middle values for an
            even ``n_samples``, as ``torch.median``), or None when not requested.
        std: ``(B, C, H, W)`` like ``mean``, >= 0: the per-pixel sample standard deviation
            (Bessel-corrected, as ``torch.std``); zeros when ``n_samples == 1``.
        n_samples: the number of samples ``N`` behind the statistics.
    """

    mean: torch.Tensor
    median: torch.Tensor | None
    std: torch.Tensor
    n_samples: int


def resolve_vae(network: Any) -> LadderVAE:
    """The :class:`~medden.networks.LadderVAE` inside ``network``.

    Accepts the VAE itself, a module holding it as ``.vae`` (e.g.
    :class:`~medden.networks.VAEDirectDenoiser`), and either of those wrapped in
    ``DistributedDataParallel``/``DataParallel`` (``.module``).

    Raises:
        TypeError: no LadderVAE found.
    """
    module = network
    for _ in range(4):  # at most DDP -> wrapper -> (DDP ->) VAE
        if isinstance(module, LadderVAE):
            return module
        inner = getattr(module, "module", None)
        module = inner if isinstance(inner, nn.Module) else getattr(module, "vae", None)
    raise TypeError(
        f"network must be a medden.networks.LadderVAE or a module holding one as .vae (DDP-wrapped or not), "
        f"got {type(network).__name__}."
    )


def check_statistic(statistic: str) -> str:
    """Return ``statistic`` if it is one of :data:`POSTERIOR_STATISTICS`, else raise ``ValueError``."""
    if statistic not in POSTERIOR_STATISTICS:
        raise ValueError(f"statistic must be one of {POSTERIOR_STATISTICS} (mean: MMSE, median: MMAE), "
                         f"got {statistic!r}.")
    return statistic


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Switch ``module`` to eval mode (dropout off), then restore every submodule's own mode."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _merge_moments(mean: torch.Tensor | None, m2: torch.Tensor | None, count: int,
                   draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Chan et al.'s update of a running mean and sum of squared deviations by a chunk ``(k, ...)``."""
    draws = draws.double()
    chunk_mean = draws.mean(0)
    chunk_m2 = (draws - chunk_mean).square().sum(0)
    if mean is None:
        return chunk_mean, chunk_m2
    k = draws.shape[0]
    total = count + k
    delta = chunk_mean - mean
    return mean + delta * (k / total), m2 + chunk_m2 + delta.square() * (count * k / total)


def posterior_statistics(vae: nn.Module, x: torch.Tensor, n_samples: int, chunk: int = DEFAULT_CHUNK,
                         median: bool = True, generator: torch.Generator | None = None) -> PosteriorStatistics:
    """Mean, median and standard deviation of ``n_samples`` decoded posterior samples of ``x``.

    Samples are drawn ``chunk`` at a time with ``vae.sample_posterior`` (its encoder runs once
    per chunk) under ``torch.no_grad()``, in eval mode; every submodule's train/eval mode is
    restored afterwards. For a given ``generator`` state the result does not depend on
    ``chunk``. See the module docstring for the memory cost of the median.

    Args:
        vae: a :class:`~medden.networks.LadderVAE`, or a module holding one (see
            :func:`resolve_vae`).
        x: noisy batch ``(B, C, H, W)``, floating, finite, in the VAE's data units, on its device.
        n_samples: number of samples ``N``, int >= 1.
        chunk: samples per ``sample_posterior`` call, int >= 1.
        median: also compute the pixel-wise median (keeps all samples on the CPU).
        generator: generator for the latent draws, on ``x``'s device; the global RNG if None.

    Returns:
        :class:`PosteriorStatistics`, each map ``(B, C, H, W)`` in ``x``'s dtype and device.

    Raises:
        TypeError: ``vae`` holds no LadderVAE, ``x`` is not a floating tensor, or a count is
            not an int.
        ValueError: ``n_samples`` or ``chunk`` < 1, ``x`` not ``(B, C, H, W)`` or not finite.
    """
    n_samples = check_int(n_samples, "n_samples", 1)
    chunk = check_int(chunk, "chunk", 1)
    model = resolve_vae(vae)
    check_batch(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of 2D images (B, C, H, W), got shape {tuple(x.shape)}; run volumes "
                         "slice by slice, e.g. with monai.inferers.SliceInferer as base_inferer.")
    samples = torch.empty((n_samples, *x.shape), dtype=torch.float32) if median else None
    mean = m2 = None
    with _eval_mode(model):
        for start in range(0, n_samples, chunk):
            draws = model.sample_posterior(x, min(chunk, n_samples - start), generator)
            if samples is not None:
                samples[start:start + draws.shape[0]] = draws.cpu()
            mean, m2 = _merge_moments(mean, m2, start, draws)
    std = (m2 / (n_samples - 1)).sqrt() if n_samples > 1 else torch.zeros_like(m2)
    med = None if samples is None else samples.median(dim=0).values.to(device=x.device, dtype=x.dtype)
    return PosteriorStatistics(mean=mean.to(x.dtype), median=med, std=std.to(x.dtype), n_samples=n_samples)


class PosteriorMeanInferer(Inferer):
    """MONAI inferer returning a ladder VAE's posterior mean (MMSE) or median (MMAE).

    Usable wherever MONAI or medden takes an inferer (evaluators, bundle configs via
    ``_target_: medden.inference.PosteriorMeanInferer``). Each network evaluation goes through
    ``base_inferer``, e.g. ``monai.inferers.SlidingWindowInferer(roi_size=..., overlap=0.25,
    mode="gaussian")`` for images larger than the training patch: every window gets its own
    ``n_samples`` draws. The inferer owns its random generator (one per device, seeded with
    ``seed``), so the global RNG is not used; reseed with :meth:`set_random_state`.

    Args:
        n_samples: posterior samples per window, int >= 1 (the seed paper uses 100 to 1000).
        statistic: ``"mean"`` or ``"median"`` (see :data:`POSTERIOR_STATISTICS`).
        base_inferer: how each network evaluation is run; None means ``SimpleInferer()``.
        chunk: samples drawn per ``sample_posterior`` call (bounds the memory of the mean).
        seed: seed of the latent draws; None draws a random one.
    """

    def __init__(self, n_samples: int, statistic: str = "mean", base_inferer: Inferer | None = None,
                 chunk: int = DEFAULT_CHUNK, seed: int | None = None) -> None:
        self.n_samples = check_int(n_samples, "n_samples", 1)
        self.statistic = check_statistic(statistic)
        self.chunk = check_int(chunk, "chunk", 1)
        self.base_inferer = resolve_inferer(base_inferer)
        self.set_random_state(seed)

    def set_random_state(self, seed: int | None = None) -> PosteriorMeanInferer:
        """Restart the latent draws from ``seed`` (None: a fresh random seed); return ``self``."""
        self.seed = torch.Generator().seed() if seed is None else check_int(seed, "seed", 0)
        self._generators: dict[torch.device, torch.Generator] = {}
        return self

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Return the posterior ``statistic`` of ``inputs`` under ``torch.no_grad()``.

        Args:
            inputs: noisy batch ``(B, C, H, W)``, floating, in the VAE's data units.
            network: a LadderVAE, or a module holding one (see :func:`resolve_vae`).
            args: not supported (a VAE's sampler takes no extra inputs).
            kwargs: not supported.

        Returns:
            A new tensor with ``inputs``' shape and dtype, data units.
        """
        if args or kwargs:
            raise TypeError("PosteriorMeanInferer passes no extra arguments to the VAE, got "
                            f"{len(args)} positional and {sorted(kwargs)} keyword argument(s).")
        vae = resolve_vae(network)
        check_batch(inputs, "inputs")
        median = self.statistic == "median"

        def predict(patch: torch.Tensor) -> torch.Tensor:
            stats = posterior_statistics(vae, patch, self.n_samples, self.chunk, median=median,
                                         generator=self._generator(patch.device))
            return stats.median if median else stats.mean

        with torch.no_grad():
            return evaluate(lambda t: self.base_inferer(t, predict), inputs)


def denoise_image_with_uncertainty(image: NdarrayOrTensor, vae: nn.Module, n_samples: int, statistic: str = "mean",
                                   percentiles: tuple[float, float] = (0.0, 100.0), *, chunk: int = DEFAULT_CHUNK,
                                   generator: torch.Generator | None = None, smoothing: int = 0
                                   ) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
    """Posterior mean or median and per-pixel std of one ``(C, H, W[, D])`` image, in its own units.

    The image is scaled as :func:`~medden.inference.denoise_image` scales it (its
    ``percentiles`` map to [0, 1], see :func:`~medden.inference.volumes.to_unit_range`); a 3D
    image is processed slice by slice along its last axis, on the VAE's device.

    Args:
        image: numpy or torch (CPU), finite; a ``MetaTensor`` keeps its meta (affine).
        vae: a LadderVAE trained on [0, 1]-scaled images, or a module holding one.
        n_samples: posterior samples per slice, int >= 1.
        statistic: ``"mean"`` or ``"median"``.
        percentiles: intensity percentiles that define the [0, 1] range.
        chunk: samples per ``sample_posterior`` call.
        generator: generator for the latent draws, on the VAE's device; global RNG if None.
        smoothing: see :func:`~medden.inference.volumes.intensity_range`.

    Returns:
        ``(denoised, std)``, each float32 with ``image``'s shape and container type;
        ``denoised`` in the image's units, ``std`` >= 0 in the same units (a spread, so
        scaled but not offset).
    """
    n_samples = check_int(n_samples, "n_samples", 1)
    median = check_statistic(statistic) == "median"
    model = resolve_vae(vae)
    unit, low, scale = to_unit_range(image, percentiles, smoothing)
    device = next(model.parameters()).device
    volume = unit if unit.ndim == 4 else unit[..., None]
    per_slice = [posterior_statistics(model, volume[None, ..., k].to(device), n_samples, chunk, median, generator)
                 for k in range(volume.shape[-1])]
    location = torch.stack([(s.median if median else s.mean)[0].cpu() for s in per_slice], dim=-1)
    std = torch.stack([s.std[0].cpu() for s in per_slice], dim=-1)
    if unit.ndim == 3:
        location, std = location[..., 0], std[..., 0]
    return (convert_to_dst_type(location * scale + low, image, dtype=torch.float32)[0],
            convert_to_dst_type(std * scale, image, dtype=torch.float32)[0])
