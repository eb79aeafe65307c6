"""H&E patches: Camelyon16 tile folders (folder and CSV layouts), centre crops, histology default."""

import numpy as np
import pytest
from tile_helpers import expected, rgb, save

from medden.data.camelyon import (
    SPLIT_CSV,
    CamelyonPatchFolder,
    camelyon_patches,
    histology_patches,
    histology_regions,
)


def _folder_layout(root):
    """train/ with nested tumor/ normal/ and mixed suffixes, val/ with one tile, plus non-tiles."""
    tiles = {
        "train/tumor/t1.png": rgb(8, 8, 1), "train/normal/n1.tif": rgb(8, 8, 2),
        "train/normal/n2.TIFF": rgb(8, 8, 3), "val/v1.png": rgb(8, 8, 4),
    }
    for name, array in tiles.items():
        save(root / name, array)
    (root / "train" / "notes.txt").write_text("not a tile")
    return tiles


def _csv_layout(root, rows="file,split\nflat/a.png,train\nflat/b.png,val\nnested/deep/c.tif,train\nd.png,test\n"):
    tiles = {"flat/a.png": rgb(6, 6, 1), "flat/b.png": rgb(6, 6, 2), "nested/deep/c.tif": rgb(6, 6, 3),
             "d.png": rgb(6, 6, 4)}
    for name, array in tiles.items():
        save(root / name, array)
    (root / SPLIT_CSV).write_text(rows)
    return tiles


def test_folder_layout_nested_and_mixed_suffixes(tmp_path):
    tiles = _folder_layout(tmp_path)
    folder = CamelyonPatchFolder(tmp_path)
    names = ["train/normal/n1.tif", "train/normal/n2.TIFF", "train/tumor/t1.png"]
    assert folder.files("train") == [tmp_path / name for name in names]
    for name, patch in zip(names, folder.patches("train")):
        assert patch.dtype == np.float32 and patch.shape == (3, 8, 8)
        np.testing.assert_array_equal(patch, expected(tiles[name]))
    assert folder.files("val") == [tmp_path / "val/v1.png"]


def test_csv_layout_relative_paths_and_test_split(tmp_path):
    tiles = _csv_layout(tmp_path)
    folder = CamelyonPatchFolder(tmp_path)
    assert folder.files("train") == [tmp_path / "flat/a.png", tmp_path / "nested/deep/c.tif"]
    assert folder.files("val") == [tmp_path / "flat/b.png"]
    (test_patch,) = folder.patches("test")
    np.testing.assert_array_equal(test_patch, expected(tiles["d.png"]))


def test_centre_crop(tmp_path):
    array = rgb(8, 10)
    save(tmp_path / "train" / "a.png", array)
    (patch,) = CamelyonPatchFolder(tmp_path, patch_size=(4, 6)).patches("train")
    np.testing.assert_array_equal(patch, expected(array[2:6, 2:8]))


def test_tile_smaller_than_patch_size(tmp_path):
    save(tmp_path / "train" / "small.png", rgb(8, 10))
    with pytest.raises(ValueError, match=r"small\.png' is 8x10 .*smaller than patch_size \(8, 12\)"):
        CamelyonPatchFolder(tmp_path, patch_size=(8, 12)).patches("train")


def test_max_patches_evenly_spaced_and_deterministic(tmp_path):
    for i in reversed(range(10)):
        save(tmp_path / "train" / f"p{i}.png", rgb(2, 2, i))
    folder = CamelyonPatchFolder(tmp_path, max_patches=3)
    assert [p.name for p in folder.files("train")] == ["p0.png", "p3.png", "p6.png"]
    assert folder.files("train") == CamelyonPatchFolder(tmp_path, max_patches=3).files("train")
    assert len(CamelyonPatchFolder(tmp_path, max_patches=50).files("train")) == 10


ERRORS = [
    ("no_dir", "train", {}, ValueError, r"dataset_dir '.*missing' is not a folder"),
    ("folders", "test", {}, ValueError, r"has no test/ folder and no split\.csv"),
    ("empty", "train", {}, ValueError, r"no \.png/\.tif/\.tiff tiles for split 'train'"),
    ("folders", "training", {}, ValueError, r"split must be one of .*got 'training'"),
    ("csv_missing_file", "train", {}, ValueError, r"line 3: tile '.*gone\.png' is missing"),
    ("csv_bad_split", "train", {}, ValueError, r"line 2: split 'validation' is not one of"),
    ("csv_no_columns", "train", {}, ValueError, r"columns 'file' and 'split', got columns \['path', 'set'\]"),
    ("folders", "train", {"patch_size": (0, 4)}, ValueError, r"patch_size must be two positive integers \(height, width\), got \(0, 4\)"),
    ("folders", "train", {"patch_size": 64}, TypeError, r"patch_size must be a pair of ints"),
    ("folders", "train", {"max_patches": 0}, ValueError, r"max_patches must be an int >= 1, got 0; pass None"),
    ("folders", "train", {"max_patches": 2.5}, TypeError, r"max_patches must be an int"),
]


def _error_case(root, case):
    if case == "no_dir":
        return root / "missing"
    if case == "folders":
        _folder_layout(root)
    elif case == "empty":
        (root / "train").mkdir()
        (root / "train" / "notes.txt").write_text("x")
    else:
        rows = {"csv_missing_file": "file,split\nflat/a.png,train\ngone.png,train\n",
                "csv_bad_split": "file,split\nflat/a.png,validation\n",
                "csv_no_columns": "path,set\nflat/a.png,train\n"}[case]
        _csv_layout(root, rows)
    return root


@pytest.mark.parametrize("case, split, kwargs, error, match", ERRORS)
def test_errors(tmp_path, case, split, kwargs, error, match):
    with pytest.raises(error, match=match):
        CamelyonPatchFolder(_error_case(tmp_path, case), **kwargs).patches(split)


@pytest.mark.parametrize("split, count", [("train", 8), ("val", 4), ("test", 4)])
def test_histology_patches_shapes_and_range(split, count):
    tiles = histology_patches(split)
    assert len(tiles) == count
    for tile in tiles:
        assert tile.shape == (3, 128, 128) and tile.dtype == np.float32
        assert 0.0 <= tile.min() and tile.max() <= 1.0


def test_histology_regions_are_disjoint_and_cover_the_image():
    owner = np.zeros((512, 512), np.int64)
    for rows, columns in histology_regions().values():
        owner[rows, columns] += 1
    assert (owner == 1).all()


def test_histology_tiles_come_from_their_region_rows_first():
    skdata = pytest.importorskip("skimage.data")
    image = skdata.immunohistochemistry()  # (rows, columns, 3) uint8
    first_val = histology_patches("val")[0]
    np.testing.assert_array_equal(first_val, expected(image[0:128, 256:384]))
    last_test = histology_patches("test")[-1]
    np.testing.assert_array_equal(last_test, expected(image[384:512, 384:512]))


def test_histology_deterministic_and_overlapping_train_stride():
    for a, b in zip(histology_patches("train"), histology_patches("train")):
        np.testing.assert_array_equal(a, b)
    assert len(histology_patches("train", (128, 128), stride=(64, 64))) == 7 * 3


@pytest.mark.parametrize("kwargs, match", [
    ({"split": "val", "stride": (64, 128)}, r"stride \(64, 128\) is smaller than patch_size .* only allowed in train"),
    ({"split": "test", "patch_size": (300, 128)}, r"patch_size \(300, 128\) is larger than the test region"),
    ({"split": "holdout"}, r"split must be one of"),
])
def test_histology_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        histology_patches(**kwargs)


def test_camelyon_patches_default_and_folder(tmp_path):
    for a, b in zip(camelyon_patches("val"), histology_patches("val")):
        np.testing.assert_array_equal(a, b)
    tiles = _folder_layout(tmp_path)
    (patch,) = camelyon_patches("val", tmp_path, patch_size=(4, 4))
    np.testing.assert_array_equal(patch, expected(tiles["val/v1.png"][2:6, 2:6]))
