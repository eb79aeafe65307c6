"""JSRT chest radiographs: reading and writing raw ``.IMG`` files, the 50/50 split, resizing.

The JSRT database (Japanese Society of Radiological Technology) holds 247 PA chest
radiographs: ``JPCLN001.IMG`` ... ``JPCLN154.IMG`` (with a lung nodule) and ``JPCNN001.IMG``
... ``JPCNN093.IMG`` (without). Each file is headerless: 2048 x 2048 pixels (0.175 mm), 12-bit
grey levels (0-4095) stored as big-endian unsigned 16-bit integers, 8,388,608 bytes in all.
In the raw values a larger value is displayed darker (the lungs are high); ``invert=True``
(the default) returns ``4095 - raw`` instead, so bone is bright and lungs dark as on a
standard radiograph. Images are ``(1, H, W)`` float32 in [0, 1] (grey level / 4095).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medden.data.slices import SPLITS
from medden.io.files import atomic_write

__all__ = ["JSRT_SIZE", "JSRTFolder", "chest_images", "chest_regions", "jsrt_split", "read_jsrt_image",
           "write_jsrt_image", "write_noisy_chest"]

JSRT_SIZE = (2048, 2048)
MAX_LEVEL = 4095  # 12-bit grey levels
RAW_DTYPE = np.dtype(">u2")  # big-endian unsigned 16-bit, no header
SPLIT_CSV = "split.csv"
JSRT_PATTERN = re.compile(r"^JPC(LN|NN)\d{3}\.IMG$", re.IGNORECASE)


def _check_size(size: Sequence[int], name: str) -> tuple[int, int]:
    """Return ``size`` as ``(height, width)`` of positive ints, else raise ``ValueError``."""
    valid = isinstance(size, Sequence) and len(size) == 2 and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size)
    if not valid:
        raise ValueError(f"{name} must be two positive integers (height, width), got {size!r}.")
    return int(size[0]), int(size[1])


def _check_levels(raw: np.ndarray, path: Path) -> None:
    """Raise ``ValueError`` if ``raw`` (read big-endian) exceeds 12 bits, saying if it looks little-endian."""
    top = int(raw.max())
    if top <= MAX_LEVEL:
        return
    if int(raw.byteswap().max()) <= MAX_LEVEL:
        raise ValueError(f"{str(path)!r}: values read as big-endian reach {top} (> {MAX_LEVEL}), but byte-swapped "
                         f"they are all 12-bit: the file looks little-endian. JSRT .IMG files are big-endian; "
                         "rewrite it with write_jsrt_image(path, np.fromfile(path, '<u2').reshape(size)).")
    raise ValueError(f"{str(path)!r}: values reach {top}, above the 12-bit maximum {MAX_LEVEL} in either byte "
                     "order; this is not a JSRT 12-bit .IMG file.")


def read_jsrt_image(path: str | os.PathLike, size: Sequence[int] = JSRT_SIZE, invert: bool = True) -> np.ndarray:
    """Read one raw JSRT ``.IMG`` file (headerless, big-endian unsigned 16-bit, 12-bit values).

    Args:
        path: the file.
        size: its ``(height, width)`` in pixels.
        invert: return ``4095 - raw`` (bone bright, lungs dark) instead of the raw grey levels.

    Returns:
        ``(1, height, width)`` float32 in [0, 1]: grey level / 4095.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file size is not ``2 * height * width`` bytes, or values exceed 12 bits
            (for example a little-endian file, which the message points out).
    """
    path = Path(path)
    height, width = _check_size(size, "size")
    if not path.is_file():
        raise FileNotFoundError(f"JSRT image {str(path)!r} does not exist or is not a file.")
    expected, found = height * width * RAW_DTYPE.itemsize, path.stat().st_size
    if found != expected:
        raise ValueError(f"{str(path)!r} has {found:,} bytes, expected {expected:,} for a {height}x{width} "
                         f"16-bit image; JSRT .IMG files are headerless big-endian 16-bit ({JSRT_SIZE[0]}x"
                         f"{JSRT_SIZE[1]}: {2 * JSRT_SIZE[0] * JSRT_SIZE[1]:,} bytes). Pass the right size=.")
    raw = np.fromfile(path, dtype=RAW_DTYPE).reshape(height, width)
    _check_levels(raw, path)
    levels = raw.astype(np.float32)
    return ((MAX_LEVEL - levels if invert else levels) / np.float32(MAX_LEVEL))[None]


def write_jsrt_image(path: str | os.PathLike, image12bit: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write raw grey levels as a JSRT ``.IMG`` file, atomically (temporary file, then ``os.replace``).

    Args:
        path: the file to write; its folder must exist.
        image12bit: ``(H, W)`` integer array of raw (not inverted) grey levels in [0, 4095];
            read it back with ``read_jsrt_image(path, size=(H, W))``.
        overwrite: replace an existing file (else ``FileExistsError``).

    Returns:
        ``path``.
    """
    image = np.asarray(image12bit)
    if not np.issubdtype(image.dtype, np.integer):
        raise TypeError(f"image12bit must hold integer grey levels, got dtype {image.dtype}; convert an image in "
                        "[0, 1] with np.round(img * 4095).astype(np.uint16).")
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"image12bit must be a non-empty (H, W) array, got shape {image.shape}.")
    if image.min() < 0 or image.max() > MAX_LEVEL:
        raise ValueError(f"image12bit must lie in [0, {MAX_LEVEL}] (12-bit), got [{image.min()}, {image.max()}].")
    return atomic_write(path, lambda tmp: image.astype(RAW_DTYPE).tofile(tmp), overwrite=overwrite)


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
        _check_size(self.output_size, "output_size")
        _check_size(self.image_size, "image_size")

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
    """Disjoint train/val/test regions of an ``(X, Y)`` plane: train the first half along Y,
    val and test the two halves along X of the second half."""
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
    image = chest_images(split)[0][..., None]  # (1, X, Y, 1)
    return write_nifti(noise.set_random_state(seed)(image), path)
