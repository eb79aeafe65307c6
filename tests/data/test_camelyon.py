"""H&E patches: Camelyon16 tile folders (folder and CSV layouts), tile reading, histology default."""

import numpy as np
import pytest
from PIL import Image

from medden.data import camelyon
from medden.data.camelyon import (
    SPLIT_CSV,
    CamelyonPatchFolder,
    camelyon_patches,
    histology_patches,
    histology_regions,
    read_tile,
)


def _rgb(height, width, seed=0):
    """Random 8-bit RGB tile, ``(height, width, 3)`` as PIL expects (rows first)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _expected(array):
    """What a tile should load as: ``(3, H, W)`` float32, exactly the 8-bit values / 255."""
    return array[..., :3].transpose(2, 0, 1).astype(np.float32) / np.float32(255)


def _folder_layout(root):
    """train/ with nested tumor/ normal/ and mixed suffixes, val/ with one tile, plus non-tiles."""
    tiles = {
        "train/tumor/t1.png": _rgb(8, 8, 1), "train/normal/n1.tif": _rgb(8, 8, 2),
        "train/normal/n2.TIFF": _rgb(8, 8, 3), "val/v1.png": _rgb(8, 8, 4),
    }
    for name, array in tiles.items():
        _save(root / name, array)
    (root / "train" / "notes.txt").write_text("not a tile")
    return tiles


def _csv_layout(root, rows="file,split\nflat/a.png,train\nflat/b.png,val\nnested/deep/c.tif,train\nd.png,test\n"):
    tiles = {"flat/a.png": _rgb(6, 6, 1), "flat/b.png": _rgb(6, 6, 2), "nested/deep/c.tif": _rgb(6, 6, 3),
             "d.png": _rgb(6, 6, 4)}
    for name, array in tiles.items():
        _save(root / name, array)
    (root / SPLIT_CSV).write_text(rows)
    return tiles


def test_folder_layout_nested_and_mixed_suffixes(tmp_path):
    tiles = _folder_layout(tmp_path)
    folder = CamelyonPatchFolder(tmp_path)
    names = ["train/normal/n1.tif", "train/normal/n2.TIFF", "train/tumor/t1.png"]
    assert folder.files("train") == [tmp_path / name for name in names]
    for name, patch in zip(names, folder.patches("train")):
        assert patch.dtype == np.float32 and patch.shape == (3, 8, 8)
        np.testing.assert_array_equal(patch, _expected(tiles[name]))
    assert folder.files("val") == [tmp_path / "val/v1.png"]


def test_csv_layout_relative_paths_and_test_split(tmp_path):
    tiles = _csv_layout(tmp_path)
    folder = CamelyonPatchFolder(tmp_path)
    assert folder.files("train") == [tmp_path / "flat/a.png", tmp_path / "nested/deep/c.tif"]
    assert folder.files("val") == [tmp_path / "flat/b.png"]
    (test_patch,) = folder.patches("test")
    np.testing.assert_array_equal(test_patch, _expected(tiles["d.png"]))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_orientation_is_rows_first(tmp_path, suffix):
    array = np.zeros((4, 6, 3), np.uint8)  # 4 rows, 6 columns
    array[0, :, 0] = 255  # top row red
    array[:, -1, 1] = 100  # right column green
    patch = read_tile(_save(tmp_path / f"tile{suffix}", array))
    assert patch.shape == (3, 4, 6)
    assert (patch[0, 0] == 1).all() and (patch[0, 1:] == 0).all()
    np.testing.assert_array_equal(patch[1, :, -1], np.full(4, np.float32(100) / np.float32(255)))


def test_values_in_unit_range_and_exact_scaling(tmp_path):
    array = np.arange(256 * 3, dtype=np.uint16).reshape(16, 16, 3) % 256
    patch = read_tile(_save(tmp_path / "ramp.png", array.astype(np.uint8)))
    assert patch.min() == 0.0 and patch.max() == 1.0
    np.testing.assert_array_equal(patch, _expected(array))


def test_rgba_drops_alpha(tmp_path):
    rgba = np.dstack([_rgb(5, 7), np.full((5, 7), 30, np.uint8)])
    np.testing.assert_array_equal(read_tile(_save(tmp_path / "rgba.png", rgba)), _expected(rgba))


def test_16bit_rgb_tiff_reads_in_unit_range(tmp_path):
    tifffile = pytest.importorskip("tifffile", reason="tifffile writes 16-bit RGB TIFFs")
    array = _rgb(4, 6)
    tifffile.imwrite(tmp_path / "deep.tif", array.astype(np.uint16) * 257, photometric="rgb")
    np.testing.assert_array_equal(read_tile(tmp_path / "deep.tif"), _expected(array))  # Pillow keeps the high byte


def test_16bit_values_scale_by_65535():
    values = np.array([0, 257, 65535], np.uint16)
    np.testing.assert_array_equal(camelyon._to_unit(values, "x"), values.astype(np.float32) / np.float32(65535))


@pytest.mark.parametrize("mode, suffix", [("L", ".png"), ("LA", ".png"), ("P", ".png"), ("CMYK", ".tif")])
def test_non_rgb_tiles_are_errors(tmp_path, mode, suffix):
    path = tmp_path / f"grey{suffix}"
    Image.fromarray(_rgb(4, 4)).convert(mode).save(path)
    with pytest.raises(ValueError, match=rf"grey\{suffix}' has PIL mode '{mode}'.*must be RGB or RGBA"):
        read_tile(path)


def test_16bit_greyscale_tile_is_an_error(tmp_path):
    Image.fromarray(np.full((4, 4), 1000, np.uint16)).save(tmp_path / "deep_grey.png")
    with pytest.raises(ValueError, match=r"deep_grey\.png' has PIL mode 'I;16' \(1 channel\(s\)\)"):
        read_tile(tmp_path / "deep_grey.png")


def test_centre_crop(tmp_path):
    array = _rgb(8, 10)
    _save(tmp_path / "train" / "a.png", array)
    (patch,) = CamelyonPatchFolder(tmp_path, patch_size=(4, 6)).patches("train")
    np.testing.assert_array_equal(patch, _expected(array[2:6, 2:8]))


def test_tile_smaller_than_patch_size(tmp_path):
    _save(tmp_path / "train" / "small.png", _rgb(8, 10))
    with pytest.raises(ValueError, match=r"small\.png' is 8x10 .*smaller than patch_size \(8, 12\)"):
        CamelyonPatchFolder(tmp_path, patch_size=(8, 12)).patches("train")


def test_max_patches_evenly_spaced_and_deterministic(tmp_path):
    for i in reversed(range(10)):
        _save(tmp_path / "train" / f"p{i}.png", _rgb(2, 2, i))
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
    ("folders", "train", {"patch_size": (0, 4)}, ValueError, r"patch_size must be positive"),
    ("folders", "train", {"patch_size": 64}, TypeError, r"patch_size must be a pair of ints"),
    ("folders", "train", {"max_patches": 0}, ValueError, r"max_patches must be >= 1"),
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
    np.testing.assert_array_equal(first_val, _expected(image[0:128, 256:384]))
    last_test = histology_patches("test")[-1]
    np.testing.assert_array_equal(last_test, _expected(image[384:512, 384:512]))


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
    np.testing.assert_array_equal(patch, _expected(tiles["val/v1.png"][2:6, 2:6]))
