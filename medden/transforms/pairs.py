"""Training pairs from one image: Noise2Noise / Noise2Clean pairs and recorruption pairs.

* :class:`NoisyPair` turns one clean image ``x`` into ``(noisy_a, noisy_b)`` with independent
  noise fields (Noise2Noise) or ``(noisy, x)`` (supervised, Noise2Clean).
* :class:`Recorrupt` turns one noisy image ``y`` into ``(y', y)`` where ``y'`` is ``y``
  corrupted once more (recorruption, Noisier2Noise): the network learns ``y' -> y``.
* :class:`RandSwapPair` swaps input and target of a real Noise2Noise pair (two acquisitions),
  which is symmetric, doubling the pairs a network sees.

The first two return a :class:`CorruptedPair`; masks are ``(1, *spatial)`` float32 (1 = observed) or
None when every pixel is observed.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Randomizable, RandomizableTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from medden.core.keys import MASK_SUFFIX, Keys
from medden.transforms.corruption import RandCorruption
from medden.core.validation import check_channel_first, check_finite, check_probability

__all__ = [
    "CorruptedPair",
    "NoisyPair",
    "Recorrupt",
    "NoisyPaird", "NoisyPairD", "NoisyPairDict",
    "Recorruptd", "RecorruptD", "RecorruptDict",
    "RandSwapPair",
    "RandSwapPaird", "RandSwapPairD", "RandSwapPairDict",
]

PAIR_MODES = ("n2n", "n2c")


class CorruptedPair(NamedTuple):
    """A network input, its training target and their observation masks (or None)."""

    input: NdarrayOrTensor
    target: NdarrayOrTensor
    input_mask: NdarrayOrTensor | None
    target_mask: NdarrayOrTensor | None


def _as_float(img: NdarrayOrTensor) -> NdarrayOrTensor:
    img_t = convert_to_tensor(img, track_meta=get_track_meta())
    dtype = torch.float64 if img_t.dtype == torch.float64 else torch.float32
    return convert_to_dst_type(img_t.to(dtype), img, dtype=dtype)[0]


class _OwnsCorruption(Randomizable, Transform):
    """Holds a corruption and forwards seeding to it (it is the only source of randomness)."""

    def __init__(self, corruption: RandCorruption) -> None:
        if not isinstance(corruption, RandCorruption):
            raise TypeError(f"corruption must be a medden RandCorruption, got {type(corruption).__name__}.")
        self.corruption = corruption

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        self.corruption.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:  # randomness is drawn by the corruption itself
        return None


class NoisyPair(_OwnsCorruption):
    """Make a training pair from one clean image.

    Args:
        corruption: the noise to apply, e.g. ``RandGaussianSigmaNoise((0, 50 / 255))``.
        mode: ``"n2n"``: two realisations with **independent** noise fields (Noise2Noise);
            ``"n2c"``: ``(noisy, clean)`` for supervised training.
        share_level: in ``"n2n"`` mode draw the level (sigma, peak, ...) once and use it for
            both realisations; if False each draws its own.

    Returns (from ``__call__``):
        :class:`CorruptedPair` with input and target ``(C, H, W[, D])`` float in ``x``'s
        container type.

    Example:
        >>> import numpy as np
        >>> from medden.transforms import RandGaussianSigmaNoise
        >>> pair = NoisyPair(RandGaussianSigmaNoise((0.05, 0.2))).set_random_state(0)
        >>> noisy_a, noisy_b, _, _ = pair(np.zeros((1, 8, 8), np.float32))
        >>> bool((noisy_a != noisy_b).all())
        True
    """

    def __init__(self, corruption: RandCorruption, mode: str = "n2n", share_level: bool = True) -> None:
        super().__init__(corruption)
        if mode not in PAIR_MODES:
            raise ValueError(f"mode must be one of {PAIR_MODES}, got {mode!r}.")
        self.mode = mode
        self.share_level = share_level

    def __call__(self, img: NdarrayOrTensor) -> CorruptedPair:
        noisy, noisy_mask = self.corruption.corrupt(img)
        if self.mode == "n2c":
            return CorruptedPair(noisy, _as_float(img), noisy_mask, None)
        level = self.corruption.level if self.share_level else None
        second, second_mask = self.corruption.corrupt(img, level=level)
        return CorruptedPair(noisy, second, noisy_mask, second_mask)


class Recorrupt(_OwnsCorruption):
    """Corrupt a noisy image once more: ``y -> (y', y)`` for recorruption training.

    The corruption's level range is the *extra* corruption (the recorruption seed draws
    ``sigma'`` in ``[0, 25]/255`` for Gaussian, keep probability ``p'`` for Bernoulli and
    ``y' = Poisson(y)`` for Poisson). One ``y'`` is drawn per call.

    For Bernoulli-type corruptions (missing pixels are zero) the target mask marks the pixels
    observed in ``y``: ``observed_mask`` if given, else ``y != 0`` in any channel. The input
    mask marks pixels observed in ``y'``.

    Returns (from ``__call__``):
        :class:`CorruptedPair` ``(y', y, input_mask, target_mask)``.
    """

    def __call__(self, img: NdarrayOrTensor, observed_mask: NdarrayOrTensor | None = None) -> CorruptedPair:
        check_channel_first(img)
        check_finite(img)
        target = _as_float(img)
        if observed_mask is None and getattr(self.corruption, "missing_is_zero", False):
            observed = convert_to_tensor(img, track_meta=False).ne(0).any(dim=0, keepdim=True)
            observed_mask = convert_to_dst_type(observed, img, dtype=torch.float32)[0]
        if observed_mask is not None and tuple(observed_mask.shape) != (1, *img.shape[1:]):
            raise ValueError(
                f"observed_mask must have shape {(1, *img.shape[1:])}, got {tuple(observed_mask.shape)}."
            )
        further, further_mask = self.corruption.corrupt(img)
        if further_mask is not None and observed_mask is not None:
            further_mask = further_mask * observed_mask
        return CorruptedPair(further, target, further_mask, observed_mask)


class _PairToKeys(MapTransform):
    """Writes a :class:`CorruptedPair` made from one source key into four output keys."""

    def __init__(self, keys, input_key, target_key, input_mask_key, target_mask_key, allow_missing_keys):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"keys must name exactly one source image, got {self.keys!r}.")
        self.output_keys = (input_key, target_key, input_mask_key, target_mask_key)

    def _write(self, d: dict, pair: CorruptedPair) -> dict:
        for key, value in zip(self.output_keys, pair):
            if value is not None:
                d[key] = value
        return d


#: the two bases above under public names, for the pair transforms of other modules (medden.transforms.stacks)
OwnsCorruption, PairToKeys = _OwnsCorruption, _PairToKeys


class NoisyPaird(_PairToKeys, Randomizable):
    """Dictionary twin of :class:`NoisyPair`: reads ``keys`` (one key), writes the pair keys."""

    def __init__(
        self,
        keys: KeysCollection,
        corruption: RandCorruption,
        mode: str = "n2n",
        share_level: bool = True,
        input_key: str = Keys.INPUT,
        target_key: str = Keys.TARGET,
        input_mask_key: str = Keys.INPUT_MASK,
        target_mask_key: str = Keys.TARGET_MASK,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, input_key, target_key, input_mask_key, target_mask_key, allow_missing_keys)
        self.pair = NoisyPair(corruption, mode, share_level)

    def set_random_state(self, seed=None, state=None):
        self.pair.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            self._write(d, self.pair(d[key]))
        return d


class Recorruptd(_PairToKeys, Randomizable):
    """Dictionary twin of :class:`Recorrupt`.

    Args:
        observed_mask_key: optional key holding the ``(1, *spatial)`` mask of pixels observed
            in the noisy image (e.g. written by ``RandBernoulliNoised``).
    """

    def __init__(
        self,
        keys: KeysCollection,
        corruption: RandCorruption,
        observed_mask_key: str | None = None,
        input_key: str = Keys.INPUT,
        target_key: str = Keys.TARGET,
        input_mask_key: str = Keys.INPUT_MASK,
        target_mask_key: str = Keys.TARGET_MASK,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, input_key, target_key, input_mask_key, target_mask_key, allow_missing_keys)
        self.recorrupt = Recorrupt(corruption)
        self.observed_mask_key = observed_mask_key

    def set_random_state(self, seed=None, state=None):
        self.recorrupt.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        observed = d[self.observed_mask_key] if self.observed_mask_key is not None else None
        for key in self.key_iterator(d):
            self._write(d, self.recorrupt(d[key], observed_mask=observed))
        return d


NoisyPairD = NoisyPairDict = NoisyPaird
RecorruptD = RecorruptDict = Recorruptd


_ABSENT = object()  # marks a key missing from the dictionary while swapping


class RandSwapPair(RandomizableTransform):
    """Swap the two images of a pair with probability ``prob``: ``(a, b) -> (b, a)``.

    Noise2Noise is symmetric in input and target (both are independent noisy realisations),
    so swapping them doubles the training pairs. One draw decides for the whole pair; the
    images themselves are returned untouched (same objects, container types and meta).

    Args:
        prob: probability of swapping.

    Returns (from ``__call__``):
        ``(a, b)`` or ``(b, a)`` as a tuple; images of any shape, e.g. ``(C, H, W[, D])``.

    Example:
        >>> RandSwapPair(prob=1.0)(("a", "b"))
        ('b', 'a')
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, prob: float = 0.5) -> None:
        RandomizableTransform.__init__(self, check_probability(prob, "prob"))
        self.R = np.random.RandomState()  # own generator, never MONAI's shared class default

    def randomize(self, data: object = None) -> None:
        """Draw whether the next pair is swapped (``self._do_transform``)."""
        super().randomize(None)

    def __call__(self, pair: Sequence[object], randomize: bool = True) -> tuple[object, object]:
        """Swap ``pair`` if the draw says so; ``randomize=False`` reuses the last draw."""
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence):
            raise TypeError(f"pair must be a tuple (a, b) of two images, got {type(pair).__name__}.")
        if len(pair) != 2:
            raise ValueError(f"pair must hold exactly two images (a, b), got {len(pair)}.")
        if randomize:
            self.randomize()
        first, second = pair
        return (second, first) if self._do_transform else (first, second)


class RandSwapPaird(RandomizableTransform, MapTransform):
    """Dictionary twin of :class:`RandSwapPair`: swaps the values of two keys, and their masks.

    When a swap is drawn the masks move with their images: ``<key>_mask`` entries (see
    :data:`medden.core.keys.MASK_SUFFIX`) are swapped too, also when only one of them is present.

    Args:
        keys: the two keys to swap (input and target by default).
        prob: probability of swapping.
        allow_missing_keys: don't raise if an image key is absent (its partner moves alone).
    """

    backend = RandSwapPair.backend

    def __init__(
        self,
        keys: KeysCollection = (Keys.INPUT, Keys.TARGET),
        prob: float = 0.5,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        if len(self.keys) != 2:
            raise ValueError(f"keys must name exactly two images to swap, got {self.keys!r}.")
        self.swap = RandSwapPair(prob)
        self.mask_keys = tuple(f"{key}{MASK_SUFFIX}" for key in self.keys)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.swap.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        list(self.key_iterator(d))  # raises KeyError for a missing image key unless allowed
        self.swap.randomize()
        for pair_keys in (self.keys, self.mask_keys):
            values = self.swap(tuple(d.pop(key, _ABSENT) for key in pair_keys), randomize=False)
            d.update({key: value for key, value in zip(pair_keys, values) if value is not _ABSENT})
        return d


RandSwapPairD = RandSwapPairDict = RandSwapPaird
