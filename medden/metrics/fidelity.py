"""Diagnostic fidelity: does a denoiser erase or invent anatomy?

PSNR and SSIM reward smoothness; a denoiser that blurs away a small lesion can still score
well. Two measures that look at structure instead, both against the clean image:

* :func:`method_noise_correlation`: the Pearson correlation between the *method noise*
  ``noisy - denoised`` (what the denoiser removed) and the clean image. For zero-mean noise an
  ideal denoiser removes only noise, uncorrelated with the anatomy, so the value is near 0; a
  positive value means anatomy was removed with the noise. For noise that is not zero-mean
  given the image (Bernoulli dropout, k-space aliasing) even the ideal output ``clean`` gives
  ``corr(noisy - clean, clean)``; :func:`method_noise_correlation` of the clean image itself is
  the reference to compare with.
* :func:`contrast_to_noise`: the contrast-to-noise ratio of a small bright and a small dark
  structure, found automatically in the clean image by :func:`find_small_structures` (a disk
  that differs most from the ring around it). Contrast is measured in the method's output;
  noise is the standard deviation of ``output - clean`` in the ring, so anatomy texture is
  not counted as noise. The clean image's contrast over the same rings is the reference
  (``contrast_kept = contrast / clean contrast``: 1 keeps it, < 1 washes it out, > 1 invents
  it).

Images are ``(C, H, W)`` float arrays in one intensity scale; multi-channel images are
averaged over channels first (luminance-like).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medden.core.validation import check_finite

__all__ = ["SmallStructures", "contrast_to_noise", "find_small_structures", "method_noise_correlation"]


def _plane(image: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(image, np.float64)
    if arr.ndim != 3:
        raise ValueError(f"{name} must be one (C, H, W) image, got shape {arr.shape}.")
    check_finite(arr, name)
    return arr.mean(axis=0)


def method_noise_correlation(noisy: np.ndarray, denoised: np.ndarray, clean: np.ndarray) -> float:
    """Pearson correlation of ``noisy - denoised`` with ``clean`` over all pixels, in [-1, 1]
    (0 when either is constant to within float32 rounding of the image's scale).

    Example:
        >>> clean = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 8, 8)
        >>> round(method_noise_correlation(clean + 0.1, clean, clean), 3)  # removed a constant only
        0.0
        >>> round(method_noise_correlation(clean, 0.5 * clean, clean), 3)  # removed half the anatomy
        1.0
    """
    clean_p = _plane(clean, "clean")
    removed = _plane(noisy, "noisy") - _plane(denoised, "denoised")
    if removed.shape != clean_p.shape:
        raise ValueError(f"noisy, denoised and clean must have one shape, got {removed.shape} and {clean_p.shape}.")
    a, b = removed - removed.mean(), clean_p - clean_p.mean()
    # below float32 resolution of the image's scale a map is constant (its rounding is not a signal)
    floor = 1e-6 * max(1.0, float(np.abs(clean_p).max()))
    if a.std() <= floor or b.std() <= floor:
        return 0.0
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@dataclass(frozen=True)
class SmallStructures:
    """Boolean ``(H, W)`` masks of a bright and a dark structure and the rings around them."""

    bright: np.ndarray
    bright_ring: np.ndarray
    dark: np.ndarray
    dark_ring: np.ndarray


def _disk(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx**2 + yy**2) <= radius**2


def find_small_structures(clean: np.ndarray, radius: int = 3, ring: int = 4, margin: int = 12) -> SmallStructures:
    """The brightest and the darkest small structure of a clean image.

    A structure is a disk of ``radius`` pixels; its background the ring from ``radius + 1`` to
    ``radius + 1 + ring`` pixels. The bright one maximises ``mean(disk) - mean(ring)`` and the
    dark one minimises it, over centres at least ``margin`` pixels inside the image and (for
    the dark one) with a ring brighter than the image's 25th percentile, so that the dark
    structure sits in tissue, not in air. Deterministic: no randomness.

    Args:
        clean: ``(C, H, W)`` clean image, each side > ``2 * margin``.

    Raises:
        ValueError: the image is too small for ``margin``.
    """
    from scipy.ndimage import convolve

    plane = _plane(clean, "clean")
    if min(plane.shape) <= 2 * margin:
        raise ValueError(f"the image {plane.shape} is too small for margin={margin}; use a smaller margin.")
    outer = radius + 1 + ring
    disk = np.pad(_disk(radius), outer - radius)
    annulus = _disk(outer) & ~np.pad(_disk(radius + 1), outer - radius - 1)
    kernel = disk / disk.sum() - annulus / annulus.sum()
    contrast = convolve(plane, kernel, mode="reflect")
    ring_mean = convolve(plane, annulus / annulus.sum(), mode="reflect")
    inside = np.zeros_like(plane, bool)
    inside[margin:-margin, margin:-margin] = True
    tissue = inside & (ring_mean > np.percentile(plane, 25))
    bright = np.unravel_index(np.argmax(np.where(inside, contrast, -np.inf)), plane.shape)
    dark = np.unravel_index(np.argmin(np.where(tissue if tissue.any() else inside, contrast, np.inf)), plane.shape)

    def place(mask: np.ndarray, centre: tuple) -> np.ndarray:
        out = np.zeros_like(plane, bool)
        r = mask.shape[0] // 2
        out[centre[0] - r:centre[0] + r + 1, centre[1] - r:centre[1] + r + 1] = mask
        return out

    return SmallStructures(place(disk, bright), place(annulus, bright), place(disk, dark), place(annulus, dark))


def contrast_to_noise(image: np.ndarray, clean: np.ndarray, structures: SmallStructures | None = None
                      ) -> dict[str, float]:
    """Contrast-to-noise ratio of the bright and dark structure in ``image``.

    Returns:
        ``{"cnr_bright", "cnr_dark", "contrast_kept_bright", "contrast_kept_dark"}``: CNR is
        the contrast (disk mean minus ring mean, sign taken so the clean image's is positive)
        over the standard deviation of ``image - clean`` in the ring (inf for the clean image
        itself); contrast kept is the contrast over the clean image's.
    """
    structures = structures or find_small_structures(clean)
    plane, clean_p = _plane(image, "image"), _plane(clean, "clean")
    out = {}
    for label, disk, ring in (("bright", structures.bright, structures.bright_ring),
                              ("dark", structures.dark, structures.dark_ring)):
        reference = clean_p[disk].mean() - clean_p[ring].mean()
        sign = 1.0 if reference >= 0 else -1.0
        contrast = sign * (plane[disk].mean() - plane[ring].mean())
        noise = (plane - clean_p)[ring].std()
        out[f"cnr_{label}"] = float(contrast / noise) if noise > 0 else float("inf")
        out[f"contrast_kept_{label}"] = float(contrast / abs(reference)) if reference != 0 else float("nan")
    return out
