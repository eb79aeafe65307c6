"""JSRT chest radiographs: the dataset folder, its 50/50 split, resizing, and the embedded default.

The ``.IMG`` file format (headerless big-endian 12-bit, 2048 x 2048) is read and written by
:mod:`medden.io.jsrt`; images are ``(1, H, W)`` float32 in [0, 1] (grey level / 4095), bone
bright with ``invert=True``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medden.core.validation import check_size
from medden.data.slices import SPLITS
from medden.io.jsrt import JSRT_PATTERN, JSRT_SIZE, read_jsrt_image

__all__ = ["JSRTFolder", "chest_images", "chest_regions", "jsrt_split", "write_noisy_chest"]

SPLIT_CSV = "split.csv"


def jsrt_split(names: Sequence[str]) -> dict[str, list[str]]:
    """JSRT's 50/50 train/val split of file names, deterministic and balanced over both groups.

    Within each group (nodule ``JPCLN``, non-nodule ``JPCNN``), sorted by name, the 1st, 3rd,
    5th, ... file goes to train and the 2nd, 4th, ... to val (so ``JPCLN001`` is train and
    ``JPCLN002`` val); each split holds half of each group, train the extra one if odd.

    Example:
        >>> jsrt_split(["JPCNN002.IMG", "JPCLN001.IMG", "JPCLN002.IMG", "JPCNN001.IMG"])
        {'train': ['JPCLN001.IMG', 'JPCNN001.IMG'], 'val': ['JPCLN002.IMG', 'JPCNN002.IMG']}
    """
    out: dict[str, list[str]] = {"train": [], "val": []}
    for group in ("JPCLN", "JPCNN"):
        members = sorted((n for n in names if n.upper().startswith(group)), key=str.upper)
        out["train"] += members[0::2]
        out["val"] += members[1::2]
    return out


def _read_split_csv(path: Path, names: Sequence[str]) -> dict[str, str]:
    """Upper-case file name -> split from a ``file,split`` CSV; every row must name a file in ``names``."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"file", "split"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{str(path)!r} must have the header 'file,split', got {reader.fieldnames}.")
        table: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            name, split = Path((row["file"] or "").strip()).name.upper(), (row["split"] or "").strip().lower()
            if split not in SPLITS:
                raise ValueError(f"{str(path)!r} line {line}: split {row['split']!r} is not one of {SPLITS}.")
            if name not in names:
                raise ValueError(f"{str(path)!r} line {line}: file {row['file']!r} is not a JSRT image in the "
                                 "folder; fix the name or remove the row.")
            if table.setdefault(name, split) != split:
                raise ValueError(f"{str(path)!r} line {line}: {row['file']!r} is listed in two splits.")
    return table


@dataclass(frozen=True)
class JSRTFolder:
    """A folder of JSRT ``.IMG`` files, split 50/50 into train/val (see :func:`jsrt_split`).

    A ``split.csv`` in ``dataset_dir`` (columns ``file,split``, split one of train/val/test)
    overrides the 50/50 rule; files it does not list belong to no split.

    Args:
        dataset_dir: the folder (searched recursively; other file names are ignored).
        output_size: ``(h, w)`` the images are resized to, by area averaging.
        image_size: ``(H, W)`` of the files on disk.
        invert: bone bright, lungs dark (see :func:`read_jsrt_image`).
    """

    dataset_dir: str | os.PathLike
    output_size: tuple[int, int] = (512, 512)
    image_size: tuple[int, int] = JSRT_SIZE
    invert: bool = True

    def __post_init__(self) -> None:
        check_size(self.output_size, "output_size")
        check_size(self.image_size, "image_size")

    def files(self) -> list[Path]:
        """``JPC[LN]N###.IMG`` files (any case) under the folder, sorted by name.

        Raises:
            ValueError: a missing folder, no JSRT files, or one name found twice.
        """
        root = Path(self.dataset_dir)
        if not root.is_dir():
            raise ValueError(f"dataset_dir {str(root)!r} is not a folder; point it at the unpacked JSRT folder.")
        found: dict[str, Path] = {}
        for path in sorted(p for p in root.rglob("*") if JSRT_PATTERN.match(p.name) and p.is_file()):
            if found.setdefault(path.name.upper(), path) != path:
                raise ValueError(f"JSRT file {path.name!r} found twice under {str(root)!r}: "
                                 f"{str(found[path.name.upper()])!r} and {str(path)!r}; remove one.")
        if not found:
            raise ValueError(f"no JSRT files (JPCLN###.IMG or JPCNN###.IMG) found under {str(root)!r}.")
        return [found[name] for name in sorted(found)]

    def split_files(self, split: str) -> list[Path]:
        """The files of ``split``: ``"train"`` or ``"val"`` (``"test"`` only if ``split.csv`` has one)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        by_name = {path.name.upper(): path for path in self.files()}
        csv_path = Path(self.dataset_dir) / SPLIT_CSV
        if csv_path.is_file():
            table = _read_split_csv(csv_path, list(by_name))
            names = [name for name in by_name if table.get(name) == split]
            source = f"{str(csv_path)!r}"
        elif split == "test":
            raise ValueError(f"JSRT prescribes a train/val split only, so there is no 'test' split under "
                             f"{str(self.dataset_dir)!r}; evaluate on split='val', or add a {SPLIT_CSV} "
                             "(columns file,split) that assigns files to 'test'.")
        else:
            names, source = jsrt_split(list(by_name))[split], "the 50/50 rule"
        if not names:
            raise ValueError(f"split {split!r} has no files under {str(self.dataset_dir)!r} by {source}.")
        return [by_name[name] for name in names]

    def images(self, split: str) -> list[np.ndarray]:
        """The images of ``split``, each ``(1, *output_size)`` float32 in [0, 1], area-averaged."""
        from monai.transforms import Resize
        from monai.utils import convert_to_numpy

        resize = Resize(self.output_size, mode="area")
        out = []
        for path in self.split_files(split):
            image = read_jsrt_image(path, self.image_size, self.invert)
            if tuple(self.output_size) != image.shape[1:]:
                image = np.clip(convert_to_numpy(resize(image)), 0.0, 1.0).astype(np.float32)
            out.append(image)
        return out


#: the embedded default: pydicom-data's chest radiograph, block-averaged 4x (460 x 488)
DEFAULT_CHEST, DEFAULT_DOWNSAMPLE = "RG1_UNCR.dcm", 4


def chest_regions(shape: Sequence[int]) -> dict[str, tuple[slice, slice]]:
    """Disjoint train/val/test regions of an ``(H, W)`` plane: train the first half along W,
    val and test the two halves along H of the second half."""
    half_x, half_y = shape[0] // 2, shape[1] // 2
    return {"train": (slice(0, shape[0]), slice(0, half_y)), "val": (slice(0, half_x), slice(half_y, shape[1])),
            "test": (slice(half_x, shape[0]), slice(half_y, shape[1]))}


def chest_images(split: str, dataset_dir: str | os.PathLike | None = None,
                 output_size: Sequence[int] = (512, 512)) -> list[np.ndarray]:
    """Chest radiographs of ``split`` for the recorruption bundle: JSRT if ``dataset_dir`` is given.

    Without ``dataset_dir`` the embedded default is one image, pydicom-data's ``RG1_UNCR`` chest
    radiograph (block-averaged 4x, scaled by its 0.5-99.5th percentiles), cut into the disjoint
    regions of :func:`chest_regions`; ``output_size`` applies to JSRT files only.

    Returns:
        ``(1, h, w)`` float32 images in [0, 1].
    """
    if dataset_dir is not None:
        return JSRTFolder(dataset_dir, tuple(output_size)).images(split)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    from medden.data.modalities import sample_plane

    plane = sample_plane(DEFAULT_CHEST, DEFAULT_DOWNSAMPLE)
    rows, cols = chest_regions(plane.shape[1:])[split]
    return [np.ascontiguousarray(plane[:, rows, cols])]


def write_noisy_chest(path: str | os.PathLike, noise, split: str = "test", seed: int = 0) -> Path:
    """Write the embedded chest radiograph's ``split`` region with ``noise`` as a one-slice
    NIfTI (unless it exists): a ready-made input for the JSRT bundle's inference config."""
    from medden.io.nifti import write_nifti

    path = Path(path)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    image = chest_images(split)[0][..., None]  # (1, H, W, 1)
    return write_nifti(noise.set_random_state(seed)(image), path)
