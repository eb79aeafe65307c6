"""JSRT raw .IMG files: byte format, inversion, 50/50 split, split.csv override, resizing, writing."""

import numpy as np
import pytest

from medden.data.jsrt import JSRTFolder, jsrt_split, read_jsrt_image, write_jsrt_image

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


@pytest.fixture
def folder(tmp_path):
    """5 nodule and 4 non-nodule files (some in a subfolder), plus files that are not JSRT images."""
    (tmp_path / "sub").mkdir()
    for i in range(1, 6):
        write_raw(tmp_path / ("sub" if i % 2 else "") / f"JPCLN{i:03d}.IMG", levels(i))
    for i in range(1, 5):
        write_raw(tmp_path / f"JPCNN{i:03d}.img", levels(10 + i))
    for name in ("notes.IMG", "JPCLN001.png", "JPCXN001.IMG", "JPCLN01.IMG"):
        (tmp_path / name).write_bytes(b"not a JSRT image")
    return JSRTFolder(tmp_path, output_size=(16, 16), image_size=SIZE)


def names(paths):
    return [path.name.upper() for path in paths]


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
    with pytest.raises(ValueError, match="output_size"):
        JSRTFolder(tmp_path, output_size=(512,))


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


def test_files_are_sorted_jsrt_names_only(folder):
    assert names(folder.files()) == [f"JPCLN{i:03d}.IMG" for i in range(1, 6)] + [
        f"JPCNN{i:03d}.IMG" for i in range(1, 5)]


def test_split_is_deterministic_disjoint_and_balanced(folder):
    train, val = names(folder.split_files("train")), names(folder.split_files("val"))
    assert train == ["JPCLN001.IMG", "JPCLN003.IMG", "JPCLN005.IMG", "JPCNN001.IMG", "JPCNN003.IMG"]
    assert val == ["JPCLN002.IMG", "JPCLN004.IMG", "JPCNN002.IMG", "JPCNN004.IMG"]
    assert names(folder.split_files("train")) == train  # deterministic
    assert not set(train) & set(val) and len(train) + len(val) == 9
    assert jsrt_split(list(reversed(train + val))) == {"train": train, "val": val}  # order does not matter


def test_full_jsrt_split_is_50_50_per_group():
    split = jsrt_split([f"JPCLN{i:03d}.IMG" for i in range(1, 155)] + [f"JPCNN{i:03d}.IMG" for i in range(1, 94)])
    count = {s: {g: sum(n.startswith(g) for n in split[s]) for g in ("JPCLN", "JPCNN")} for s in split}
    assert count == {"train": {"JPCLN": 77, "JPCNN": 47}, "val": {"JPCLN": 77, "JPCNN": 46}}


def test_test_split_needs_split_csv(folder):
    with pytest.raises(ValueError, match="train/val split only.*split='val'.*split.csv"):
        folder.split_files("test")
    with pytest.raises(ValueError, match="split must be one of"):
        folder.split_files("training")


def test_split_csv_overrides_the_rule(folder):
    (folder.dataset_dir / "split.csv").write_text(
        "file,split\nJPCLN001.IMG,test\njpcnn002.img,train\nsub/JPCLN003.IMG,val\nJPCNN004.IMG,train\n")
    assert names(folder.split_files("train")) == ["JPCNN002.IMG", "JPCNN004.IMG"]
    assert names(folder.split_files("val")) == ["JPCLN003.IMG"]
    assert names(folder.split_files("test")) == ["JPCLN001.IMG"]
    assert [im.shape for im in folder.images("test")] == [(1, 16, 16)]


@pytest.mark.parametrize("text, match", [
    ("name,split\nJPCLN001.IMG,train\n", "header 'file,split'"),
    ("file,split\nJPCLN001.IMG,holdout\n", "line 2: split 'holdout'"),
    ("file,split\nJPCLN099.IMG,train\n", "line 2: file 'JPCLN099.IMG' is not a JSRT image"),
    ("file,split\nJPCLN001.IMG,train\nJPCLN001.IMG,val\n", "line 3: 'JPCLN001.IMG' is listed in two splits"),
    ("file,split\nJPCLN001.IMG,train\n", "split 'val' has no files"),
])
def test_bad_split_csv(folder, text, match):
    (folder.dataset_dir / "split.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        folder.split_files("val")


def test_images_are_area_resized_in_unit_range(folder):
    images = folder.images("val")
    assert len(images) == 4 and all(im.shape == (1, 16, 16) and im.dtype == np.float32 for im in images)
    assert all(0.0 <= im.min() and im.max() <= 1.0 for im in images)
    full = read_jsrt_image(folder.split_files("val")[0], SIZE)
    np.testing.assert_allclose(images[0][0], full[0].reshape(16, 4, 16, 4).mean(axis=(1, 3)), atol=1e-5)
    same = JSRTFolder(folder.dataset_dir, output_size=SIZE, image_size=SIZE, invert=False).images("val")[0]
    np.testing.assert_allclose(same, 1.0 - full, atol=1e-6)


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        JSRTFolder(tmp_path / "missing").files()
    with pytest.raises(ValueError, match="no JSRT files"):
        JSRTFolder(tmp_path).files()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for sub in ("a", "b"):
        write_raw(tmp_path / sub / "JPCLN001.IMG", levels(0))
    with pytest.raises(ValueError, match="'JPCLN001.IMG' found twice"):
        JSRTFolder(tmp_path, image_size=SIZE).files()


def test_default_chest_regions_are_disjoint_and_cover_the_plane():
    from medden.data.jsrt import chest_images, chest_regions

    covered = np.zeros((9, 7), int)
    for rows, cols in chest_regions((9, 7)).values():
        covered[rows, cols] += 1
    assert (covered == 1).all()
    shapes = {split: chest_images(split)[0].shape for split in ("train", "val", "test")}
    assert all(len(s) == 3 and s[0] == 1 for s in shapes.values())
    assert shapes["train"][1] == shapes["val"][1] + shapes["test"][1]
