"""Classical denoisers every learned one is measured against: NLM and BM3D, with the Anscombe
route for Poisson noise.

Each anchor takes a ``(1, H, W)`` grey or ``(3, H, W)`` RGB float image and its Gaussian noise
standard deviation ``sigma`` (same units) and returns a float32 image of the same shape; ``sigma=None`` estimates it
(wavelet MAD, scikit-image). :func:`with_anscombe` turns a Gaussian anchor into a Poisson (or
Poisson-Gaussian) one: variance-stabilise the counts, denoise at unit sigma, invert with the
exact unbiased inverse (:mod:`medden.variance_stabilization`).
BM3D needs the ``bm3d`` package (the ``bench`` extra).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medden.validation import check_finite, check_positive, check_range
from medden.variance_stabilization import generalized_anscombe, inverse_generalized_anscombe

__all__ = ["anscombe", "bm3d_denoise", "inverse_anscombe", "nlm_denoise", "with_anscombe"]

Anchor = Callable[[np.ndarray, "float | None"], np.ndarray]


def _plane(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image, np.float64)
    if arr.ndim != 3 or arr.shape[0] != 1:
        raise ValueError(f"this anchor takes one grey image shaped (1, H, W), got shape {arr.shape}.")
    check_finite(arr, "image")
    return arr[0]


def _channels_last(image: np.ndarray) -> np.ndarray:
    """``(1, H, W)`` grey -> ``(H, W)``; ``(3, H, W)`` RGB -> ``(H, W, 3)``."""
    arr = np.asarray(image, np.float64)
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(f"anchors take a grey (1, H, W) or RGB (3, H, W) image, got shape {arr.shape}.")
    check_finite(arr, "image")
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def _channels_first(out: np.ndarray) -> np.ndarray:
    out = np.asarray(out, np.float32)
    return out[None] if out.ndim == 2 else out.transpose(2, 0, 1)


def _sigma(plane: np.ndarray, sigma: float | None) -> float:
    if sigma is None:
        from skimage.restoration import estimate_sigma

        channel_axis = -1 if plane.ndim == 3 else None
        return max(float(estimate_sigma(plane, channel_axis=channel_axis, average_sigmas=True)), 1e-6)
    return check_positive(sigma, "sigma")


def nlm_denoise(image: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """scikit-image non-local means (5x5 patches, 13x13 search, ``h = 0.8 sigma``), grey or RGB."""
    from skimage.restoration import denoise_nl_means

    plane = _channels_last(image)
    level = _sigma(plane, sigma)
    out = denoise_nl_means(plane, h=0.8 * level, sigma=level, patch_size=5, patch_distance=6, fast_mode=True,
                           channel_axis=-1 if plane.ndim == 3 else None)
    return _channels_first(out)


def bm3d_denoise(image: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """BM3D (the reference ``bm3d`` package, all stages) at noise level ``sigma``; RGB images go
    through ``bm3d_rgb`` (opponent colour space, sigma in RGB units)."""
    try:
        import bm3d
    except ImportError as err:
        raise ModuleNotFoundError("BM3D needs the bm3d package: pip install 'medden[bench]'") from err
    plane = _channels_last(image)
    level = _sigma(plane, sigma)
    out = bm3d.bm3d_rgb(plane, level) if plane.ndim == 3 else bm3d.bm3d(plane, sigma_psd=level)
    return _channels_first(out)


def anscombe(counts: np.ndarray) -> np.ndarray:
    """Anscombe transform ``2 sqrt(c + 3/8)``: Poisson counts to roughly unit-variance Gaussian
    (:func:`medden.variance_stabilization.generalized_anscombe` without read noise)."""
    return generalized_anscombe(counts)


def inverse_anscombe(stabilised: np.ndarray) -> np.ndarray:
    """Exact unbiased inverse of :func:`anscombe` (Makitalo and Foi's closed-form approximation).

    The algebraic inverse ``(D / 2)**2 - 3/8`` is biased at low counts; this one returns the
    expected count whose transform has mean ``D``. Values below the transform of zero map to 0.
    """
    return inverse_generalized_anscombe(stabilised)


def with_anscombe(anchor: Anchor, peak: float, read_sigma: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    """A Poisson(-Gaussian) denoiser for ``y = Poisson(peak * x) / peak (+ N(0, read_sigma^2))``
    from a Gaussian ``anchor``.

    ``y * peak`` are the counts (read noise ``read_sigma * peak`` in counts); they are stabilised
    with the generalised Anscombe transform, denoised at sigma 1, inverted with the exact
    unbiased inverse and divided by ``peak`` again, so the result is in ``y``'s units.
    """
    peak = check_positive(peak, "peak")
    sigma = check_range(read_sigma, "read_sigma", 0.0)[0] * peak

    def denoise(image: np.ndarray) -> np.ndarray:
        stabilised = generalized_anscombe(_plane(image) * peak, sigma=sigma)[None]
        return (inverse_generalized_anscombe(anchor(stabilised, 1.0), sigma=sigma) / peak).astype(np.float32)

    return denoise
