"""H&E histology patches: Camelyon16 patch folders, and an embedded default image.

The recorruption seed trains on Camelyon16 patches (6100 train, 1200 val) scaled to [0, 1].
Users bring patch folders of RGB PNG/TIFF tiles (see :class:`CamelyonPatchFolder`; a tile is read
by :func:`medden.io.tiles.read_tile`); without
one, :func:`histology_patches` cuts scikit-image's immunohistochemistry image into disjoint
train/val/test regions. Every patch is a ``(3, H, W)`` float32 RGB numpy array in [0, 1],
rows first (``patch[:, r, c]`` is the pixel in row ``r``, column ``c`` of the image as viewed).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medden.core.validation import check_int, check_size
from medden.data.slices import SPLITS
from medden.io.tiles import TILE_SUFFIXES, is_tile, read_tile

__all__ = [
    "SPLIT_CSV", "CamelyonPatchFolder", "camelyon_patches", "histology_patches", "histology_regions",
    "write_noisy_tiles",
]

#: name of the CSV (columns ``file,split``) that splits a flat or nested tile folder
SPLIT_CSV = "split.csv"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")


def _centre_crop(tile: np.ndarray, size: tuple[int, int] | None, path: Path) -> np.ndarray:
    """The centre ``size`` crop of a ``(3, H, W)`` tile (the tile itself if ``size`` is None)."""
    if size is None:
        return tile
    (height, width), (h, w) = tile.shape[1:], size
    if height < h or width < w:
        raise ValueError(f"tile {str(path)!r} is {height}x{width} (rows x columns), smaller than patch_size "
                         f"{size}; lower patch_size or remove the tile.")
    top, left = (height - h) // 2, (width - w) // 2
    return np.ascontiguousarray(tile[:, top:top + h, left:left + w])


def _files_from_csv(csv_path: Path, split: str) -> list[Path]:
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        columns = [column.strip() for column in reader.fieldnames or []]
        if not {"file", "split"} <= set(columns):
            raise ValueError(f"{str(csv_path)!r} must have a header with columns 'file' and 'split', got "
                             f"columns {columns}.")
        reader.fieldnames = columns
        rows = list(reader)
    files = []
    for line, row in enumerate(rows, start=2):
        value, path = (row.get("split") or "").strip(), csv_path.parent / (row.get("file") or "").strip()
        if value not in SPLITS:
            raise ValueError(f"{str(csv_path)!r} line {line}: split {value!r} is not one of {SPLITS}.")
        if not is_tile(path):
            raise ValueError(f"{str(csv_path)!r} line {line}: tile {str(path)!r} is missing or not a "
                             f"{'/'.join(TILE_SUFFIXES)} file; paths are relative to the CSV's folder.")
        if value == split:
            files.append(path)
    return files


@dataclass(frozen=True)
class CamelyonPatchFolder:
    """A folder of Camelyon16 (or any H&E) RGB patches, split into train/val/test.

    Two layouts: ``dataset_dir/<split>/**/*.png|tif|tiff`` (nested folders such as
    ``tumor/`` and ``normal/`` allowed), or any tree plus ``dataset_dir/split.csv`` with
    columns ``file,split`` (``file`` relative to the CSV's folder). The CSV wins if present.

    Args:
        dataset_dir: the folder.
        patch_size: ``(height, width)`` of the centre crop of each tile; None keeps whole tiles.
        max_patches: keep at most this many tiles per split, evenly spaced in sorted order
            (deterministic; e.g. 6100 train and 1200 val as in the recorruption seed).
    """

    dataset_dir: str | os.PathLike
    patch_size: tuple[int, int] | None = None
    max_patches: int | None = None

    def __post_init__(self) -> None:
        if self.patch_size is not None:
            object.__setattr__(self, "patch_size", check_size(self.patch_size, "patch_size"))
        if self.max_patches is not None:
            check_int(self.max_patches, "max_patches", hint="pass None for all tiles")

    def files(self, split: str) -> list[Path]:
        """Sorted tile paths of ``split`` (thinned to ``max_patches``).

        Raises:
            ValueError: unknown ``split``; ``dataset_dir`` or its ``split`` folder is missing;
                the split holds no tile; a CSV lacks its columns, names a missing file or an
                unknown split.
        """
        _check_split(split)
        root = Path(self.dataset_dir)
        if not root.is_dir():
            raise ValueError(f"dataset_dir {str(root)!r} is not a folder; point it at a folder holding "
                             f"train/ and val/ tile folders or {SPLIT_CSV}.")
        if (root / SPLIT_CSV).is_file():
            files = _files_from_csv(root / SPLIT_CSV, split)
        elif (root / split).is_dir():
            files = [path for path in (root / split).rglob("*") if is_tile(path)]
        else:
            raise ValueError(f"dataset_dir {str(root)!r} has no {split}/ folder and no {SPLIT_CSV}; add one of them.")
        if not files:
            raise ValueError(f"no {'/'.join(TILE_SUFFIXES)} tiles for split {split!r} in {str(root)!r}.")
        files = sorted(files)
        count = len(files) if self.max_patches is None else min(self.max_patches, len(files))
        return [files[i * len(files) // count] for i in range(count)]

    def patches(self, split: str) -> list[np.ndarray]:
        """The tiles of ``split`` as ``(3, H, W)`` float32 RGB in [0, 1], rows first (see :func:`medden.io.tiles.read_tile`).

        Raises:
            ValueError: any error of :meth:`files` and :func:`read_tile`, or a tile smaller
                than ``patch_size``.
        """
        return [_centre_crop(read_tile(path), self.patch_size, path) for path in self.files(split)]


def histology_regions() -> dict[str, tuple[slice, slice]]:
    """Disjoint ``(rows, columns)`` regions of the 512x512 immunohistochemistry image per split.

    Train is the left half, val the top and test the bottom of the right half.

    Example:
        >>> histology_regions()["val"]
        (slice(0, 256, None), slice(256, 512, None))
    """
    return {"train": (slice(0, 512), slice(0, 256)), "val": (slice(0, 256), slice(256, 512)),
            "test": (slice(256, 512), slice(256, 512))}


def histology_patches(
    split: str, patch_size: tuple[int, int] = (128, 128), stride: tuple[int, int] | None = None
) -> list[np.ndarray]:
    """Tiles of scikit-image's IHC histology image (RGB, 512x512) from the ``split`` region.

    Tiles of ``patch_size`` are taken row by row every ``stride`` pixels inside the region of
    :func:`histology_regions`, so no pixel is in two splits. ``stride`` defaults to
    ``patch_size`` (non-overlapping); in train only, a smaller stride gives overlapping tiles
    (within the train region).

    Returns:
        ``(3, h, w)`` float32 RGB arrays in [0, 1] (8-bit values / 255), rows first.

    Example:
        >>> tiles = histology_patches("val")
        >>> len(tiles), tiles[0].shape, tiles[0].dtype
        (4, (3, 128, 128), dtype('float32'))
    """
    from medden.data.samples import load_sample

    _check_split(split)
    size = check_size(patch_size, "patch_size")
    step = size if stride is None else check_size(stride, "stride")
    if split != "train" and (step[0] < size[0] or step[1] < size[1]):
        raise ValueError(f"stride {step} is smaller than patch_size {size} for split {split!r}; overlapping "
                         "tiles are only allowed in train. Use stride=None.")
    rows, columns = histology_regions()[split]
    image = load_sample("immunohistochemistry").numpy().transpose(0, 2, 1) / np.float32(255)  # (3, rows, cols)
    region = image[:, rows, columns]
    if region.shape[1] < size[0] or region.shape[2] < size[1]:
        raise ValueError(f"patch_size {size} is larger than the {split} region {region.shape[1:]}; lower it.")
    return [np.ascontiguousarray(region[:, r:r + size[0], c:c + size[1]], np.float32)
            for r in range(0, region.shape[1] - size[0] + 1, step[0])
            for c in range(0, region.shape[2] - size[1] + 1, step[1])]


def camelyon_patches(
    split: str, dataset_dir: str | os.PathLike | None = None, patch_size: tuple[int, int] | None = (128, 128)
) -> list[np.ndarray]:
    """H&E patches for ``split``: :func:`histology_patches` by default, a Camelyon16 folder if given.

    Returns:
        ``(3, H, W)`` float32 RGB arrays in [0, 1], rows first.
    """
    if dataset_dir is None:
        return histology_patches(split, patch_size)
    return CamelyonPatchFolder(dataset_dir, patch_size).patches(split)


def write_noisy_tiles(folder: str | os.PathLike, noise, split: str = "test", patch_size=(128, 128),
                      seed: int = 0) -> Path:
    """Write the embedded histology ``split`` tiles with ``noise`` as 8-bit PNGs (unless the
    folder exists): a ready-made input for the Camelyon bundle's inference config."""
    from medden.io.tiles import write_tile

    folder = Path(folder)
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    noise.set_random_state(seed)
    for index, tile in enumerate(histology_patches(split, patch_size)):
        write_tile(folder / f"histology_{split}_{index:02d}.png", noise(tile))
    return folder
