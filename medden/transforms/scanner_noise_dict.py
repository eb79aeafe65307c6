"""Dictionary twins of the scanner-like noise transforms: they route keys, the array classes
(:mod:`medden.transforms.ct_noise`, :mod:`medden.transforms.scanner_noise`) do the maths.

As for :mod:`medden.transforms.corruption_dict`, every key gets an **independent** draw (its own
level and noise); use :class:`~medden.transforms.pairs.NoisyPaird` for two realisations of one
image at one level. ``set_random_state`` seeds the inner array transform.
"""

from __future__ import annotations

import math
from typing import ClassVar

from monai.config import KeysCollection

from medden.transforms.corruption_dict import RandCorruptiond
from medden.transforms.ct_noise import RandCTNoiseFromNPS, RandLowDoseCTNoise
from medden.transforms.scanner_noise import RandDetectorBlurNoise, RandMagnitudeMRNoise

__all__ = [
    "RandLowDoseCTNoised", "RandLowDoseCTNoiseD", "RandLowDoseCTNoiseDict",
    "RandCTNoiseFromNPSd", "RandCTNoiseFromNPSD", "RandCTNoiseFromNPSDict",
    "RandMagnitudeMRNoised", "RandMagnitudeMRNoiseD", "RandMagnitudeMRNoiseDict",
    "RandDetectorBlurNoised", "RandDetectorBlurNoiseD", "RandDetectorBlurNoiseDict",
]


class _CTNoised(RandCorruptiond):
    """The dictionary twin of a CT noise transform (``array_class``): the same arguments, keys routed."""

    array_class: ClassVar[type]

    def __init__(self, keys: KeysCollection, i0_range=(1e4, 2e5), electronic_sigma: float = 0.0,
                 filter_name: str = "shepp-logan", n_angles: int | None = None, pixel_mm: float = 0.7,
                 mu_water: float = 0.0192, hu_scale: float = 1.0, hu_offset: float = 0.0, prob: float = 1.0,
                 allow_missing_keys: bool = False):
        inner = self.array_class(i0_range, electronic_sigma=electronic_sigma, filter_name=filter_name,
                                 n_angles=n_angles, pixel_mm=pixel_mm, mu_water=mu_water, hu_scale=hu_scale,
                                 hu_offset=hu_offset, prob=prob)
        super().__init__(keys, inner, allow_missing_keys=allow_missing_keys)


class RandLowDoseCTNoised(_CTNoised):
    """Dictionary twin of :class:`~medden.transforms.ct_noise.RandLowDoseCTNoise`."""

    array_class = RandLowDoseCTNoise


class RandCTNoiseFromNPSd(_CTNoised):
    """Dictionary twin of :class:`~medden.transforms.ct_noise.RandCTNoiseFromNPS`."""

    array_class = RandCTNoiseFromNPS


class RandMagnitudeMRNoised(RandCorruptiond):
    """Dictionary twin of :class:`~medden.transforms.scanner_noise.RandMagnitudeMRNoise`."""

    def __init__(self, keys: KeysCollection, sigma_range, coils: int = 1, g_max_range=(1.0, 2.5),
                 max_phase: float = math.pi, prob: float = 1.0, allow_missing_keys: bool = False):
        inner = RandMagnitudeMRNoise(sigma_range, coils=coils, g_max_range=g_max_range, max_phase=max_phase, prob=prob)
        super().__init__(keys, inner, allow_missing_keys=allow_missing_keys)


class RandDetectorBlurNoised(RandCorruptiond):
    """Dictionary twin of :class:`~medden.transforms.scanner_noise.RandDetectorBlurNoise`."""

    def __init__(self, keys: KeysCollection, peak_range, psf_sigma_range=(0.5, 1.5), read_sigma_range=(0.0, 0.0),
                 prob: float = 1.0, allow_missing_keys: bool = False):
        inner = RandDetectorBlurNoise(peak_range, psf_sigma_range=psf_sigma_range,
                                      read_sigma_range=read_sigma_range, prob=prob)
        super().__init__(keys, inner, allow_missing_keys=allow_missing_keys)


RandLowDoseCTNoiseD = RandLowDoseCTNoiseDict = RandLowDoseCTNoised
RandCTNoiseFromNPSD = RandCTNoiseFromNPSDict = RandCTNoiseFromNPSd
RandMagnitudeMRNoiseD = RandMagnitudeMRNoiseDict = RandMagnitudeMRNoised
RandDetectorBlurNoiseD = RandDetectorBlurNoiseDict = RandDetectorBlurNoised
