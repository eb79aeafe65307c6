"""Dictionary twins that route keys to one randomised array transform.

The array transform does the math; a twin only reads each key, passes its value through
``self.array_transform``, and stores the result with :meth:`RandArrayTwin.store` (by default
back under the same key). Seeding the twin seeds the array transform, so a twin and its
array transform given the same seed make the same draws.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.transforms import MapTransform, Randomizable, RandomizableTransform


class RandArrayTwin(Randomizable, MapTransform):
    """Base of dictionary twins of a randomised array transform held as ``self.array_transform``."""

    array_transform: RandomizableTransform

    def set_random_state(self, seed=None, state=None):
        self.array_transform.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:
        return None

    def store(self, data: dict[Hashable, object], key: Hashable, result: object) -> None:
        """Write one key's result into ``data``; the default replaces the key's value."""
        data[key] = result

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            self.store(d, key, self.array_transform(d[key]))
        return d
