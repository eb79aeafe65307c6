"""The intensity range a network sees: which values of an image map to 0 and 1.

Used alike at inference (:func:`medden.inference.denoise_image`) and in training
(:class:`medden.transforms.ScaleByNoisyRange`), so a network is trained on pairs scaled the
way ``medden denoise`` scales a user's noisy image.
"""

from __future__ import annotations

import numpy as np

from medden.core.validation import check_range

__all__ = ["intensity_range"]


def intensity_range(image: np.ndarray, percentiles: tuple[float, float] = (0.0, 100.0), smoothing: int = 0
                    ) -> tuple[float, float]:
    """The intensities ``(low, high)`` that map to [0, 1] before a network sees ``image``.

    ``low`` and ``high`` are the ``percentiles`` of ``image`` (``(C, H, W[, D])``), measured on
    a copy smoothed in-plane by a ``smoothing`` x ``smoothing`` box mean when ``smoothing > 1``:
    noise widens the extreme percentiles of a noisy image (dark air reads about 2.6 sigma
    below its true level), and smoothing keeps the mapping close to that of the clean
    images the network was trained on. ``high <= low`` (a constant image) gives ``(low, low + 1)``.
    """
    low_pct, high_pct = check_range(percentiles, "percentiles", 0.0, 100.0)
    arr = np.asarray(image, dtype=np.float32)
    if smoothing > 1:
        from scipy.ndimage import uniform_filter

        size = [1, smoothing, smoothing] + [1] * (arr.ndim - 3)
        arr = uniform_filter(arr, size=size, mode="reflect")
    low, high = (float(v) for v in np.percentile(arr, [low_pct, high_pct]))
    return (low, high) if high > low else (low, low + 1.0)
