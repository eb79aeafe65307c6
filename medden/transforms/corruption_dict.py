"""Dictionary twins of the corruption transforms: they route keys, the array classes do the maths.

Every key gets an **independent** draw (its own level and noise field), as separate
acquisitions would; to make two realisations of one image use
:class:`~medden.transforms.pairs.NoisyPaird`. Mask-producing corruptions (Bernoulli,
impulse, text) also write a ``(1, *spatial)`` float32 mask for each key, under ``mask_keys``
(default: the key followed by :data:`medden.core.keys.MASK_SUFFIX`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import ensure_tuple, ensure_tuple_rep

from medden.core.keys import MASK_SUFFIX
from medden.transforms.corruption import (
    RandBernoulliNoise,
    RandCorruption,
    RandGaussianSigmaNoise,
    RandImpulseNoise,
    RandPoissonGaussianNoise,
    RandPoissonNoise,
    RandRicianSigmaNoise,
)
from medden.transforms.text_overlay import RandTextOverlay

__all__ = [
    "RandCorruptiond", "RandCorruptionD", "RandCorruptionDict",
    "RandGaussianSigmaNoised", "RandGaussianSigmaNoiseD", "RandGaussianSigmaNoiseDict",
    "RandPoissonNoised", "RandPoissonNoiseD", "RandPoissonNoiseDict",
    "RandPoissonGaussianNoised", "RandPoissonGaussianNoiseD", "RandPoissonGaussianNoiseDict",
    "RandRicianSigmaNoised", "RandRicianSigmaNoiseD", "RandRicianSigmaNoiseDict",
    "RandBernoulliNoised", "RandBernoulliNoiseD", "RandBernoulliNoiseDict",
    "RandImpulseNoised", "RandImpulseNoiseD", "RandImpulseNoiseDict",
    "RandTextOverlayd", "RandTextOverlayD", "RandTextOverlayDict",
]


class RandCorruptiond(RandomizableTransform, MapTransform):
    """Apply any :class:`~medden.transforms.corruption.RandCorruption` to ``keys``.

    Args:
        keys: keys of the ``(C, H, W[, D])`` images to corrupt.
        corruption: the array transform that does the maths; this object seeds it.
        mask_keys: where to write each key's mask, for mask-producing corruptions.
        allow_missing_keys: don't raise if a key is absent.
    """

    backend = RandCorruption.backend

    def __init__(
        self,
        keys: KeysCollection,
        corruption: RandCorruption,
        mask_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        if not isinstance(corruption, RandCorruption):
            raise TypeError(f"corruption must be a medden RandCorruption, got {type(corruption).__name__}.")
        self.corruption = corruption
        if mask_keys is None:
            self.mask_keys = tuple(f"{key}{MASK_SUFFIX}" for key in self.keys)
        else:
            self.mask_keys = ensure_tuple_rep(ensure_tuple(mask_keys), len(self.keys))

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.corruption.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key, mask_key in self.key_iterator(d, self.mask_keys):
            d[key], mask = self.corruption.corrupt(d[key])
            if mask is not None:
                d[mask_key] = mask
        return d


class RandGaussianSigmaNoised(RandCorruptiond):
    """Dictionary twin of :class:`~medden.transforms.corruption.RandGaussianSigmaNoise`."""

    def __init__(self, keys: KeysCollection, sigma_range, prob: float = 1.0, allow_missing_keys: bool = False):
        super().__init__(keys, RandGaussianSigmaNoise(sigma_range, prob), allow_missing_keys=allow_missing_keys)


class RandPoissonNoised(RandCorruptiond):
    """Dictionary twin of :class:`~medden.transforms.corruption.RandPoissonNoise`."""

    def __init__(self, keys: KeysCollection, peak_range, prob: float = 1.0, allow_missing_keys: bool = False):
        super().__init__(keys, RandPoissonNoise(peak_range, prob), allow_missing_keys=allow_missing_keys)


class RandPoissonGaussianNoised(RandCorruptiond):
    """Dictionary twin of :class:`~medden.transforms.corruption.RandPoissonGaussianNoise`."""

    def __init__(self, keys: KeysCollection, peak_range, read_sigma_range=(0.0, 0.0), prob: float = 1.0,
                 allow_missing_keys: bool = False):
        inner = RandPoissonGaussianNoise(peak_range, read_sigma_range, prob)
        super().__init__(keys, inner, allow_missing_keys=allow_missing_keys)


class RandRicianSigmaNoised(RandCorruptiond):
    """Dictionary twin of :class:`~medden.transforms.corruption.RandRicianSigmaNoise`."""

    def __init__(self, keys: KeysCollection, sigma_range, prob: float = 1.0, allow_missing_keys: bool = False):
        super().__init__(keys, RandRicianSigmaNoise(sigma_range, prob), allow_missing_keys=allow_missing_keys)


class RandBernoulliNoised(RandCorruptiond):
    """Dictionary twin of :class:`~medden.transforms.corruption.RandBernoulliNoise`; writes masks."""

    def __init__(self, keys: KeysCollection, keep_prob_range, prob: float = 1.0,
                 mask_keys: KeysCollection | None = None, allow_missing_keys: bool = False):
        super().__init__(keys, RandBernoulliNoise(keep_prob_range, prob), mask_keys, allow_missing_keys)


class RandImpulseNoised(RandCorruptiond):
    """Dictionary twin of :class:`~medden.transforms.corruption.RandImpulseNoise`; writes masks."""

    def __init__(self, keys: KeysCollection, replace_prob_range, value_range=(0.0, 1.0), prob: float = 1.0,
                 mask_keys: KeysCollection | None = None, allow_missing_keys: bool = False):
        inner = RandImpulseNoise(replace_prob_range, value_range, prob)
        super().__init__(keys, inner, mask_keys, allow_missing_keys)


class RandTextOverlayd(RandCorruptiond):
    """Dictionary twin of :class:`~medden.transforms.text_overlay.RandTextOverlay`; writes masks."""

    def __init__(self, keys: KeysCollection, coverage_range=(0.0, 0.5), value_range=(0.0, 1.0),
                 font_size_range=(0.04, 0.12), prob: float = 1.0,
                 mask_keys: KeysCollection | None = None, allow_missing_keys: bool = False):
        inner = RandTextOverlay(coverage_range, value_range, font_size_range, prob)
        super().__init__(keys, inner, mask_keys, allow_missing_keys)


RandCorruptionD = RandCorruptionDict = RandCorruptiond
RandGaussianSigmaNoiseD = RandGaussianSigmaNoiseDict = RandGaussianSigmaNoised
RandPoissonNoiseD = RandPoissonNoiseDict = RandPoissonNoised
RandPoissonGaussianNoiseD = RandPoissonGaussianNoiseDict = RandPoissonGaussianNoised
RandRicianSigmaNoiseD = RandRicianSigmaNoiseDict = RandRicianSigmaNoised
RandBernoulliNoiseD = RandBernoulliNoiseDict = RandBernoulliNoised
RandImpulseNoiseD = RandImpulseNoiseDict = RandImpulseNoised
RandTextOverlayD = RandTextOverlayDict = RandTextOverlayd
