"""RGB tiles: reading rows first in [0, 1] (8- and 16-bit, alpha dropped), refusing non-RGB tiles."""

import numpy as np
import pytest
from PIL import Image
from tile_helpers import expected, rgb, save

from medden.io import tiles
from medden.io.tiles import read_tile


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_orientation_is_rows_first(tmp_path, suffix):
    array = np.zeros((4, 6, 3), np.uint8)  # 4 rows, 6 columns
    array[0, :, 0] = 255  # top row red
    array[:, -1, 1] = 100  # right column green
    patch = read_tile(save(tmp_path / f"tile{suffix}", array))
    assert patch.shape == (3, 4, 6)
    assert (patch[0, 0] == 1).all() and (patch[0, 1:] == 0).all()
    np.testing.assert_array_equal(patch[1, :, -1], np.full(4, np.float32(100) / np.float32(255)))


def test_values_in_unit_range_and_exact_scaling(tmp_path):
    array = np.arange(256 * 3, dtype=np.uint16).reshape(16, 16, 3) % 256
    patch = read_tile(save(tmp_path / "ramp.png", array.astype(np.uint8)))
    assert patch.min() == 0.0 and patch.max() == 1.0
    np.testing.assert_array_equal(patch, expected(array))


def test_rgba_drops_alpha(tmp_path):
    rgba = np.dstack([rgb(5, 7), np.full((5, 7), 30, np.uint8)])
    np.testing.assert_array_equal(read_tile(save(tmp_path / "rgba.png", rgba)), expected(rgba))


def test_16bit_rgb_tiff_reads_in_unit_range(tmp_path):
    tifffile = pytest.importorskip("tifffile", reason="tifffile writes 16-bit RGB TIFFs")
    array = rgb(4, 6)
    tifffile.imwrite(tmp_path / "deep.tif", array.astype(np.uint16) * 257, photometric="rgb")
    np.testing.assert_array_equal(read_tile(tmp_path / "deep.tif"), expected(array))  # Pillow keeps the high byte


def test_16bit_values_scale_by_65535():
    values = np.array([0, 257, 65535], np.uint16)
    np.testing.assert_array_equal(tiles._to_unit(values, "x"), values.astype(np.float32) / np.float32(65535))


@pytest.mark.parametrize("mode, suffix", [("L", ".png"), ("LA", ".png"), ("P", ".png"), ("CMYK", ".tif")])
def test_non_rgb_tiles_are_errors(tmp_path, mode, suffix):
    path = tmp_path / f"grey{suffix}"
    Image.fromarray(rgb(4, 4)).convert(mode).save(path)
    with pytest.raises(ValueError, match=rf"grey\{suffix}' has PIL mode '{mode}'.*must be RGB or RGBA"):
        read_tile(path)


def test_16bit_greyscale_tile_is_an_error(tmp_path):
    Image.fromarray(np.full((4, 4), 1000, np.uint16)).save(tmp_path / "deep_grey.png")
    with pytest.raises(ValueError, match=r"deep_grey\.png' has PIL mode 'I;16' \(1 channel\(s\)\)"):
        read_tile(tmp_path / "deep_grey.png")
