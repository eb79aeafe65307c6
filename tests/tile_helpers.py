"""RGB tiles written with Pillow directly (not medden's writer), shared by the tile reader tests
(tests/io) and the Camelyon dataset tests (tests/data)."""

import numpy as np
from PIL import Image


def rgb(height, width, seed=0):
    """Random 8-bit RGB tile, ``(height, width, 3)`` as PIL expects (rows first)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def expected(array):
    """What a tile should load as: ``(3, H, W)`` float32, exactly the 8-bit values / 255."""
    return array[..., :3].transpose(2, 0, 1).astype(np.float32) / np.float32(255)
