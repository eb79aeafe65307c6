"""Did the denoiser do harm? No-reference checks that the output is worse than its input.

:func:`harm_flags` compares a denoiser's input and output alone (no clean image) and returns
one :class:`HarmFlag` per check that fails:

* ``noise_up`` (:data:`NOISE_UP`): the estimated noise
  (:func:`medden.core.noise_estimation.estimate_noise_sigma`) is higher after than before, by
  more than :data:`NOISE_UP_TOLERANCE`. A denoiser should never add noise; audits found this
  on a CT series (5.19 -> 8.30) and an 8-bit JPEG (0.76 -> 1.02).
* ``periodic_pattern`` (:data:`PERIODIC_PATTERN`): the output holds a 2-pixel periodic
  pattern the input lacks. Networks built from strided or transposed convolutions and
  pixel shuffles can print the 2 x 2 grid they work on into the image: stripes that
  alternate every pixel along ``H`` (``(-1)^h``) or along ``W`` (``(-1)^w``), or a pixel
  checkerboard (``(-1)^(h+w)``). These sit at the Nyquist frequencies, where anatomy has
  little power. The check measures that power (see below) and flags when it grew by more than
  :data:`PATTERN_RISE` and the added pattern is not negligible next to the noise (of the
  quieter image, usually the output, where a pattern shows most).

A third candidate, a residual ``before - after`` that holds anatomy (edges), is not a check:
:func:`~medden.core.noise_estimation.residual_whiteness` and
:func:`~medden.core.noise_estimation.edge_preservation` depend as much on the noise level as on
the harm. On the sample images the good denoise of one image read a less white residual than
a 3-pixel blur of another, and the same held for edge preservation, so no threshold separates
them (``docs/results/harm_flags.md``). Harm by blurring is therefore not caught here.

Pattern power, per pattern ``p`` in ``{(-1)^h, (-1)^w, (-1)^(h+w)}`` and per slice and channel:
the second difference ``[1, -2, 1] / 4`` along each axis the pattern alternates on (gain 1
for the pattern; constants and linear ramps give 0), times ``p`` (the pattern becomes a
constant), averaged over ``PATTERN_BLOCK x PATTERN_BLOCK`` pixel blocks (keeps what lies
within ``1 / PATTERN_BLOCK`` cycles per pixel of the pattern's frequency), squared and averaged
over blocks, slices and channels. A pattern of amplitude ``a`` (``a * p`` added) reads
``a^2``; white noise of std ``s`` reads about ``(s / PATTERN_BLOCK)^2``, so a pattern far
weaker than the noise still stands out, while one drowned in the noise of the input does not.

Images follow the package convention (see :mod:`medden`): ``(C, H, W)`` or ``(C, H, W, D)``,
``D`` slices, numpy or torch, any real dtype; ``before`` and ``after`` in the same units.
Volumes are measured on at most ``max_slices`` evenly spaced slices
(:func:`~medden.core.noise_estimation.evenly_spaced`), so a check costs far less than the
denoising (about 0.5 s for a 512 x 512 x 64 volume on 2 CPU cores, where the default bundle
takes 5-10 s to denoise it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medden.core.noise_estimation import estimate_noise_sigma, evenly_spaced
from medden.core.validation import check_channel_first, check_finite, check_int

__all__ = [
    "NEGLIGIBLE_OF_SCALE",
    "NOISE_UP",
    "NOISE_UP_TOLERANCE",
    "PATTERN_BLOCK",
    "PATTERN_NEGLIGIBLE",
    "PATTERN_RISE",
    "PERIODIC_PATTERN",
    "HarmFlag",
    "harm_flags",
]

#: name of the check "the estimated noise went up"
NOISE_UP = "noise_up"
#: name of the check "the output has a 2-pixel periodic pattern the input lacks"
PERIODIC_PATTERN = "periodic_pattern"
#: noise_up flags an estimated noise more than 5% above the input's. Independent noise of 0.32
#: x the input's sigma added to it gives +5% (sqrt(1 + 0.32^2)); the estimate of a 64 x 64
#: slice (1024 finest-detail coefficients, MAD efficiency 37%) spreads by about 3.6% between
#: noise draws; the shipped denoiser read at most 0.98 on the clean sample images, except on the
#: 512 x 512 head CT that it is known to make noisier (13.7; docs/results/harm_flags.md).
NOISE_UP_TOLERANCE = 0.05
#: periodic_pattern flags a pattern power that grew more than 4-fold (amplitude doubled)
PATTERN_RISE = 4.0
#: a pattern weaker than 0.1 x the noise sigma (1% of the noise power) of the quieter of input and
#: output (usually the output, where a pattern shows most) is negligible
PATTERN_NEGLIGIBLE = 0.1
#: below this fraction of the input's intensity scale (max of its range and of its largest
#: magnitude) a change is negligible whatever the noise: it keeps noise-free (flat, synthetic)
#: inputs from flagging float rounding, and sits 100 x above float32 resolution
NEGLIGIBLE_OF_SCALE = 1e-5
#: side in pixels of the blocks the pattern power is averaged over (smaller for small images)
PATTERN_BLOCK = 32
#: the 2-pixel patterns: name -> (alternates along H, alternates along W) and how a message names it
_PATTERNS = {
    "H": ((True, False), "thin stripes, bright and dark from one pixel to the next along H"),
    "W": ((False, True), "thin stripes, bright and dark from one pixel to the next along W"),
    "HW": ((True, True), "a pixel-sized checkerboard"),
}


@dataclass(frozen=True)
class HarmFlag:
    """The outcome of one harm check.

    Attributes:
        name: :data:`NOISE_UP` or :data:`PERIODIC_PATTERN`.
        value: the measured figure, a ratio after / before (dimensionless, >= 0).
        threshold: the check is raised when ``value > threshold``.
        raised: whether it is (``value > threshold``).
        message: one or two plain sentences for the person reading the report; numbers only,
            nothing about the patient.
    """

    name: str
    value: float
    threshold: float
    raised: bool
    message: str


def _planes(img: Any, name: str, max_slices: int) -> np.ndarray:
    """At most ``max_slices`` evenly spaced slices of every channel, as ``(planes, H, W)``.

    float32 (float64 for float64 or 32/64-bit integer images), C-contiguous, checked finite.
    """
    check_channel_first(img, name)
    if img.is_complex() if isinstance(img, torch.Tensor) else np.iscomplexobj(img):
        raise TypeError(f"{name} must be real, got dtype {img.dtype}; pass the magnitude with abs().")
    volume = img if img.ndim == 4 else img[..., None]
    picks = evenly_spaced(volume.shape[-1], max_slices)
    if isinstance(volume, torch.Tensor):
        picked = volume.detach()[..., torch.as_tensor(picks)].cpu()
        volume = (picked.float() if picked.dtype == torch.bfloat16 else picked).numpy()  # numpy has no bfloat16
    else:
        volume = volume[..., picks]
    dtype = np.result_type(volume.dtype, np.float32)
    planes = np.ascontiguousarray(np.moveaxis(volume, -1, 1), dtype=dtype).reshape(-1, *volume.shape[1:3])
    if not np.isfinite(planes).all():  # numpy's test is fast; check_finite words the error
        check_finite(planes, name)
    return planes


def _alternating(length: int) -> np.ndarray:
    return np.where(np.arange(length) % 2 == 0, 1.0, -1.0).astype(np.float32)


def _pattern_power(planes: np.ndarray, along_h: bool, along_w: bool) -> float:
    """Mean power of one 2-pixel pattern in ``(planes, H, W)``, in squared image units."""
    x = planes
    if along_h:  # the second difference [1, -2, 1] / 4: gain 1 for the pattern, 0 on constants and ramps
        x = np.diff(x, n=2, axis=1) / 4.0 * _alternating(x.shape[1] - 2)[:, None]
    if along_w:
        x = np.diff(x, n=2, axis=2) / 4.0 * _alternating(x.shape[2] - 2)
    count, height, width = x.shape
    block_h, block_w = (min(PATTERN_BLOCK, n - n % 2) for n in (height, width))
    rows, cols = height // block_h, width // block_w
    blocks = x[:, : rows * block_h, : cols * block_w].reshape(count, rows, block_h, cols, block_w)
    return float(np.mean(blocks.mean(axis=(2, 4), dtype=np.float64) ** 2))


def _negligible(before: np.ndarray) -> float:
    """The level below which any change is negligible, in image units (> 0)."""
    scale = max(float(np.ptp(before)), float(np.abs(before).max()))
    return max(NEGLIGIBLE_OF_SCALE * scale, math.sqrt(np.finfo(np.float64).tiny))


def _noise_up(sigma_before: float, sigma_after: float, negligible: float) -> HarmFlag:
    """``noise_up``: ``(sigma_after + e) / (sigma_before + e)`` against ``1 + NOISE_UP_TOLERANCE``."""
    ratio = (sigma_after + negligible) / (sigma_before + negligible)
    threshold = 1.0 + NOISE_UP_TOLERANCE
    numbers = f"estimated noise {sigma_before:.3g} before denoising, {sigma_after:.3g} after (in the image's units)"
    if ratio > threshold:
        message = (f"The image looks noisier after denoising: {numbers}, {ratio - 1:+.0%}. Compare the output "
                   "with the original before using it; the original may be the better image.")
    else:
        message = f"No rise in noise beyond the {NOISE_UP_TOLERANCE:.0%} tolerance: {numbers}."
    return HarmFlag(NOISE_UP, ratio, threshold, ratio > threshold, message)


def _periodic_pattern(before: np.ndarray, after: np.ndarray, sigma: float, negligible: float) -> HarmFlag:
    """``periodic_pattern``: the largest ``(P_after + g^2) / (P_before + g^2)`` over the three patterns.

    ``g``, the negligible pattern amplitude, is ``PATTERN_NEGLIGIBLE * sigma`` (at least
    ``negligible``) with ``sigma`` the noise of the quieter image; adding ``g^2`` to both powers
    makes a change between two negligible powers read about 1, so the flag needs
    ``P_after > PATTERN_RISE * P_before + (PATTERN_RISE - 1) g^2``: a 4-fold rise and an added
    pattern of at least ``sqrt(3) g`` (0.17 x that noise).
    """
    floor = max(PATTERN_NEGLIGIBLE * sigma, negligible) ** 2
    rises = {}
    for key, ((along_h, along_w), _) in _PATTERNS.items():
        power_before, power_after = _pattern_power(before, along_h, along_w), _pattern_power(after, along_h, along_w)
        rises[key] = ((power_after + floor) / (power_before + floor), math.sqrt(max(power_after - power_before, 0.0)))
    worst = max(rises, key=lambda key: rises[key][0])
    rise, amplitude = rises[worst]
    if rise > PATTERN_RISE:
        message = (f"The denoised image shows a fine repeating pattern that the original does not have "
                   f"({_PATTERNS[worst][1]}): its strength rose {rise:.3g}-fold, to an amplitude of about "
                   f"{amplitude:.3g} in the image's units, next to a noise level of about {sigma:.3g}. "
                   "It is an artefact of the denoiser, not anatomy; inspect the output at full resolution "
                   "before using it.")
    else:
        message = (f"No new fine repeating pattern: the strongest 2-pixel pattern is {rise:.3g} x as strong "
                   f"as before (flagged above {PATTERN_RISE:g} x).")
    return HarmFlag(PERIODIC_PATTERN, rise, PATTERN_RISE, rise > PATTERN_RISE, message)


def harm_flags(before: Any, after: Any, *, max_slices: int = 16, include_passed: bool = False) -> list[HarmFlag]:
    """Check, without a clean reference, whether a denoiser made an image worse.

    Runs the ``noise_up`` and ``periodic_pattern`` checks described in :mod:`medden.metrics.harm`
    on the same at most ``max_slices`` evenly spaced slices of both images.

    Args:
        before: the denoiser's input, ``(C, H, W)`` or ``(C, H, W, D)`` with ``H, W >= 4``,
            numpy or torch, real, in its own units (HU, 0-255, ...); the measured slices
            must be finite.
        after: the denoiser's output, same shape and units.
        max_slices: most slices measured, >= 1.
        include_passed: also return the checks that passed (``raised`` False), e.g. to log
            their values.

    Returns:
        The raised checks, in the order ``noise_up``, ``periodic_pattern``; empty when none is.
        With ``include_passed``, both checks.

    Raises:
        ValueError: a rank other than ``(C, H, W[, D])``, ``H`` or ``W`` below 4, shapes that
            differ, non-finite values in the measured slices, or ``max_slices < 1``.
        TypeError: not a numpy array or torch tensor, or complex.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> noisy = rng.normal(0.0, 1.0, (1, 64, 64))
        >>> [flag.name for flag in harm_flags(noisy, noisy + rng.normal(0.0, 1.0, noisy.shape))]
        ['noise_up']
        >>> harm_flags(noisy, 0.5 * noisy)
        []
    """
    max_slices = check_int(max_slices, "max_slices", 1)
    shapes = [tuple(img.shape) if isinstance(img, (np.ndarray, torch.Tensor)) else None for img in (before, after)]
    if None not in shapes and shapes[0] != shapes[1]:
        raise ValueError(f"before and after must have one shape, got {shapes[0]} and {shapes[1]}; "
                         "pass the denoiser's input and its output for the same image.")
    before_planes, after_planes = _planes(before, "before", max_slices), _planes(after, "after", max_slices)
    if min(before_planes.shape[1:]) < 4:
        raise ValueError(f"before and after need H, W >= 4 to measure 2-pixel patterns, got shape {shapes[0]}.")
    # each plane is measured alone, as one channel of one slice
    sigma_before, sigma_after = estimate_noise_sigma(before_planes), estimate_noise_sigma(after_planes)
    negligible = _negligible(before_planes)
    flags = [_noise_up(sigma_before, sigma_after, negligible),
             _periodic_pattern(before_planes, after_planes, min(sigma_before, sigma_after), negligible)]
    return flags if include_passed else [flag for flag in flags if flag.raised]
