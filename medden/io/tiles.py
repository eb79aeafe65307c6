"""RGB tiles as 8-bit PNG (histology patches), written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medden.io.files import atomic_write

__all__ = ["write_tile"]


def write_tile(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a ``(3, H, W)`` image in [0, 1] (rows first) as an 8-bit RGB PNG, atomically."""
    from PIL import Image

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f"a tile must be (3, H, W) RGB, got shape {array.shape}.")
    pixels = np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8).transpose(1, 2, 0)
    return atomic_write(path, lambda tmp: Image.fromarray(pixels, "RGB").save(tmp, format="PNG"), overwrite=overwrite)
