"""2D slices from volumes: intensity scaling, slab splits of one volume, IXI T1 folders.

All slices are ``(1, H, W)`` float32 numpy arrays in [0, 1] (each volume scaled by its own
percentile range, as the recorruption seed scales every input to [0, 1]).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medden.core.validation import check_finite, check_range

__all__ = [
    "SPLITS",
    "IXIT1Folder",
    "axial_slices",
    "foreground_slices",
    "mni_slab",
    "mni_slices",
    "scale_to_unit",
    "slab_split",
    "split_subjects",
    "t1_slices",
    "write_corrupted_mni_slab",
]

SPLITS = ("train", "val", "test")
IXI_T1_PATTERN = re.compile(r"^(IXI\d{3})-.+-T1\.nii(\.gz)?$")


def scale_to_unit(volume: np.ndarray, percentiles: tuple[float, float] = (0.0, 100.0)) -> np.ndarray:
    """Linearly map the ``percentiles`` of ``volume`` to [0, 1] and clip, as float32.

    Raises:
        ValueError: non-finite values, or a constant volume (nothing to scale).
    """
    check_finite(volume, "volume")
    low_pct, high_pct = check_range(percentiles, "percentiles", 0.0, 100.0)
    low, high = np.percentile(volume, [low_pct, high_pct])
    if high <= low:
        raise ValueError(f"volume is constant between percentiles {percentiles} (value {low:g}); nothing to scale.")
    return np.clip((np.asarray(volume, np.float32) - low) / (high - low), 0.0, 1.0).astype(np.float32)


def axial_slices(volume: np.ndarray, min_foreground: float = 0.05, threshold: float = 0.05) -> list[np.ndarray]:
    """Split a ``(H, W, D)`` or ``(1, H, W, D)`` volume in [0, 1] into ``(1, H, W)`` slices along D.

    Slices with less than ``min_foreground`` of their pixels above ``threshold`` (mostly air)
    are dropped. The order along D is kept.
    """
    vol = np.asarray(volume, np.float32)
    if vol.ndim == 4 and vol.shape[0] == 1:
        vol = vol[0]
    if vol.ndim != 3:
        raise ValueError(f"volume must be (H, W, D) or (1, H, W, D), got shape {np.shape(volume)}.")
    return [np.ascontiguousarray(vol[None, :, :, k]) for k in foreground_slices(vol, min_foreground, threshold)]


def foreground_slices(volume: np.ndarray, min_foreground: float = 0.05, threshold: float = 0.05) -> list[int]:
    """Indices along the last axis of slices with at least ``min_foreground`` of pixels above ``threshold``."""
    vol = np.asarray(volume)
    return [k for k in range(vol.shape[-1]) if (vol[..., k] > threshold).mean() >= min_foreground]


def slab_split(n: int, fractions: Sequence[float] = (0.7, 0.15, 0.15), gap: int = 2) -> dict[str, range]:
    """Split ``n`` consecutive slices into disjoint train/val/test slabs.

    Neighbouring slices of one volume are nearly identical, so the splits are contiguous
    slabs with ``gap`` slices left out between them: no slice of one split touches another.

    Returns:
        ``{"train": range, "val": range, "test": range}``.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions):
        raise ValueError(f"fractions must be three positive numbers, got {tuple(fractions)!r}.")
    usable = n - 2 * gap
    if usable < 3:
        raise ValueError(f"cannot split {n} slices into three slabs with gap={gap}.")
    total = float(sum(fractions))
    sizes = [max(1, int(round(usable * f / total))) for f in fractions[:2]]
    sizes.append(usable - sum(sizes))
    if sizes[2] < 1:
        raise ValueError(f"fractions {tuple(fractions)!r} leave no test slices out of {n}.")
    starts = [0, sizes[0] + gap, sizes[0] + sizes[1] + 2 * gap]
    return {name: range(start, start + size) for name, start, size in zip(SPLITS, starts, sizes)}


def mni_slices(split: str, fractions: Sequence[float] = (0.7, 0.15, 0.15), gap: int = 2) -> list[np.ndarray]:
    """Axial slices of the MNI152 T1 template (installed samples) for one slab split.

    One template allows no subject-level split, so train, val and test are disjoint slabs
    of axial slices (see :func:`slab_split`). Slices are ``(1, 197, 233)`` in [0, 1].
    """
    from medden.data.samples import load_sample

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    slices = axial_slices(scale_to_unit(load_sample("mni152").numpy()[0]))
    return [slices[i] for i in slab_split(len(slices), fractions, gap)[split]]


def split_subjects(subjects: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, list[str]]:
    """Deterministic subject-level split: sorted subjects cut into consecutive groups."""
    ordered = sorted(set(subjects))
    if len(ordered) < 3:
        raise ValueError(f"need at least 3 subjects for a train/val/test split, got {len(ordered)}.")
    total = float(sum(fractions))
    n_val = max(1, int(round(len(ordered) * fractions[1] / total)))
    n_test = max(1, int(round(len(ordered) * fractions[2] / total)))
    n_train = len(ordered) - n_val - n_test
    if n_train < 1:
        raise ValueError(f"fractions {tuple(fractions)!r} leave no training subject out of {len(ordered)}.")
    return {"train": ordered[:n_train], "val": ordered[n_train:n_train + n_val], "test": ordered[n_train + n_val:]}


def canonical_axial_slices(path: str | os.PathLike, percentiles: tuple[float, float] = (0.0, 99.9)
                           ) -> list[np.ndarray]:
    """Axial slices of one NIfTI volume (2D files as one slice): reoriented to the closest RAS
    orientation, so the last axis is inferior-superior whatever the acquisition plane, and
    scaled to [0, 1] by its ``percentiles``; ``(1, H, W)`` float32, mostly-empty slices dropped."""
    import nibabel as nib

    volume = np.asarray(nib.as_closest_canonical(nib.load(path)).get_fdata(dtype=np.float32))
    volume = volume[..., None] if volume.ndim == 2 else volume
    return axial_slices(scale_to_unit(volume, percentiles))


@dataclass(frozen=True)
class IXIT1Folder:
    """A folder of IXI T1 volumes (``IXI<nnn>-<site>-<id>-T1.nii.gz``), split by subject.

    Args:
        dataset_dir: the folder (searched recursively).
        fractions: train/val/test fractions of subjects (sorted by IXI number).
    """

    dataset_dir: str | os.PathLike
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)

    def files(self) -> dict[str, Path]:
        """Subject id (``IXI002``) -> T1 file. Raises ValueError for an empty or missing folder."""
        root = Path(self.dataset_dir)
        if not root.is_dir():
            raise ValueError(f"dataset_dir {str(root)!r} is not a folder; point it at the unpacked IXI-T1 folder.")
        found = {}
        for path in sorted(root.rglob("*")):
            match = IXI_T1_PATTERN.match(path.name)
            if match and path.is_file():
                found.setdefault(match.group(1), path)
        if not found:
            raise ValueError(
                f"no IXI T1 files (IXI<nnn>-<site>-<id>-T1.nii.gz) found under {str(root)!r}."
            )
        return found

    def slices(self, split: str) -> list[np.ndarray]:
        """Axial slices, in [0, 1] per volume, of the subjects in ``split``.

        Volumes are first reoriented to the closest RAS orientation, so the last axis is
        inferior-superior and the slices are axial whatever the acquisition plane (IXI T1
        volumes are stored sagittally).
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        files = self.files()
        out = []
        for subject in split_subjects(list(files), self.fractions)[split]:
            out.extend(canonical_axial_slices(files[subject]))
        return out


def nifti_slices(dataset_dir: str | os.PathLike, split: str, fractions: Sequence[float] = (0.7, 0.15, 0.15),
                 percentiles: tuple[float, float] = (0.0, 99.9)) -> list[np.ndarray]:
    """Axial slices of a folder of (noisy) NIfTI volumes, for training without ground truth.

    With 3 or more files the split is by file (:func:`split_subjects` on the sorted names);
    with fewer, the slices of all files (in name order) are cut into disjoint slabs
    (:func:`slab_split`). Each volume is reoriented to the closest RAS orientation and scaled
    to [0, 1] by its ``percentiles`` (the noise is kept, only rescaled).

    Returns:
        ``(1, H, W)`` float32 slices in [0, 1] (mostly-empty slices dropped).

    Raises:
        ValueError: not a folder, no NIfTI file, or an unknown ``split``.
    """
    from medden.io.nifti import list_nifti_files

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    files = list_nifti_files(dataset_dir)
    if len(files) >= 3:
        chosen = set(split_subjects([f.name for f in files], fractions)[split])
        return [s for f in files if f.name in chosen for s in canonical_axial_slices(f, percentiles)]
    every = [s for f in files for s in canonical_axial_slices(f, percentiles)]
    return [every[i] for i in slab_split(len(every), fractions)[split]]


def t1_slices(split: str, dataset_dir: str | os.PathLike | None = None) -> list[np.ndarray]:
    """T1 axial slices for ``split``: the MNI152 slabs by default, an IXI T1 folder if given."""
    return mni_slices(split) if dataset_dir is None else IXIT1Folder(dataset_dir).slices(split)


def mni_slab(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 T1 ``split`` slab as a volume: ``(1, H, W, D)`` float32 in [0, 1] and its RAS affine.

    The slab holds the same slices as :func:`mni_slices` (``split``, default fractions), and
    the affine is the template's, shifted to the slab's first slice.
    """
    from medden.data.samples import load_sample

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    template = load_sample("mni152")
    volume = scale_to_unit(template.numpy()[0])
    keep = foreground_slices(volume)
    chosen = [keep[i] for i in slab_split(len(keep))[split]]
    affine = template.affine.numpy().copy()
    affine[:3, 3] += affine[:3, 2] * chosen[0]
    return volume[None, :, :, chosen[0]:chosen[-1] + 1], affine


def write_corrupted_mni_slab(path: str | os.PathLike, corruption, split: str = "test", seed: int = 0) -> Path:
    """Write the MNI152 T1 ``split`` slab, corrupted, as a NIfTI volume (unless it exists).

    A ready-made input for bundle inference configs: the slab keeps the template's geometry
    (its affine is shifted to the slab's first slice) and lies in [0, 1] before corruption.

    Returns:
        ``path``.
    """
    from medden.io.nifti import write_nifti

    path = Path(path)
    if path.exists():
        return path
    slab, affine = mni_slab(split)
    corrupted = corruption.set_random_state(seed)(slab)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_nifti(corrupted, path, affine)
