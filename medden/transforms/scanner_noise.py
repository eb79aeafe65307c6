"""Magnitude MR and radiography noise made as scanners make it.

* :class:`RandMagnitudeMRNoise`: complex Gaussian noise added to a complex image (smooth random
  phase), with a spatially varying g-factor, on one coil (Rician magnitude) or several coils
  combined by root-sum-of-squares (noncentral chi); :func:`magnitude_bias_corrected` removes
  the noise floor from the second moment.
* :class:`RandDetectorBlurNoise`: Poisson-Gaussian detector noise correlated by the detector's
  point-spread function, on an image that is already the detector output.

Low-dose CT noise lives in :mod:`medden.transforms.ct_noise`. Images are 2D slices
``(C, H, W)`` float (see :mod:`medden`); every channel gets its own noise.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import NdarrayOrTensor
from monai.utils import convert_to_dst_type, convert_to_tensor

from medden.core.validation import (
    check_channel_first,
    check_finite,
    check_int,
    check_non_negative,
    check_number,
    check_range,
)
from medden.transforms.corruption import RandCorruption

__all__ = [
    "coil_sensitivities",
    "magnitude_bias_corrected",
    "MRNoiseField",
    "RandMagnitudeMRNoise",
    "gaussian_psf",
    "psf_noise_gain",
    "DetectorNoiseField",
    "RandDetectorBlurNoise",
]


def _seed(rng: np.random.RandomState) -> int:
    return int(rng.randint(0, 2**31 - 1))


def _smooth_field(rng: np.random.RandomState, shape: tuple[int, int], cells: int = 4) -> torch.Tensor:
    """A smooth random ``(H, W)`` float32 field scaled to [0, 1]: a ``cells x cells`` grid, bicubic."""
    coarse = torch.as_tensor(rng.uniform(size=(1, 1, cells, cells)), dtype=torch.float32)
    field = F.interpolate(coarse, size=shape, mode="bicubic", align_corners=True)[0, 0]
    low, high = field.min(), field.max()
    return (field - low) / (high - low).clamp_min(1e-12)


def _polynomial_phase(rng: np.random.RandomState, shape: tuple[int, int], max_phase: float) -> torch.Tensor:
    """A random second-order polynomial over the slice, scaled so its largest ``|phase|`` is ``max_phase``."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, shape[0]), torch.linspace(-1, 1, shape[1]), indexing="ij")
    terms = torch.stack((torch.ones_like(x), x, y, x * x, x * y, y * y))
    poly = torch.einsum("k,khw->hw", torch.as_tensor(rng.uniform(-1, 1, 6), dtype=torch.float32), terms)
    return max_phase * poly / poly.abs().max().clamp_min(1e-12)


@lru_cache(maxsize=8)
def coil_sensitivities(coils: int, shape: tuple[int, int]) -> torch.Tensor:
    """Smooth complex sensitivities of a birdcage array (``sigpy.mri.birdcage_maps``), normalised
    so that ``sum_l |S_l|**2 = 1`` at every pixel.

    Returns:
        ``(coils, H, W)`` complex64 tensor (cached and shared: do not modify it).
    """
    from sigpy.mri import birdcage_maps

    maps = torch.as_tensor(birdcage_maps((coils, *shape), nzz=coils, dtype=np.complex64))
    return maps / torch.sqrt((maps.abs() ** 2).sum(0, keepdim=True))


def magnitude_bias_corrected(magnitude: NdarrayOrTensor, sigma: NdarrayOrTensor | float,
                             coils: int = 1) -> NdarrayOrTensor:
    """Second-moment bias correction of a magnitude image: ``sqrt(max(M**2 - 2 L sigma**2, 0))``.

    For Rician (``L = 1``) or noncentral-chi (``L`` coils, root-sum-of-squares with
    ``sum |S_l|**2 = 1``) magnitude ``M`` of a true signal ``A``, ``E[M**2] = A**2 + 2 L sigma**2``,
    so ``M**2 - 2 L sigma**2`` is an unbiased estimate of ``A**2``. This removes the noise
    floor's bias from the mean of ``M**2``, **not** from the mean of ``M``: the square root and the
    clipping at 0 leave the corrected magnitude biased, most where ``A`` is a few sigma or less.

    Args:
        magnitude: ``(C, H, W)`` (any shape) non-negative magnitude image.
        sigma: standard deviation of each Gaussian channel, one number or a map broadcastable
            to ``magnitude`` (e.g. ``RandMagnitudeMRNoise.last_sigma_map``).
        coils: number of coils ``L`` combined by root-sum-of-squares.

    Returns:
        The corrected magnitude, ``magnitude``'s shape and container type.
    """
    coils = check_int(coils, "coils", 1)
    m = convert_to_tensor(magnitude, track_meta=False)
    m = m.to(torch.float64 if m.dtype == torch.float64 else torch.float32)
    s = torch.as_tensor(convert_to_tensor(sigma, track_meta=False), dtype=m.dtype, device=m.device)
    corrected = torch.sqrt(torch.clamp(m**2 - 2 * coils * s**2, min=0))
    return convert_to_dst_type(corrected, magnitude, dtype=m.dtype)[0]


class MRNoiseField(NamedTuple):
    """One draw of :class:`RandMagnitudeMRNoise`: ``(H, W)`` float32 maps and the noise seed."""

    g_map: torch.Tensor
    phase: torch.Tensor
    seed: int


class RandMagnitudeMRNoise(RandCorruption):
    """Magnitude MR noise from complex data: Rician on one coil, noncentral chi on several.

    The image ``x >= 0`` is the true magnitude. It gets a smooth random phase ``phi`` (a
    second-order polynomial, largest ``|phi|`` = ``max_phase``); coil ``l`` sees
    ``S_l x exp(i phi) + sigma g (n1 + i n2)``, ``n1, n2 ~ N(0, 1)`` independent per coil, pixel
    and channel; the output is the root-sum-of-squares over coils. ``g`` is a smooth random
    g-factor map (parallel-imaging noise amplification), ``>= 1`` with its maximum drawn from
    ``g_max_range``. One coil: ``S = 1``, Rician magnitude. ``L`` coils: birdcage sensitivities
    normalised to ``sum_l |S_l|**2 = 1`` (:func:`coil_sensitivities`), so the signal keeps its
    magnitude and the noise per Gaussian channel stays ``sigma g``: ``E[M**2] = x**2 + 2 L
    (sigma g)**2`` (noncentral chi with ``2 L`` degrees of freedom); in air the mean is
    ``sigma g sqrt(pi / 2)`` for one coil; where ``x >> sigma g`` the noise is Gaussian with
    std ``sigma g``. The phase and sensitivities do not change these statistics, only the draws.

    The level is sigma in image units, as for :class:`RandRicianSigmaNoise` (std of each
    Gaussian channel with one coil and ``g = 1``). Every realisation draws its own g-factor map
    and phase (a :class:`~medden.transforms.pairs.NoisyPair` shares only sigma); the true local
    sigma of the last draw is :attr:`last_sigma_map`.

    Args:
        sigma_range: ``(low, high)`` noise standard deviation, image units.
        coils: number of receive coils ``L`` (1: Rician).
        g_max_range: ``(low, high)`` largest g-factor of a draw, >= 1; ``1`` for uniform noise.
        max_phase: largest absolute phase of the image, radians.
        prob: probability of applying.

    Example:
        >>> import numpy as np
        >>> t = RandMagnitudeMRNoise(sigma_range=0.05, coils=4).set_random_state(0)
        >>> t(np.ones((1, 16, 16), np.float32)).shape, tuple(t.last_sigma_map.shape)
        ((1, 16, 16), (1, 16, 16))
    """

    level_name = "sigma"

    def __init__(self, sigma_range: tuple[float, float] | float, coils: int = 1,
                 g_max_range: tuple[float, float] | float = (1.0, 2.5), max_phase: float = math.pi,
                 prob: float = 1.0) -> None:
        super().__init__(sigma_range, prob)
        self.coils = check_int(coils, "coils", 1)
        self.g_max_range = check_range(g_max_range, "g_max_range", 1.0)
        self.max_phase = check_number(max_phase, "max_phase", 0.0)

    def _check(self, img: torch.Tensor) -> None:
        check_channel_first(img, spatial_dims=(2,))
        check_finite(img)

    def _draw_field(self, img: torch.Tensor, level: float) -> MRNoiseField:
        shape = tuple(img.shape[1:])
        g_max = self.R.uniform(*self.g_max_range)
        g_map = 1 + (g_max - 1) * _smooth_field(self.R, shape)
        return MRNoiseField(g_map, _polynomial_phase(self.R, shape, self.max_phase), _seed(self.R))

    @property
    def last_sigma_map(self) -> torch.Tensor | None:
        """``(1, H, W)`` float32 torch tensor: local noise sigma (``sigma * g``) of the last draw, or None."""
        if self.field is None:
            return None
        return self.level * self.field.g_map[None]

    def _corrupt(self, img, level, field):
        img = convert_to_tensor(img, track_meta=False)  # plain tensor maths; apply() restores the type
        complex_dtype = torch.complex128 if img.dtype == torch.float64 else torch.complex64
        signal = (img * torch.exp(1j * field.phase.to(img))).to(complex_dtype)  # (C, H, W)
        if self.coils > 1:
            sens = coil_sensitivities(self.coils, tuple(img.shape[1:])).to(img.device, complex_dtype)
            signal = sens[:, None] * signal[None]  # (L, C, H, W)
        else:
            signal = signal[None]
        generator = torch.Generator().manual_seed(field.seed)
        white = torch.view_as_complex(torch.randn((*signal.shape, 2), generator=generator, dtype=img.dtype))
        noisy = signal + white.to(img.device) * (level * field.g_map.to(img))
        return torch.sqrt((noisy.abs() ** 2).sum(0)), None


def gaussian_psf(sigma: float) -> torch.Tensor:
    """1D Gaussian point-spread function, ``sigma`` in pixels, sampled to ``ceil(4 sigma)`` pixels
    either side and normalised to sum 1 (``[1.]`` for ``sigma = 0``). The 2D PSF is its outer product."""
    radius = math.ceil(4 * sigma)
    if radius == 0:
        return torch.ones(1, dtype=torch.float64)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def psf_noise_gain(sigma: float) -> float:
    """``sum(psf_2d ** 2)`` of :func:`gaussian_psf`: the factor white noise's variance is scaled by."""
    return float((gaussian_psf(sigma) ** 2).sum() ** 2)


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(C, H, W)``, circular boundary (keeps stationary noise stationary)."""
    kernel = gaussian_psf(sigma).to(img)
    radius = kernel.numel() // 2
    if radius == 0:
        return img
    x = img[:, None]  # (C, 1, H, W)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="circular"), kernel.reshape(1, 1, -1, 1))
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="circular"), kernel.reshape(1, 1, 1, -1))
    return x[:, 0]


class DetectorNoiseField(NamedTuple):
    """One draw of :class:`RandDetectorBlurNoise`: PSF sigma (pixels), read-out sigma, noise seed."""

    psf_sigma: float
    read_sigma: float
    seed: int


class RandDetectorBlurNoise(RandCorruption):
    """Radiography noise: Poisson-Gaussian detector noise correlated by the detector blur.

    ``y = x + psf * (Poisson(peak x) - peak x) / peak + read_sigma * n``, ``n ~ N(0, 1)`` white.
    The image ``x >= 0`` is already the detector output (nominally [0, 1], ``peak`` the expected
    photon count of a pixel of value 1), so the signal is **not** blurred: only the quantum noise
    spreads through the scintillator/detector PSF, a Gaussian of ``psf_sigma`` pixels (circular
    boundary). Mean ``x``; variance ``x / peak * psf_noise_gain(psf_sigma) + read_sigma**2``
    (:func:`psf_noise_gain` ``= sum(psf**2) < 1``); neighbouring pixels are positively
    correlated. ``peak`` is the level, shared by Noise2Noise pairs, as for
    :class:`RandPoissonGaussianNoise`; ``psf_sigma`` and ``read_sigma`` are drawn with every
    realisation.

    Args:
        peak_range: ``(low, high)`` expected photon count of a pixel of value 1, > 0.
        psf_sigma_range: ``(low, high)`` detector PSF standard deviation, pixels, or one number.
        read_sigma_range: ``(low, high)`` read-out noise standard deviation, image units.
        prob: probability of applying.
    """

    level_name = "peak"

    def __init__(self, peak_range: tuple[float, float] | float,
                 psf_sigma_range: tuple[float, float] | float = (0.5, 1.5),
                 read_sigma_range: tuple[float, float] | float = (0.0, 0.0), prob: float = 1.0) -> None:
        super().__init__(peak_range, prob)
        if self.level_range[0] <= 0:
            raise ValueError(f"peak_range must be > 0, got {peak_range!r}.")
        self.psf_sigma_range = check_range(psf_sigma_range, "psf_sigma_range", 0.0, 16.0)
        self.read_sigma_range = check_range(read_sigma_range, "read_sigma_range", 0.0)

    def _check(self, img: torch.Tensor) -> None:
        check_channel_first(img, spatial_dims=(2,))
        check_finite(img)
        check_non_negative(img)
        radius = math.ceil(4 * self.psf_sigma_range[1])
        if min(img.shape[1:]) <= radius:
            raise ValueError(f"img of shape {tuple(img.shape)} is too small for psf_sigma up to "
                             f"{self.psf_sigma_range[1]:g} px; its sides must exceed {radius} px.")

    def _draw_field(self, img: torch.Tensor, level: float) -> DetectorNoiseField:
        return DetectorNoiseField(float(self.R.uniform(*self.psf_sigma_range)),
                                  float(self.R.uniform(*self.read_sigma_range)), _seed(self.R))

    def _corrupt(self, img, level, field):
        generator = torch.Generator().manual_seed(field.seed)
        rate = (convert_to_tensor(img, track_meta=False) * level).cpu()
        shot = (torch.poisson(rate, generator=generator) - rate) / level
        read = field.read_sigma * torch.randn(img.shape, generator=generator, dtype=img.dtype)
        return img + (_blur(shot, field.psf_sigma) + read).to(img.device), None
