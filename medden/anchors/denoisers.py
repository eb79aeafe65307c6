"""The classical Gaussian denoisers (NLM, BM3D, total variation, Rician NLM) and their registry."""

from __future__ import annotations

import inspect

import numpy as np

from medden.anchors.base import ClassicalDenoiser
from medden.core.noise_estimation import rician_background_sigma
from medden.core.validation import check_positive, lookup_by_name

__all__ = [
    "CLASSICAL_DENOISERS",
    "BM3DDenoiser",
    "NLMDenoiser",
    "RicianNLMDenoiser",
    "TVDenoiser",
    "bm3d_denoise",
    "classical_denoiser",
    "nlm_denoise",
]

#: non-local means filter strength ``h`` in units of sigma
NLM_H_PER_SIGMA = 0.8
#: TV weight in units of sigma (measured, see :class:`TVDenoiser`)
TV_WEIGHT_PER_SIGMA = 0.75
#: dipy nlmeans patch and search radii, and the slices it needs to pad an axis without reading past it
_DIPY_PATCH, _DIPY_BLOCK = 1, 5
_DIPY_DEPTH = _DIPY_PATCH + _DIPY_BLOCK + 1


class NLMDenoiser(ClassicalDenoiser):
    """scikit-image non-local means: 5x5 patches, 13x13 search, ``h = 0.8 sigma``, grey or RGB.

    Args:
        sigma: Gaussian noise std in the image's units; None estimates it per image.
    """

    name = "NLM"

    def _denoise(self, plane, sigma):
        from skimage.restoration import denoise_nl_means

        return denoise_nl_means(plane, h=NLM_H_PER_SIGMA * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                fast_mode=True, channel_axis=-1 if plane.ndim == 3 else None)


def _optional_module(name: str, needed_by: str, install: str):
    """Import ``name`` or raise a ModuleNotFoundError that says how to install it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ModuleNotFoundError(f"{needed_by} needs {name.split('.')[0]}: {install}") from err


def _import_bm3d():
    return _optional_module("bm3d", "BM3D", "pip install 'medden[bench]'")


class BM3DDenoiser(ClassicalDenoiser):
    """BM3D (the reference ``bm3d`` package, all stages); RGB images go through ``bm3d_rgb``
    (opponent colour space, sigma in RGB units).

    Args:
        sigma: Gaussian noise std in the image's units; None estimates it per image.

    Raises:
        ModuleNotFoundError: the ``bm3d`` package is not installed.
    """

    name = "BM3D"

    def __init__(self, sigma: float | None = None) -> None:
        super().__init__(sigma)
        _import_bm3d()

    def _denoise(self, plane, sigma):
        bm3d = _import_bm3d()
        return bm3d.bm3d_rgb(plane, sigma) if plane.ndim == 3 else bm3d.bm3d(plane, sigma_psd=sigma)


class TVDenoiser(ClassicalDenoiser):
    """Total-variation denoising (scikit-image ``denoise_tv_chambolle``), grey or RGB.

    Without a ``weight`` it is ``0.75 sigma``. Measured on ``skimage.data.camera()`` in [0, 1]
    with Gaussian noise, multipliers 0.5 to 3: 0.75 is best at sigma 20/255 (29.71 dB; 0.5
    gives 28.82, 1.0 gives 29.35) and within 0.3 dB of the best (0.6) at 10/255 (32.63 against
    32.94 dB); the astronaut image, grey and RGB, agrees.

    Args:
        sigma: noise std that sets the default weight; None estimates it per image.
        weight: TV weight in the image's units (larger smooths more); None for ``0.75 sigma``.
    """

    name = "TV"

    def __init__(self, sigma: float | None = None, weight: float | None = None) -> None:
        super().__init__(sigma)
        self.weight = None if weight is None else check_positive(weight, "weight")

    def _denoise(self, plane, sigma):
        from skimage.restoration import denoise_tv_chambolle

        weight = self.weight if self.weight is not None else TV_WEIGHT_PER_SIGMA * sigma
        return denoise_tv_chambolle(plane, weight=weight, channel_axis=-1 if plane.ndim == 3 else None)


def _import_nlmeans():
    return _optional_module("dipy.denoise.nlmeans", "RicianNLMDenoiser", "pip install dipy (or 'medden[samples]')").nlmeans


class RicianNLMDenoiser(ClassicalDenoiser):
    """Rician-aware non-local means for magnitude MRI (dipy ``nlmeans``, classic method).

    Grey ``(1, H, W)`` magnitude images only, ``H, W >= 7``: RGB is refused (magnitude MRI is
    grey; use :class:`NLMDenoiser` for colour). dipy denoises 3D volumes and pads each axis by
    reflecting ``block_radius + patch_radius`` voxels, reading past the end of a thinner axis
    (an ``(H, W, 1)`` volume gives run-to-run differences and overflow warnings in dipy 1.12).
    So the plane is repeated into 7 identical slices and only the middle one is denoised (a
    dipy mask): a 2D NLM with 3x3 patches and an 11x11 search window (dipy's classic
    defaults), at the cost of one slice.

    With ``sigma=None`` and ``rician=True`` sigma is measured in the air around the object
    (:func:`medden.core.noise_estimation.rician_background_sigma`, which corrects for the Rayleigh
    law of magnitude noise there); where no air is found it falls back to the wavelet
    estimate, right where signal dominates (Rician noise is then nearly Gaussian). dipy's
    ``estimate_sigma`` is not used: its six-neighbour residual is calibrated for 3D and reads
    about 0.69 sigma on a single plane (its ``N=1`` Rayleigh correction cancels that only by
    accident), and the wavelet estimate alone reads low in air (Rayleigh std 0.655 sigma).
    On a 128x128 brain slice (83% air, sigma 0.06, 21.8 dB noisy) the three give 0.032, 0.041
    and 0.060, and the result 23.4, 24.7 and 32.7 dB (22.1 dB with ``rician=False``). With
    ``rician=False`` (Gaussian noise) the wavelet estimate is used.

    Args:
        sigma: std of the Gaussian noise on the real and imaginary channels, in the image's
            units; None estimates it per image (above).
        rician: model the Rician bias of magnitude data; False treats the noise as Gaussian.

    Raises:
        ModuleNotFoundError: dipy is not installed.
        ValueError: (when called) an image that is not grey ``(1, H, W)`` or smaller than 7x7.
    """

    name = "Rician NLM"
    channels = (1,)

    def __init__(self, sigma: float | None = None, rician: bool = True) -> None:
        super().__init__(sigma)
        self.rician = bool(rician)
        _import_nlmeans()

    def _noise_sigma(self, plane):
        if self.sigma is None and self.rician:
            try:
                return rician_background_sigma(plane[None])
            except ValueError:  # no air or negative values: not a magnitude image around an object
                pass
        return super()._noise_sigma(plane)

    def _plane(self, image):
        plane = super()._plane(image)
        if min(plane.shape) < _DIPY_DEPTH:
            raise ValueError(f"{self.name} needs an image of at least {_DIPY_DEPTH}x{_DIPY_DEPTH} pixels, got "
                             f"{plane.shape[0]}x{plane.shape[1]}; use NLMDenoiser for smaller images.")
        return plane

    def _denoise(self, plane, sigma):
        nlmeans = _import_nlmeans()
        classic = {"method": "classic"} if "method" in inspect.signature(nlmeans).parameters else {}  # dipy >= 1.12
        # dipy biases values below zero (measured: +0.064 mean error in the air of a Gaussian-noisy
        # MNI slab, 23 instead of 32.6 dB); Gaussian data is shifted to be non-negative and back.
        # Magnitude data (rician) is non-negative already, and its bias correction needs the true zero.
        offset = 0.0 if self.rician else min(float(plane.min()), 0.0)
        volume = np.repeat(plane[..., None] - offset, _DIPY_DEPTH, axis=2)
        middle = np.zeros(volume.shape)
        middle[..., _DIPY_DEPTH // 2] = 1.0
        out = nlmeans(volume, sigma, mask=middle, patch_radius=_DIPY_PATCH, block_radius=_DIPY_BLOCK,
                      rician=self.rician, **classic)
        return out[..., _DIPY_DEPTH // 2] + offset


#: name -> class of every classical denoiser (see :func:`classical_denoiser`)
CLASSICAL_DENOISERS: dict[str, type[ClassicalDenoiser]] = {
    "nlm": NLMDenoiser, "bm3d": BM3DDenoiser, "tv": TVDenoiser, "rician_nlm": RicianNLMDenoiser,
}


def classical_denoiser(name: str, **kwargs) -> ClassicalDenoiser:
    """Build the classical denoiser called ``name`` in :data:`CLASSICAL_DENOISERS`.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid ones).

    Example:
        >>> tv = classical_denoiser("tv", sigma=0.1)
        >>> tv.name, tv(np.zeros((1, 8, 8))).shape
        ('TV', (1, 8, 8))
    """
    return lookup_by_name(CLASSICAL_DENOISERS, name, "classical denoiser")(**kwargs)


def nlm_denoise(image: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """:class:`NLMDenoiser` as a function of a ``(C, H, W)`` image and its noise ``sigma``."""
    return NLMDenoiser(sigma)(image)


def bm3d_denoise(image: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """:class:`BM3DDenoiser` as a function of a ``(C, H, W)`` image and its noise ``sigma``."""
    return BM3DDenoiser(sigma)(image)


nlm_denoise.name, bm3d_denoise.name = NLMDenoiser.name, BM3DDenoiser.name  # read by AnscombeDenoiser
