"""JSRT chest radiographs as raw ``.IMG`` files: reading and writing.

The JSRT database (Japanese Society of Radiological Technology) holds 247 PA chest
radiographs: ``JPCLN001.IMG`` ... ``JPCLN154.IMG`` (with a lung nodule) and ``JPCNN001.IMG``
... ``JPCNN093.IMG`` (without). Each file is headerless: 2048 x 2048 pixels (0.175 mm), 12-bit
grey levels (0-4095) stored as big-endian unsigned 16-bit integers, 8,388,608 bytes in all.
In the raw values a larger value is displayed darker (the lungs are high); ``invert=True``
(the default) returns ``4095 - raw`` instead, so bone is bright and lungs dark as on a
standard radiograph. Images are ``(1, H, W)`` float32 in [0, 1] (grey level / 4095).
The dataset (the folder, its 50/50 split, resizing) is :mod:`medden.data.jsrt`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medden.core.validation import check_size
from medden.io.files import atomic_write

__all__ = ["JSRT_PATTERN", "JSRT_SIZE", "MAX_LEVEL", "read_jsrt_image", "write_jsrt_image"]

JSRT_SIZE = (2048, 2048)
MAX_LEVEL = 4095  # 12-bit grey levels
RAW_DTYPE = np.dtype(">u2")  # big-endian unsigned 16-bit, no header
JSRT_PATTERN = re.compile(r"^JPC(LN|NN)\d{3}\.IMG$", re.IGNORECASE)


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
    height, width = check_size(size, "size")
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
