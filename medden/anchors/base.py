"""The denoiser interface shared by the classical anchors, and the checks behind it."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from medden.core.validation import check_finite, check_positive

__all__ = ["Anchor", "ClassicalDenoiser"]

#: the function form of a Gaussian denoiser: ``anchor(image, sigma) -> denoised``
Anchor = Callable[[np.ndarray, "float | None"], np.ndarray]


def check_image(image: np.ndarray, channels: tuple[int, ...] = (1, 3)) -> np.ndarray:
    """A float64 copy of a finite ``(C, H, W)`` image with ``C`` in ``channels``."""
    arr = np.array(image, np.float64)
    if arr.ndim != 3 or arr.shape[0] not in channels or min(arr.shape) == 0:
        kinds = " or ".join(f"{'grey' if c == 1 else 'RGB'} ({c}, H, W)" for c in channels)
        fix = ("add a channel axis with image[None]" if arr.ndim == 2 else
               "pass one channel at a time" if channels == (1,) else "convert it to grey or RGB")
        raise ValueError(f"image must be a {kinds} image, got shape {arr.shape}; {fix}.")
    check_finite(arr, "image")
    return arr


def channels_first(out: np.ndarray) -> np.ndarray:
    """``(H, W)`` -> ``(1, H, W)``; ``(H, W, 3)`` -> ``(3, H, W)``; float32."""
    out = np.asarray(out, np.float32)
    return out[None] if out.ndim == 2 else np.ascontiguousarray(out.transpose(2, 0, 1))


def wavelet_sigma(plane: np.ndarray) -> float:
    """Gaussian noise std of a channels-last ``(H, W)`` or ``(H, W, 3)`` plane: median absolute
    deviation of the finest wavelet detail (scikit-image ``estimate_sigma``), at least 1e-6."""
    from skimage.restoration import estimate_sigma

    channel_axis = -1 if plane.ndim == 3 else None
    return max(float(estimate_sigma(plane, channel_axis=channel_axis, average_sigmas=True)), 1e-6)


class ClassicalDenoiser(ABC):
    """Base of the classical denoisers: checks the image, picks sigma, converts the layout.

    ``denoiser(image)`` takes a ``(C, H, W)`` float image (``C`` in :attr:`channels`, values
    nominally in [0, 1]) and returns float32 of the same shape; the input is not modified.
    Subclasses override :meth:`_denoise`, which gets a channels-last float64 plane,
    ``(H, W)`` or ``(H, W, 3)``, and the sigma to use.

    Args:
        sigma: Gaussian noise std in the image's units; None estimates it per image
            (:meth:`noise_sigma`; by default the wavelet estimate).
    """

    #: short label for tables
    name = "classical"
    #: accepted channel counts
    channels: tuple[int, ...] = (1, 3)

    def __init__(self, sigma: float | None = None) -> None:
        self.sigma = None if sigma is None else check_positive(sigma, "sigma")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Denoise a ``(C, H, W)`` float image; returns float32 of the same shape."""
        plane = self._plane(image)
        return channels_first(self._denoise(plane, self._noise_sigma(plane)))

    def noise_sigma(self, image: np.ndarray) -> float:
        """The sigma :meth:`__call__` uses for ``image``: ``self.sigma`` or the estimate."""
        return self._noise_sigma(self._plane(image))

    def at_sigma(self, sigma: float) -> ClassicalDenoiser:
        """A copy of this denoiser working at the fixed noise level ``sigma``."""
        fixed = copy.copy(self)
        fixed.sigma = check_positive(sigma, "sigma")
        return fixed

    def _plane(self, image: np.ndarray) -> np.ndarray:
        arr = check_image(image, self.channels)
        return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)

    def _noise_sigma(self, plane: np.ndarray) -> float:
        return self.sigma if self.sigma is not None else wavelet_sigma(plane)

    @abstractmethod
    def _denoise(self, plane: np.ndarray, sigma: float) -> np.ndarray:
        """Denoise a channels-last ``(H, W)`` or ``(H, W, 3)`` float64 plane at ``sigma``."""

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({params})"
