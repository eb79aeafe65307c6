"""RGB tiles (histology patches): PNG/TIFF read as ``(3, H, W)`` in [0, 1], written as 8-bit PNG atomically.

Tiles are rows first: ``tile[:, r, c]`` is the pixel in row ``r``, column ``c`` of the image as viewed.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medden.io.files import atomic_write

if TYPE_CHECKING:
    from monai.transforms import LoadImage

__all__ = ["TILE_SUFFIXES", "is_tile", "read_tile", "write_tile"]

#: accepted tile suffixes (case-insensitive)
TILE_SUFFIXES = (".png", ".tif", ".tiff")
#: the value of full intensity for each stored integer type
_FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def is_tile(path: Path) -> bool:
    """Whether ``path`` is a visible file with a tile suffix (:data:`TILE_SUFFIXES`)."""
    return path.is_file() and path.suffix.lower() in TILE_SUFFIXES and not path.name.startswith(".")


@lru_cache(maxsize=1)
def _loader() -> LoadImage:
    from monai.transforms import LoadImage

    # dtype=None keeps the stored integer type, which fixes the full-scale value (255 or 65535)
    return LoadImage(image_only=True, ensure_channel_first=True, reader="PILReader", dtype=None)


def _to_unit(tile: np.ndarray, path: str) -> np.ndarray:
    """Scale an integer tile to float32 in [0, 1]: 8-bit by 255, 16-bit by 65535."""
    full = _FULL_SCALE.get(np.asarray(tile).dtype)
    if full is None:
        raise ValueError(f"tile {path!r} stores {tile.dtype} values; expected 8-bit or 16-bit RGB.")
    return np.asarray(tile, np.float32) / np.float32(full)


def read_tile(path: str | os.PathLike) -> np.ndarray:
    """Read one RGB(A) tile as ``(3, H, W)`` float32 in [0, 1], rows first; alpha is dropped.

    MONAI's PIL reader returns ``(C, columns, rows)``; the last two axes are swapped so the array
    matches the image as viewed. Pillow reads 16-bit RGB TIFFs as 8-bit (their high byte).

    Raises:
        ValueError: the tile is not RGB/RGBA (greyscale, palette, CMYK): H&E tiles are RGB.
    """
    from monai.utils import convert_to_numpy

    image = _loader()(str(path))
    mode, channels = image.meta.get("mode"), image.shape[0]
    if channels not in (3, 4) or not str(mode).startswith("RGB"):
        raise ValueError(f"tile {str(path)!r} has PIL mode {mode!r} ({channels} channel(s)); H&E tiles must "
                         "be RGB or RGBA. Convert it, e.g. PIL.Image.open(path).convert('RGB').save(path).")
    return np.ascontiguousarray(_to_unit(convert_to_numpy(image)[:3], str(path)).transpose(0, 2, 1))


def write_tile(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a ``(3, H, W)`` image in [0, 1] (rows first) as an 8-bit RGB PNG, atomically."""
    from PIL import Image

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f"a tile must be (3, H, W) RGB, got shape {array.shape}.")
    pixels = np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8).transpose(1, 2, 0)
    return atomic_write(path, lambda tmp: Image.fromarray(pixels, "RGB").save(tmp, format="PNG"), overwrite=overwrite)
