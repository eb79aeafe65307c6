"""JSRT raw files written by numpy directly (not medden's writer), shared by the reader tests
(tests/io) and the dataset tests (tests/data)."""

import numpy as np

SIZE = (64, 64)  # tiny stand-ins for JSRT's 2048 x 2048


def levels(seed, size=SIZE):
    """Random 12-bit grey levels, including both extremes."""
    raw = np.random.default_rng(seed).integers(0, 4096, size, dtype=np.uint16)
    raw.flat[:2] = (0, 4095)
    return raw


def write_raw(path, raw, dtype=">u2"):
    """A file in JSRT's on-disk format (headerless big-endian uint16), written by numpy directly."""
    raw.astype(dtype).tofile(path)
    return path
