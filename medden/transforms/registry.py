"""Corruptions by name, for bundle configs and the command line."""

from __future__ import annotations

from medden.transforms.corruption import (
    RandBernoulliNoise,
    RandCorruption,
    RandGaussianSigmaNoise,
    RandImpulseNoise,
    RandPoissonGaussianNoise,
    RandPoissonNoise,
    RandRicianSigmaNoise,
)
from medden.transforms.ct_noise import RandCTNoiseFromNPS, RandLowDoseCTNoise
from medden.transforms.kspace import RandKspaceNoise
from medden.transforms.scanner_noise import RandDetectorBlurNoise, RandMagnitudeMRNoise
from medden.transforms.text_overlay import RandTextOverlay
from medden.core.validation import lookup_by_name

__all__ = ["CORRUPTIONS", "make_corruption"]

CORRUPTIONS: dict[str, type[RandCorruption]] = {
    "gaussian": RandGaussianSigmaNoise,
    "poisson": RandPoissonNoise,
    "bernoulli": RandBernoulliNoise,
    "impulse": RandImpulseNoise,
    "poisson_gaussian": RandPoissonGaussianNoise,
    "rician": RandRicianSigmaNoise,
    "text": RandTextOverlay,
    "kspace": RandKspaceNoise,
    "low_dose_ct": RandLowDoseCTNoise,
    "ct_nps": RandCTNoiseFromNPS,
    "mr_magnitude": RandMagnitudeMRNoise,
    "detector_blur": RandDetectorBlurNoise,
}


def make_corruption(name: str, **kwargs) -> RandCorruption:
    """Build a corruption by name, e.g. ``make_corruption("gaussian", sigma_range=(0, 0.2))``."""
    return lookup_by_name(CORRUPTIONS, name, "corruption")(**kwargs)
