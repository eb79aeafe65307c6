"""fastMRI single-coil datasets: a folder of fully sampled ``.h5`` files, split by volume.

The file format (reading, checks, scaling, writing) is :mod:`medden.io.fastmri`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medden.data.slices import SPLITS, split_subjects
from medden.io.fastmri import (
    DEFAULT_CROP,
    center_crop,
    kspace_to_image,
    magnitude,
    read_singlecoil_kspace,
    read_undersampled,
    volume_scale,
)

__all__ = ["OUTPUTS", "FastMRISingleCoilFolder"]

OUTPUTS = ("complex", "magnitude")


@dataclass(frozen=True)
class FastMRISingleCoilFolder:
    """A folder of fully sampled fastMRI single-coil ``.h5`` files, split by volume (file).

    Args:
        dataset_dir: the folder (searched recursively).
        fractions: train/val/test fractions of files (sorted by path within the folder).
        crop: centre crop ``(h, w)`` of the images, clamped to the image size.
    """

    dataset_dir: str | os.PathLike
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    crop: tuple[int, int] = DEFAULT_CROP

    def files(self) -> list[Path]:
        """Sorted ``*.h5`` files under the folder. Raises ValueError for an empty or missing folder."""
        root = Path(self.dataset_dir)
        if not root.is_dir():
            raise ValueError(f"dataset_dir {str(root)!r} is not a folder; point it at the fastMRI singlecoil folder.")
        found = sorted(path for path in root.rglob("*.h5") if path.is_file())
        if not found:
            raise ValueError(f"no fastMRI .h5 files found under {str(root)!r}.")
        return found

    def split_files(self, split: str) -> list[Path]:
        """The files of ``split`` (``"train"``, ``"val"`` or ``"test"``); deterministic and disjoint."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        root = Path(self.dataset_dir)
        files = self.files()
        if len(files) < 3:
            raise ValueError(f"need at least 3 .h5 files under {str(root)!r} for a train/val/test split "
                             f"by volume, found {len(files)}.")
        names = [path.relative_to(root).as_posix() for path in files]
        return [root / name for name in split_subjects(names, self.fractions)[split]]

    def images(self, split: str, output: str = "complex") -> list[np.ndarray]:
        """Per-slice images of the volumes in ``split`` (``"train"``, ``"val"`` or ``"test"``).

        Each volume is the inverse FFT of its fully sampled k-space, centre-cropped to ``crop``
        and divided by the 99.5th percentile of its magnitude. ``output`` is ``"complex"``
        (``(1, h, w, 2)`` float32, not clipped) or ``"magnitude"`` (``(1, h, w)`` float32 in [0, 1]).

        Raises:
            ValueError: a file is undersampled (has a ``mask``), or fails :func:`read_singlecoil_kspace`.
        """
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")
        out = []
        for path in self.split_files(split):
            kspace, mask, _ = read_singlecoil_kspace(path)
            if mask is not None:
                raise ValueError(f"{str(path)!r} is undersampled (it has a 'mask' dataset: fastMRI test-set "
                                 "layout) and cannot be used as training data; move it out of dataset_dir "
                                 "and reconstruct it with read_undersampled().")
            image = center_crop(kspace_to_image(kspace), self.crop)
            magnitudes = magnitude(image)
            scale = volume_scale(magnitudes, path)
            if output == "magnitude":
                out.extend(np.clip(m / scale, 0.0, 1.0).astype(np.float32)[None] for m in magnitudes)
            else:
                out.extend((im / np.float32(scale))[None] for im in image)
        return out

    def undersampled(self, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, float]:
        """:func:`read_undersampled` with this folder's ``crop``."""
        return read_undersampled(path, self.crop)
