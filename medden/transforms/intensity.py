"""Scale a training pair the way ``medden denoise`` scales a user's image.

At inference the network sees the noisy image mapped to [0, 1] by the noisy image's own
percentiles (measured on a box-smoothed copy, :func:`medden.core.intensity.intensity_range`).
A pair scaled by the *clean* image's range instead teaches a slightly different mapping: noise
moves the percentiles (dark air reads lower, bright bone higher). :class:`ScaleByNoisyRange`
measures the range on the network's input and applies that one range to input and target, so
the target stays in the input's units.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type

from medden.core.intensity import intensity_range
from medden.core.keys import Keys
from medden.core.validation import check_channel_first, check_int, check_number, check_range

__all__ = ["ScaleByNoisyRange", "ScaleByNoisyRanged", "ScaleByNoisyRangeD", "ScaleByNoisyRangeDict"]


class ScaleByNoisyRange(Transform):
    """Map ``img`` to the unit range of a reference image: ``(img - low) / (high - low)``.

    ``(low, high)`` are ``reference``'s ``percentiles`` after a ``smoothing`` x ``smoothing``
    box mean (:func:`~medden.core.intensity.intensity_range`); without a reference, ``img``'s
    own. Not clipped: noise and bright structures may leave [0, 1], as at inference.

    Args:
        percentiles: ``(low, high)`` in [0, 100], e.g. ``(0.5, 99.5)``.
        smoothing: box size in pixels; 0 or 1 measures on the image itself.
        min_range: the least ``high - low``, in the image's units; a narrower range is widened
            about its midpoint. A training crop of nearly uniform background (air, a blank
            slide) with a few bright pixels has a range of about the noise, which would scale
            those pixels to hundreds and let one patch dominate a batch's loss; a whole image at
            inference rarely has that problem. 0 keeps every range.

    Shapes:
        ``(C, H, W[, D])`` numpy or torch in, same shape and container, float32.
    """

    backend = [TransformBackends.NUMPY, TransformBackends.TORCH]

    def __init__(self, percentiles: tuple[float, float] = (0.5, 99.5), smoothing: int = 5,
                 min_range: float = 0.0) -> None:
        self.percentiles = check_range(percentiles, "percentiles", 0.0, 100.0)
        self.smoothing = check_int(smoothing, "smoothing", 0)
        self.min_range = check_number(min_range, "min_range", 0.0)

    def range_of(self, reference: NdarrayOrTensor) -> tuple[float, float]:
        """``(low, high)`` of ``reference`` (``(C, H, W[, D])``), ``high - low >= max(min_range, tiny)``."""
        check_channel_first(reference, "reference")
        low, high = intensity_range(np.asarray(reference, np.float32), self.percentiles, self.smoothing)
        if high - low < self.min_range:
            middle = (low + high) / 2
            low, high = middle - self.min_range / 2, middle + self.min_range / 2
        return low, high

    def __call__(self, img: NdarrayOrTensor, reference: NdarrayOrTensor | None = None,
                 value_range: tuple[float, float] | None = None) -> NdarrayOrTensor:
        """``img`` scaled by ``value_range`` (``(low, high)``) if given, else by the range of ``reference``
        (or of ``img``)."""
        if value_range is None:
            value_range = self.range_of(img if reference is None else reference)
        low, high = value_range
        scaled = (np.asarray(img, np.float32) - low) / (high - low)
        return convert_to_dst_type(scaled, img, dtype=np.float32)[0]


class ScaleByNoisyRanged(MapTransform):
    """Dictionary twin of :class:`ScaleByNoisyRange`: one range, from ``reference_key``, for every key.

    Args:
        keys: the images to scale, e.g. ``("input", "target")``.
        reference_key: the image whose range is measured (the network input).
        percentiles, smoothing, min_range: see :class:`ScaleByNoisyRange`.
        range_key: a key holding a ready ``(low, high)`` to use instead of measuring (e.g. the
            range of the whole image a training crop came from); None measures ``reference_key``.
    """

    def __init__(self, keys: KeysCollection = (Keys.INPUT, Keys.TARGET), reference_key: str = Keys.INPUT,
                 percentiles: tuple[float, float] = (0.5, 99.5), smoothing: int = 5, min_range: float = 0.0,
                 range_key: str | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reference_key = reference_key
        self.range_key = range_key
        self.scaler = ScaleByNoisyRange(percentiles, smoothing, min_range)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        source = self.reference_key if self.range_key is None else self.range_key
        if source not in d:
            name = "reference_key" if self.range_key is None else "range_key"
            raise KeyError(f"{name} {source!r} is not in the data (keys: {sorted(map(str, d))}).")
        if self.range_key is None:
            low, high = self.scaler.range_of(d[source])
        else:
            low, high = (float(v) for v in d[source])
        for key in self.key_iterator(d):
            d[key] = self.scaler(d[key], value_range=(low, high))
        return d


ScaleByNoisyRangeD = ScaleByNoisyRangeDict = ScaleByNoisyRanged
