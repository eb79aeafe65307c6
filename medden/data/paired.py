"""Noise2Noise pairs from real data: two noisy acquisitions per sample (e.g. two MRI repetitions).

A dataset folder holds either ``pairs.csv`` (header ``input,target``, optional ``name``; paths
relative to the CSV's folder or absolute) or one subfolder per sample with exactly two image
files (sorted by name: input, then target; other files are ignored). Images are NIfTI, ``.npy``
without a channel axis (``(H, W)`` or ``(H, W, D)``) or ``.png``/``.tif`` (MONAI's PIL reader
gives ``(C, columns, rows)``). Loaded pairs are float32 ``(C, *spatial)`` numpy arrays, roughly in
[0, 1], scaled by ONE linear map per pair and never clipped.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from monai.transforms import LoadImage
from monai.utils import convert_to_numpy

from medden.data.slices import SPLITS, foreground_slices, split_subjects
from medden.core.keys import Keys
from medden.core.validation import check_channel_first, check_finite, check_range

__all__ = ["NAME_KEY", "PAIRS_CSV", "find_pairs", "load_pair", "paired_slices", "scale_pair"]

#: name of the CSV file that lists the pairs of a dataset folder
PAIRS_CSV = "pairs.csv"
#: key of the sample name in the dicts :func:`find_pairs` returns
NAME_KEY = "name"
#: MONAI reader for each accepted image suffix (``.nii.gz`` counts as one suffix)
IMAGE_READERS = {
    ".nii": "NibabelReader", ".nii.gz": "NibabelReader", ".npy": "NumpyReader",
    ".png": "PILReader", ".tif": "PILReader", ".tiff": "PILReader",
}


def _suffix(path: Path) -> str | None:
    """The image suffix of ``path`` (a key of ``IMAGE_READERS``), or None for other files."""
    return next((suffix for suffix in IMAGE_READERS if path.name.lower().endswith(suffix)), None)


def _stem(path: Path) -> str:
    """The file name without its image suffix: ``sub.01.nii.gz`` -> ``sub.01``."""
    return path.name[: len(path.name) - len(_suffix(path) or path.suffix)]


def find_pairs(dataset_dir: str | os.PathLike) -> list[dict[str, str]]:
    """List the sample pairs of a dataset folder (``pairs.csv`` first, else sample subfolders).

    Returns:
        ``[{"input": path, "target": path, "name": str}, ...]`` sorted by name; the paths
        are absolute strings (keys ``Keys.INPUT``, ``Keys.TARGET`` and :data:`NAME_KEY`).

    Raises:
        ValueError: ``dataset_dir`` is not a folder or holds no pair; the CSV lacks the
            ``input``/``target`` columns, names a missing file or repeats a name; a sample
            subfolder does not hold exactly two image files.
    """
    root = Path(dataset_dir).resolve()
    if not root.is_dir():
        raise ValueError(f"dataset_dir {str(dataset_dir)!r} is not a folder; point it at a folder holding "
                         f"{PAIRS_CSV} or one subfolder per sample.")
    csv_path = root / PAIRS_CSV
    pairs = _pairs_from_csv(csv_path) if csv_path.is_file() else _pairs_from_folders(root)
    if not pairs:
        raise ValueError(f"no sample pairs found in {str(root)!r}: expected {PAIRS_CSV} with columns "
                         "input,target or subfolders holding two image files each.")
    return sorted(pairs, key=lambda item: item[NAME_KEY])


def _pairs_from_csv(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        columns = [column.strip() for column in reader.fieldnames or []]
        if not {Keys.INPUT, Keys.TARGET} <= set(columns):
            raise ValueError(f"{str(csv_path)!r} must have a header with columns 'input' and 'target' "
                             f"(and optionally 'name'), got columns {columns}.")
        reader.fieldnames = columns
        rows = list(reader)
    pairs, seen = [], set()
    for line, row in enumerate(rows, start=2):
        files = {key: _csv_file(csv_path, line, row.get(key)) for key in (Keys.INPUT, Keys.TARGET)}
        name = (row.get(NAME_KEY) or "").strip() or _stem(Path(files[Keys.INPUT]))
        if name in seen:
            raise ValueError(f"{str(csv_path)!r} line {line}: sample name {name!r} is used twice; "
                             "give each row a unique 'name'.")
        seen.add(name)
        pairs.append({**files, NAME_KEY: name})
    return pairs


def _csv_file(csv_path: Path, line: int, value: str | None) -> str:
    path = csv_path.parent / (value or "").strip()
    if not path.is_file():
        raise ValueError(f"{str(csv_path)!r} line {line}: file {str(path)!r} is missing; paths are "
                         "relative to the CSV's folder or absolute.")
    return str(path.resolve())


def _pairs_from_folders(root: Path) -> list[dict[str, str]]:
    pairs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted((p for p in folder.iterdir() if p.is_file() and _suffix(p)), key=lambda p: p.name)
        if len(images) != 2:
            raise ValueError(f"sample folder {str(folder)!r} holds {len(images)} image file(s); each sample "
                             f"folder needs exactly two ({', '.join(IMAGE_READERS)}): input, target in name order.")
        pairs.append({Keys.INPUT: str(images[0]), Keys.TARGET: str(images[1]), NAME_KEY: folder.name})
    return pairs


def scale_pair(
    input: np.ndarray, target: np.ndarray, percentiles: Sequence[float] = (0.5, 99.5), name: str = "pair"
) -> tuple[np.ndarray, np.ndarray]:
    """Scale two realisations of one image by ONE linear map to roughly [0, 1], without clipping.

    The map sends the ``percentiles`` of the average ``(input + target) / 2`` to 0 and 1. One
    map for both keeps their relative intensity, so ``E[target | input]`` is still the clean
    image; clipping would bias the noise mean, so values outside [0, 1] are kept.

    Args:
        input: one realisation, any shape.
        target: the other realisation, same shape as ``input``.
        percentiles: ``(low, high)`` percentiles in [0, 100].
        name: what the pair is called in error messages.

    Returns:
        ``(input, target)`` scaled, float32, shapes unchanged.

    Example:
        >>> a, b = scale_pair(np.array([0.0, 10.0]), np.array([2.0, 12.0]), (0, 100))
        >>> print(a, b)
        [-0.1  0.9] [0.1 1.1]
    """
    if np.shape(input) != np.shape(target):
        raise ValueError(f"{name}: input and target must have the same shape, got {np.shape(input)} and "
                         f"{np.shape(target)}.")
    low_pct, high_pct = check_range(percentiles, "percentiles", 0.0, 100.0)
    average = (np.asarray(input, np.float64) + np.asarray(target, np.float64)) / 2
    low, high = np.percentile(average, [low_pct, high_pct])
    if high <= low:
        raise ValueError(f"{name} is constant between percentiles {tuple(percentiles)} (value {low:g}); "
                         "nothing to scale.")
    return tuple(((np.asarray(x, np.float64) - low) / (high - low)).astype(np.float32) for x in (input, target))


@lru_cache(maxsize=None)
def _loader(reader: str) -> LoadImage:
    return LoadImage(reader=reader, image_only=True, ensure_channel_first=True)


def _load(path: str) -> np.ndarray:
    """Read one image file as a float32 ``(C, *spatial)`` numpy array."""
    suffix = _suffix(Path(path))
    if suffix is None:
        raise ValueError(f"{path!r} is not a supported image file; use one of {', '.join(IMAGE_READERS)}.")
    return convert_to_numpy(_loader(IMAGE_READERS[suffix])(path), dtype=np.float32)


def load_pair(item: Mapping[str, str], percentiles: Sequence[float] = (0.5, 99.5)) -> tuple[np.ndarray, np.ndarray]:
    """Read one pair from :func:`find_pairs` and scale both images by one map (:func:`scale_pair`).

    Returns:
        ``(input, target)``: float32 ``(C, H, W)`` or ``(C, H, W, D)`` numpy arrays, roughly
        in [0, 1], not clipped.

    Raises:
        ValueError: the two files differ in shape; an image is not 2-D or 3-D or holds
            non-finite values; the pair is constant.
    """
    paths = (str(item[Keys.INPUT]), str(item[Keys.TARGET]))
    first, second = (_load(path) for path in paths)
    if first.shape != second.shape:
        raise ValueError(f"input {paths[0]!r} has shape {first.shape} but target {paths[1]!r} has shape "
                         f"{second.shape}; the two acquisitions of a pair must have the same shape.")
    for path, image in zip(paths, (first, second)):
        check_channel_first(image, f"image {path!r}")
        check_finite(image, f"image {path!r}")
    return scale_pair(first, second, percentiles, name=f"pair {item.get(NAME_KEY, paths[0])!r}")


def _slice_pair(input: np.ndarray, target: np.ndarray) -> list[dict[str, np.ndarray]]:
    """2-D pairs as they are; 3-D pairs as foreground ``(C, H, W)`` slices along the last axis."""
    if input.ndim == 3:
        return [{Keys.INPUT: input, Keys.TARGET: target}]
    return [
        {Keys.INPUT: np.ascontiguousarray(input[..., k]), Keys.TARGET: np.ascontiguousarray(target[..., k])}
        for k in foreground_slices((input + target) / 2)
    ]


def paired_slices(
    dataset_dir: str | os.PathLike, split: str, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> list[dict[str, np.ndarray]]:
    """Input/target 2-D slices of the samples in ``split``; each dict is ready for a MONAI Dataset.

    Samples are split by name with :func:`~medden.data.slices.split_subjects` (sorted names cut
    into consecutive groups), so no sample lends slices to two splits. 3-D pairs are cut along
    the last axis, keeping slices whose pair average has at least 5% of its pixels above 0.05
    (:func:`~medden.data.slices.foreground_slices`); 2-D pairs are kept whole.

    Returns:
        ``[{Keys.INPUT: (C, H, W) float32, Keys.TARGET: (C, H, W) float32}, ...]`` in sample
        order, then slice order.

    Raises:
        ValueError: an unknown ``split``, fewer than 3 samples, or any error of
            :func:`find_pairs` and :func:`load_pair`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    items = {item[NAME_KEY]: item for item in find_pairs(dataset_dir)}
    out = []
    for name in split_subjects(list(items), fractions)[split]:
        out.extend(_slice_pair(*load_pair(items[name])))
    return out
