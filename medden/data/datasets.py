"""Datasets of corrupted or undersampled images for training and validation, one fixed draw per image.

The recorruption seed forms **one** ``y'`` per noisy ``y`` (the network never sees several
recorruptions of the same image). :class:`CorruptedImageDataset` makes that reproducible
without storing anything: the draws for item ``i`` come from generators seeded by
``(seed, i)``, so every epoch sees the same ``y`` and ``y'``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from medden.core.keys import Keys
from medden.transforms.corruption import RandCorruption
from medden.transforms.kspace import RandKspaceUndersample
from medden.transforms.pairs import Recorrupt

__all__ = ["CorruptedImageDataset", "UndersampledDataset"]

_NOISE_STREAM, _RECORRUPT_STREAM = 0, 1


def _item_state(seed: int, index: int, stream: int) -> np.random.RandomState:
    return np.random.RandomState(np.random.SeedSequence([seed, index, stream]).generate_state(1)[0])


class CorruptedImageDataset(Dataset):
    """Images with simulated noise and/or a recorruption, as MONAI-style dictionaries.

    What an item holds depends on what is given:

    * ``noise`` given: the images are clean ``x``; ``y = noise(x)`` and ``clean = x``.
      Otherwise the images are already noisy ``y`` and no clean image is known.
    * ``recorruption`` given: ``input = y'`` (``y`` corrupted further), ``target = y`` and,
      for Bernoulli-type noise, ``target_mask`` = pixels observed in ``y``. Impulse and text
      masks are not passed on: real data would not reveal them (use L0/L1 losses instead).
    * no ``recorruption``: ``input = y`` and, when ``x`` is known, ``target = x``
      (supervised training, or validation against clean images).

    Args:
        images: ``(C, H, W[, D])`` arrays.
        noise: corruption simulating the acquisition noise, drawn once per image.
        recorruption: the extra corruption for recorruption training.
        seed: base seed; item ``i`` uses generators seeded by ``(seed, i)``.
        fixed_recorruption: one ``y'`` per ``y`` for the whole training (the seed's
            protocol); if False a fresh ``y'`` is drawn on every access (``y`` stays fixed),
            from torch's generator, so DataLoader workers (seeded apart) draw different ones
            and ``monai.utils.set_determinism`` makes a run reproducible.

    Items:
        dict with ``Keys.INPUT``, optionally ``Keys.TARGET``, ``Keys.TARGET_MASK``,
        ``Keys.CLEAN``: float32 arrays, images ``(C, *spatial)``, masks ``(1, *spatial)``.
    """

    def __init__(self, images: Sequence[np.ndarray], noise: RandCorruption | None = None,
                 recorruption: RandCorruption | None = None, seed: int = 0,
                 fixed_recorruption: bool = True) -> None:
        if len(images) == 0:
            raise ValueError("images is empty: there is nothing to train or validate on.")
        if noise is None and recorruption is None:
            raise ValueError("give noise (images are clean), recorruption (images are noisy) or both.")
        self.images = images
        self.noise = noise
        self.recorrupt = None if recorruption is None else Recorrupt(recorruption)
        self.seed = int(seed)
        self.fixed_recorruption = fixed_recorruption

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        image = np.asarray(self.images[index], dtype=np.float32)
        item: dict[str, np.ndarray] = {}
        observed = None
        if self.noise is not None:
            self.noise.set_random_state(state=_item_state(self.seed, index, _NOISE_STREAM))
            noisy, observed = self.noise.corrupt(image)
            if not getattr(self.noise, "missing_is_zero", False):
                observed = None  # only missing-pixel noise has a mask real data would reveal (y != 0)
            item[Keys.CLEAN] = image
        else:
            noisy = image
        if self.recorrupt is None:
            item[Keys.INPUT] = noisy
            if self.noise is not None:
                item[Keys.TARGET] = image
            return item
        if self.fixed_recorruption:
            state = _item_state(self.seed, index, _RECORRUPT_STREAM)
        else:
            state = np.random.RandomState(int(torch.randint(0, 2**31 - 1, ())))
        further, target, _, target_mask = self.recorrupt.set_random_state(state=state)(noisy, observed)
        item.update({Keys.INPUT: further, Keys.TARGET: target})
        if target_mask is not None:
            item[Keys.TARGET_MASK] = target_mask
        return item


class UndersampledDataset(Dataset):
    """Clean images with one fixed simulated undersampling each, for validation and testing.

    Args:
        images: clean ``(C, H, W)`` real or ``(C, H, W, 2)`` complex arrays.
        undersample: the acquisition to simulate; its ``output`` sets the zero-filled layout
            (``"real"`` or ``"magnitude"`` for real images, ``"channels"`` for complex ones).
        seed: item ``i`` draws its pattern from a generator seeded by ``(seed, i)``.

    Items:
        dict of float32 arrays: ``Keys.INPUT`` the zero-filled image (the network input),
        ``Keys.CLEAN`` the clean image in the same layout, ``Keys.KSPACE`` the raw measured
        ``(C, H, W, 2)`` k-space and ``Keys.KSPACE_MASK`` its ``(1, H, W)`` mask.
    """

    def __init__(self, images: Sequence[np.ndarray], undersample: RandKspaceUndersample, seed: int = 0) -> None:
        if len(images) == 0:
            raise ValueError("images is empty: there is nothing to validate on.")
        self.images = images
        self.undersample = undersample
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        image = np.asarray(self.images[index], dtype=np.float32)
        self.undersample.set_random_state(state=_item_state(self.seed, index, _NOISE_STREAM))
        kspace, mask, zero_filled = self.undersample(image)
        clean = image
        if self.undersample.is_complex and self.undersample.output == "channels":
            clean = np.concatenate([image[..., 0], image[..., 1]], axis=0)
        return {Keys.INPUT: zero_filled, Keys.CLEAN: clean, Keys.KSPACE: kspace, Keys.KSPACE_MASK: mask}
