"""JSRT raw .IMG files: byte format, inversion, size and level checks, writing."""

import numpy as np
import pytest
from jsrt_helpers import SIZE, levels, write_raw

from medden.io.jsrt import read_jsrt_image, write_jsrt_image


@pytest.mark.parametrize("invert", [True, False])
def test_read_returns_raw_over_4095_and_inverts(tmp_path, invert):
    raw = levels(0)
    image = read_jsrt_image(write_raw(tmp_path / "JPCLN001.IMG", raw), SIZE, invert=invert)
    assert image.shape == (1, *SIZE) and image.dtype == np.float32
    expected = (4095.0 - raw if invert else raw.astype(np.float64)) / 4095.0
    np.testing.assert_allclose(image[0], expected, rtol=0, atol=1e-6)
    assert image.min() == 0.0 and image.max() == 1.0


def test_byte_order_matters_little_endian_file_is_rejected(tmp_path):
    path = write_raw(tmp_path / "JPCLN001.IMG", levels(0), dtype="<u2")
    with pytest.raises(ValueError, match="JPCLN001.IMG.*looks little-endian"):
        read_jsrt_image(path, SIZE)


def test_values_above_12_bit_in_both_byte_orders_are_rejected(tmp_path):
    path = write_raw(tmp_path / "JPCLN001.IMG", np.full(SIZE, 0x1F1F, np.uint16))
    with pytest.raises(ValueError, match="not a JSRT 12-bit"):
        read_jsrt_image(path, SIZE)


def test_wrong_file_size_names_expected_bytes(tmp_path):
    path = write_raw(tmp_path / "JPCLN001.IMG", levels(0))
    with pytest.raises(ValueError, match=r"JPCLN001.IMG.*8,192 bytes, expected 8,388,608.*headerless big-endian"):
        read_jsrt_image(path)  # the default size is 2048 x 2048
    with path.open("ab") as f:
        f.write(b"\0\0")  # a 2-byte "header"
    with pytest.raises(ValueError, match="8,194 bytes, expected 8,192"):
        read_jsrt_image(path, SIZE)


def test_missing_file_and_bad_size(tmp_path):
    with pytest.raises(FileNotFoundError, match="JPCLN999.IMG"):
        read_jsrt_image(tmp_path / "JPCLN999.IMG", SIZE)
    with pytest.raises(ValueError, match=r"size must be two positive integers.*\(64, 0\)"):
        read_jsrt_image(tmp_path / "JPCLN999.IMG", (64, 0))


def test_writer_is_byte_identical_to_numpy_big_endian(tmp_path):
    raw = levels(3)
    reference = write_raw(tmp_path / "reference.IMG", raw)
    written = write_jsrt_image(tmp_path / "JPCNN001.IMG", raw)
    assert written.read_bytes() == reference.read_bytes()
    np.testing.assert_array_equal(np.round(read_jsrt_image(written, SIZE, invert=False)[0] * 4095), raw)
    with pytest.raises(FileExistsError):
        write_jsrt_image(written, raw)
    write_jsrt_image(written, raw, overwrite=True)


def test_writer_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match=r"\[0, 4095\].*4096"):
        write_jsrt_image(tmp_path / "a.IMG", np.full(SIZE, 4096, np.uint16))
    with pytest.raises(TypeError, match="integer grey levels"):
        write_jsrt_image(tmp_path / "a.IMG", np.zeros(SIZE, np.float32))
    with pytest.raises(ValueError, match="shape"):
        write_jsrt_image(tmp_path / "a.IMG", np.zeros((1, *SIZE), np.uint16))
    assert not list(tmp_path.iterdir())  # nothing half-written
