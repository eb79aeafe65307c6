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
* ``tile_seam`` (:data:`TILE_SEAM`): the change ``after - before`` jumps along a straight line
  across the image, as where the tiles of a sliding-window inferer meet (a cross at the image
  centre of a 512 x 512 CT run in 256 x 256 windows). Measured per line (see below) in noise
  units, and flagged above :data:`SEAM_THRESHOLD`.

:func:`change_to_noise` is a figure, not a check: how large the change is next to the input's
own noise (``std(after - before) / estimate_noise_sigma(before)``). On a clean image a
denoiser should change little more than the noise (<= 2 is the project's target), but a denoiser
removing strong noise changes far more, so reports do not flag it.

A further candidate, a residual ``before - after`` that holds anatomy (edges), is not a check:
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

Seam score, per line between two neighbouring columns (a line along ``H``; the same with rows
for lines along ``W``) and per slice and channel: the step of the change across the line, the
mean of the ``k`` columns on one side minus the mean of the ``k`` on the other, for ``k`` in
:data:`SEAM_WIDTHS` (2 catches a thin ridge, 8 a faint step; an even ``k`` ignores the 2-pixel
patterns above), averaged along the line and less its Gaussian-smoothed trend across the lines
(a smooth change, such as a gain that drifts across the image, is no seam). Its noise is
measured on the line itself: the line is cut into :data:`SEAM_SEGMENTS` segments, and the
spread of the step between them (at least its median over the lines) gives its standard error,
so correlated noise, or a change that differs along the line, does not read as a seam, while a
jump that holds along the whole line does. The score is the step over the sum of that standard
error, :data:`SEAM_OF_INPUT_STEP` x the input's own largest step (less three of its standard
errors) on the lines whose sides overlap (a denoiser may soften or sharpen a straight edge of
the image) and :data:`SEAM_NEGLIGIBLE` x the noise sigma of the quieter image. It is combined
over slices and channels as a root mean square (a tiling seam repeats in every slice); its
largest value over lines, both directions and ``k`` is the check's value. The
:data:`SEAM_MARGIN` outermost pixels take no part (padding changes the edge of many images;
that is no tile seam). On the sample images (``docs/results/harm_flags.md``) a good denoise
reads 1.6-3.5, a 3-pixel blur up to 3.9, a step of 0.25 x the noise sigma along one line
5.7-24, and the seams the shipped model leaves where its 256 x 256 tiles meet 6.7 (512 x 512
head CT) and 8.5 (chest radiograph). Pure white or correlated noise, added or removed, reads up
to 4.7 (64 x 64 images; less on larger ones and on volumes), and noise in streaks 3 pixels long
up to 5.7 on 64 x 64 images.

Images follow the package convention (see :mod:`medden`): ``(C, H, W)`` or ``(C, H, W, D)``,
``D`` slices, numpy or torch, any real dtype; ``before`` and ``after`` in the same units.
Volumes are measured on at most ``max_slices`` evenly spaced slices
(:func:`~medden.core.noise_estimation.evenly_spaced`), so the checks cost far less than the
denoising (under 1 s for a 512 x 512 x 64 volume on 2 CPU cores, where the default bundle
takes 5-10 s to denoise it; ``docs/results/harm_flags.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medden.core.noise_estimation import estimate_noise_sigma, evenly_spaced, flat_region_sigma
from medden.core.validation import check_channel_first, check_finite, check_int

__all__ = [
    "NEGLIGIBLE_OF_SCALE",
    "NOISE_UP",
    "NOISE_UP_TOLERANCE",
    "PATTERN_BLOCK",
    "PATTERN_NEGLIGIBLE",
    "PATTERN_RISE",
    "PERIODIC_PATTERN",
    "SEAM_MARGIN",
    "SEAM_NEGLIGIBLE",
    "SEAM_OF_INPUT_STEP",
    "SEAM_SEGMENTS",
    "SEAM_THRESHOLD",
    "SEAM_WIDTHS",
    "TILE_SEAM",
    "HarmFlag",
    "change_to_noise",
    "harm_flags",
    "pattern_powers",
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
#: name of the check "the change jumps along a straight line across the image"
TILE_SEAM = "tile_seam"
#: tile_seam flags a seam score above 5: a good denoise of the sample images reads at most 3.5, a
#: step of 0.25 x the noise sigma along one line at least 5.7, the shipped model's seams 6.7 and 8.5
#: (docs/results/harm_flags.md; see the module docstring for noise alone)
SEAM_THRESHOLD = 5.0
#: widths in pixels of the two sides compared across a line: 2 for a thin ridge, 8 for a faint step
SEAM_WIDTHS = (2, 8)
#: each line's rows are cut into this many segments; the spread between them is the step's noise
SEAM_SEGMENTS = 8
#: the outermost pixels on each side, this many, take no part in the seam check (padding changes them)
SEAM_MARGIN = 4
#: a change along a line is allowed this fraction of the input's own straight edge nearby
SEAM_OF_INPUT_STEP = 0.25
#: a step smaller than this fraction of the noise sigma of the quieter image is negligible
SEAM_NEGLIGIBLE = 0.05
#: the smooth trend removed from the steps across the lines: a Gaussian of sigma this many widths (k)
_SEAM_TREND = 4.0
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
        name: :data:`NOISE_UP`, :data:`PERIODIC_PATTERN` or :data:`TILE_SEAM`.
        value: the measured figure (dimensionless, >= 0): a ratio after / before for the first two,
            the seam score (a jump in noise units) for ``tile_seam``.
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


def pattern_powers(img: Any, *, max_slices: int = 16) -> dict[str, float]:
    """The power of each 2-pixel pattern in an image, as the ``periodic_pattern`` check measures it.

    Args:
        img: ``(C, H, W)`` or ``(C, H, W, D)`` with ``H, W >= 4``, numpy or torch, real; the
            measured slices must be finite.
        max_slices: most slices measured (evenly spaced), >= 1.

    Returns:
        ``{"H": ..., "W": ..., "HW": ...}``: the power of the stripes alternating along ``H``,
        along ``W`` and of the pixel checkerboard, in squared image units (a pattern of amplitude
        ``a`` added to a smooth image reads ``a^2``; see :mod:`medden.metrics.harm`).

    Raises:
        ValueError: a rank other than ``(C, H, W[, D])``, ``H`` or ``W`` below 4, non-finite
            values in the measured slices, or ``max_slices < 1``.
        TypeError: not a numpy array or torch tensor, or complex.

    Example:
        >>> stripes = np.tile([1.0, -1.0], (1, 64, 32))  # alternates along W, amplitude 1
        >>> {key: round(power, 3) for key, power in pattern_powers(stripes).items()}
        {'H': 0.0, 'W': 1.0, 'HW': 0.0}
    """
    planes = _planes(img, "img", check_int(max_slices, "max_slices", 1))
    _check_size(planes.shape, tuple(img.shape))
    return {key: _pattern_power(planes, along_h, along_w) for key, ((along_h, along_w), _) in _PATTERNS.items()}


def _check_size(planes_shape: tuple[int, ...], shape: tuple[int, ...]) -> None:
    if min(planes_shape[1:]) < 4:
        raise ValueError(f"the image needs H, W >= 4 to measure 2-pixel patterns and seams, got shape {shape}.")


def _segment_profiles(planes: np.ndarray, along_h: bool) -> np.ndarray:
    """Means of ``(planes, H, W)`` over segments of each line, ``(planes, segments, lines)`` float64.

    ``along_h``: the lines run along ``H`` (one per column, averaged over segments of rows);
    else along ``W``. Each line is cut into ``SEAM_SEGMENTS`` segments (one pixel each for lines
    shorter than ``2 * SEAM_SEGMENTS``); pixels past the last whole segment are left out.
    """
    count, height, width = planes.shape
    length = height if along_h else width
    size = max(length // SEAM_SEGMENTS, 1)
    segments = length // size
    if along_h:
        return planes[:, : segments * size].reshape(count, segments, size, width).mean(axis=2, dtype=np.float64)
    rows = planes[:, :, : segments * size].reshape(count, height, segments, size).mean(axis=3, dtype=np.float64)
    return rows.transpose(0, 2, 1)


def _steps(profiles: np.ndarray, width: int) -> np.ndarray:
    """The step across each line between positions ``j`` and ``j + 1``, for ``j = width - 1 ..
    n - width - 1``: the mean of the ``width`` positions after it minus the ``width`` before, less
    its Gaussian-smoothed trend along the positions; ``(..., n - 2 width + 1)``, image units."""
    from scipy.ndimage import gaussian_filter1d

    total = np.concatenate([np.zeros((*profiles.shape[:-1], 1)), np.cumsum(profiles, axis=-1)], axis=-1)
    line = np.arange(width - 1, profiles.shape[-1] - width)
    step = (total[..., line + 1 + width] - 2.0 * total[..., line + 1] + total[..., line + 1 - width]) / width
    return step - gaussian_filter1d(step, _SEAM_TREND * width, axis=-1, mode="nearest")


def _step_and_error(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each line's step (mean over segments) and its standard error from the spread between the
    segments, at least the median spread over the plane's lines; both ``(planes, lines)``."""
    spread = steps.var(axis=1, ddof=1)
    pooled = np.array([np.median(plane[plane > 0]) if (plane > 0).any() else 0.0 for plane in spread])
    return steps.mean(axis=1), np.sqrt(np.maximum(spread, pooled[:, None]) / steps.shape[1])


def _seam_scores(before: np.ndarray, change: np.ndarray, width: int, floor: float) -> np.ndarray:
    """Seam score of every line (see :mod:`medden.metrics.harm`) from ``(planes, segments, n)``
    profiles of the input and of the change; root mean square over planes, ``(n - 2 width + 1,)``."""
    from scipy.ndimage import maximum_filter1d

    step, error = _step_and_error(_steps(change, width))
    input_step, input_error = _step_and_error(_steps(before, width))
    # the input's own straight edges (steps well above their noise), the largest among the lines
    # whose sides overlap this line's: a denoiser may soften or sharpen such an edge
    edge = maximum_filter1d(np.maximum(np.abs(input_step) - 3.0 * input_error, 0.0), 2 * width + 1, axis=-1,
                            mode="nearest")
    return np.sqrt(np.mean((step / (error + SEAM_OF_INPUT_STEP * edge + floor)) ** 2, axis=0))


def _worst_seam(before: np.ndarray, change: np.ndarray, floor: float) -> tuple[float, bool, int]:
    """The largest seam score over both line directions and ``SEAM_WIDTHS``: ``(score, along_h,
    line)``, the line lying between positions ``line`` and ``line + 1`` (0.0 when none is measured).
    The outer ``SEAM_MARGIN`` positions on each side take no part."""
    worst = (0.0, True, 0)
    for along_h in (True, False):
        positions = before.shape[2 if along_h else 1]
        before_profiles, change_profiles = (_segment_profiles(img, along_h)[..., SEAM_MARGIN : positions - SEAM_MARGIN]
                                            for img in (before, change))
        for width in SEAM_WIDTHS:
            if change_profiles.shape[-1] < 2 * width:
                continue
            scores = _seam_scores(before_profiles, change_profiles, width, floor)
            best = int(np.argmax(scores))
            if scores[best] > worst[0]:
                worst = (float(scores[best]), along_h, SEAM_MARGIN + width - 1 + best)
    return worst


def _tile_seam(before: np.ndarray, after: np.ndarray, sigma: float, negligible: float) -> HarmFlag:
    """``tile_seam``: the largest seam score against :data:`SEAM_THRESHOLD`; ``sigma`` is the noise
    of the quieter image (a step below ``SEAM_NEGLIGIBLE * sigma`` is negligible)."""
    floor = max(SEAM_NEGLIGIBLE * sigma, negligible)
    score, along_h, line = _worst_seam(before, after - before, floor)
    along, across = ("H", "W") if along_h else ("W", "H")
    where = f"a straight line along {along} (between {across} = {line} and {line + 1})"
    if score > SEAM_THRESHOLD:
        message = (f"The denoised image shows a seam: the change made by denoising jumps across {where}, "
                   f"{score:.3g} x the noise of that jump (flagged above {SEAM_THRESHOLD:g}). Denoising in tiles "
                   "leaves such lines where the tiles meet; inspect the output at full resolution before using it.")
    else:
        message = (f"No seam: the largest jump in the change, across {where}, is {score:.3g} x its noise "
                   f"(flagged above {SEAM_THRESHOLD:g}).")
    return HarmFlag(TILE_SEAM, score, SEAM_THRESHOLD, score > SEAM_THRESHOLD, message)


def _measured(before: Any, after: Any, max_slices: Any) -> tuple[np.ndarray, np.ndarray]:
    """The same at most ``max_slices`` slices of ``before`` and ``after`` as ``(planes, H, W)`` arrays."""
    max_slices = check_int(max_slices, "max_slices", 1)
    shapes = [tuple(img.shape) if isinstance(img, (np.ndarray, torch.Tensor)) else None for img in (before, after)]
    if None not in shapes and shapes[0] != shapes[1]:
        raise ValueError(f"before and after must have one shape, got {shapes[0]} and {shapes[1]}; "
                         "pass the denoiser's input and its output for the same image.")
    before_planes, after_planes = _planes(before, "before", max_slices), _planes(after, "after", max_slices)
    _check_size(before_planes.shape, shapes[0])
    return before_planes, after_planes


def change_to_noise(before: Any, after: Any, *, max_slices: int = 16) -> float:
    """How large the change a denoiser made is next to the input's own noise.

    ``(std(after - before) + e) / (sigma(before) + e)`` over the same at most ``max_slices``
    evenly spaced slices, with ``e`` the negligible level of the input (1e-5 of its intensity
    scale, :data:`NEGLIGIBLE_OF_SCALE`) so that a noise-free input does not divide by zero, and
    ``sigma`` the larger of :func:`~medden.core.noise_estimation.estimate_noise_sigma` (finest
    detail) and :func:`~medden.core.noise_estimation.flat_region_sigma` (the spread of the
    flattest blocks): real CT and radiograph noise is correlated by the reconstruction kernel or
    the detector, and the finest detail alone reads it several times too low (``693_UNCR``:
    0.62 HU, flat blocks 1.96 HU). About 1 when a denoiser removes just the noise; the project's target on clean real
    files is <= 2. Not a harm check: removing strong noise changes an image far more.

    Args:
        before: the denoiser's input, ``(C, H, W)`` or ``(C, H, W, D)`` with ``H, W >= 4``,
            numpy or torch, real, in its own units; the measured slices must be finite.
        after: the denoiser's output, same shape and units.
        max_slices: most slices measured, >= 1.

    Returns:
        The ratio, dimensionless, >= 0.

    Raises:
        ValueError: as :func:`harm_flags`.
        TypeError: as :func:`harm_flags`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> noisy = rng.normal(0.0, 1.0, (1, 64, 64))
        >>> round(change_to_noise(noisy, np.zeros_like(noisy)), 1)  # removes exactly the noise
        1.0
    """
    before_planes, after_planes = _measured(before, after, max_slices)
    change = float(np.std(after_planes - before_planes, dtype=np.float64))
    negligible = _negligible(before_planes)
    sigma = max(estimate_noise_sigma(before_planes), flat_region_sigma(before_planes))
    return (change + negligible) / (sigma + negligible)


def harm_flags(before: Any, after: Any, *, max_slices: int = 16, include_passed: bool = False) -> list[HarmFlag]:
    """Check, without a clean reference, whether a denoiser made an image worse.

    Runs the ``noise_up``, ``periodic_pattern`` and ``tile_seam`` checks described in
    :mod:`medden.metrics.harm` on the same at most ``max_slices`` evenly spaced slices of both images.

    Args:
        before: the denoiser's input, ``(C, H, W)`` or ``(C, H, W, D)`` with ``H, W >= 4``,
            numpy or torch, real, in its own units (HU, 0-255, ...); the measured slices
            must be finite.
        after: the denoiser's output, same shape and units.
        max_slices: most slices measured, >= 1.
        include_passed: also return the checks that passed (``raised`` False), e.g. to log
            their values.

    Returns:
        The raised checks, in the order ``noise_up``, ``periodic_pattern``, ``tile_seam``; empty
        when none is. With ``include_passed``, all three.

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
    before_planes, after_planes = _measured(before, after, max_slices)
    # each plane is measured alone, as one channel of one slice
    sigma_before, sigma_after = estimate_noise_sigma(before_planes), estimate_noise_sigma(after_planes)
    negligible, quieter = _negligible(before_planes), min(sigma_before, sigma_after)
    flags = [_noise_up(sigma_before, sigma_after, negligible),
             _periodic_pattern(before_planes, after_planes, quieter, negligible),
             _tile_seam(before_planes, after_planes, quieter, negligible)]
    return flags if include_passed else [flag for flag in flags if flag.raised]
