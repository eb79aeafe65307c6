"""JSRT datasets: the folder's files, 50/50 split, split.csv override, resizing, the embedded default."""

import numpy as np
import pytest
from jsrt_helpers import SIZE, levels, write_raw

from medden.data.jsrt import JSRTFolder, jsrt_split
from medden.io.jsrt import read_jsrt_image


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


def test_folder_checks_its_sizes(tmp_path):
    with pytest.raises(ValueError, match="output_size"):
        JSRTFolder(tmp_path, output_size=(512,))


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
