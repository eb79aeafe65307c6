"""The Anscombe route: a Gaussian denoiser turned into a Poisson(-Gaussian) one."""

from __future__ import annotations

import numpy as np

from medden.anchors.base import Anchor, ClassicalDenoiser, check_image
from medden.core.validation import check_positive, check_range
from medden.core.variance_stabilization import generalized_anscombe, inverse_generalized_anscombe

__all__ = ["AnscombeDenoiser", "anscombe", "inverse_anscombe", "with_anscombe"]


def anscombe(counts: np.ndarray) -> np.ndarray:
    """Anscombe transform ``2 sqrt(c + 3/8)``: Poisson counts to roughly unit-variance Gaussian
    (:func:`medden.core.variance_stabilization.generalized_anscombe` without read noise)."""
    return generalized_anscombe(counts)


def inverse_anscombe(stabilised: np.ndarray) -> np.ndarray:
    """Exact unbiased inverse of :func:`anscombe` (Makitalo and Foi's closed-form approximation).

    The algebraic inverse ``(D / 2)**2 - 3/8`` is biased at low counts; this one returns the
    expected count whose transform has mean ``D``. Values below the transform of zero map to 0.
    """
    return inverse_generalized_anscombe(stabilised)


class AnscombeDenoiser:
    """Denoiser of ``y = Poisson(peak * x) / peak (+ N(0, read_sigma^2))`` from a Gaussian one.

    ``y * peak`` are the counts (read noise ``read_sigma * peak`` in counts). Every channel is
    stabilised with the generalised Anscombe transform; the stabilised ``(C, H, W)`` image is
    denoised at sigma 1, inverted with the exact unbiased inverse and divided by ``peak``. The
    input is a ``(C, H, W)`` grey or RGB float image (RGB if the inner denoiser takes it); the
    result is float32 of its shape, in its units.

    Args:
        denoiser: a :class:`~medden.anchors.ClassicalDenoiser` (run at sigma 1 whatever its
            own ``sigma``) or an anchor function ``anchor(image, sigma)``, called with sigma 1.
        peak: counts per unit intensity, > 0.
        read_sigma: std of the additive Gaussian read noise in ``y``'s units, >= 0.
        name: label for tables; None for the inner denoiser's ``name`` (or function name)
            followed by ``"+Anscombe"``.

    Example:
        >>> from medden.anchors import TVDenoiser
        >>> AnscombeDenoiser(TVDenoiser(), peak=30.0).name
        'TV+Anscombe'
    """

    def __init__(self, denoiser: ClassicalDenoiser | Anchor, peak: float, read_sigma: float = 0.0,
                 name: str | None = None) -> None:
        if not callable(denoiser):
            raise TypeError(f"denoiser must be a ClassicalDenoiser or a function (image, sigma), got {denoiser!r}.")
        self.denoiser = denoiser
        self.peak = check_positive(peak, "peak")
        self.read_sigma = check_range(read_sigma, "read_sigma", 0.0)[0]
        inner = getattr(denoiser, "name", None) or getattr(denoiser, "__name__", type(denoiser).__name__)
        self.name = name or f"{inner}+Anscombe"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Denoise a ``(C, H, W)`` Poisson(-Gaussian) image; returns float32 of its shape."""
        read = self.read_sigma * self.peak
        stabilised = generalized_anscombe(check_image(image) * self.peak, sigma=read)
        if isinstance(self.denoiser, ClassicalDenoiser):
            denoised = self.denoiser.at_sigma(1.0)(stabilised)
        else:
            denoised = self.denoiser(stabilised, 1.0)
        out = inverse_generalized_anscombe(np.asarray(denoised, np.float64), sigma=read)
        return (out / self.peak).astype(np.float32)

    def __repr__(self) -> str:
        return f"AnscombeDenoiser({self.denoiser!r}, peak={self.peak!r}, read_sigma={self.read_sigma!r})"


def with_anscombe(anchor: Anchor | ClassicalDenoiser, peak: float, read_sigma: float = 0.0) -> AnscombeDenoiser:
    """``AnscombeDenoiser(anchor, peak, read_sigma)``, the form scripts use:
    ``with_anscombe(bm3d_denoise, 30.0)(y)``."""
    return AnscombeDenoiser(anchor, peak, read_sigma)
