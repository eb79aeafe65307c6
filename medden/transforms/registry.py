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
from medden.transforms.kspace import RandKspaceNoise
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
}


def make_corruption(name: str, **kwargs) -> RandCorruption:
    """Build a corruption by name, e.g. ``make_corruption("gaussian", sigma_range=(0, 0.2))``."""
    return lookup_by_name(CORRUPTIONS, name, "corruption")(**kwargs)
