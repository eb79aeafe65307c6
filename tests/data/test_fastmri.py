"""fastMRI single-coil datasets: splits by volume, scaled images, undersampled files refused as training data."""

import numpy as np
import pytest
from fastmri_helpers import CROP, SHAPE, column_mask, complex_volume, crop, fft2c, ifft2c, write_fastmri, write_full_volumes

from medden.data.fastmri import FastMRISingleCoilFolder
from medden.io.fastmri import read_undersampled


@pytest.fixture
def folder(tmp_path):
    """Three fully sampled volumes, each the centred FFT of a known complex image."""
    return FastMRISingleCoilFolder(tmp_path, crop=CROP), write_full_volumes(tmp_path)


def test_images_are_the_cropped_volume_scaled_by_its_99_5th_percentile(folder):
    data, images = folder
    for split in ("train", "val", "test"):
        (path,) = data.split_files(split)
        expected = crop(images[path.name])
        expected = expected / np.percentile(np.abs(expected), 99.5)
        slices = data.images(split)
        assert len(slices) == SHAPE[0]
        for got, want in zip(slices, expected):
            assert got.shape == (1, *CROP, 2) and got.dtype == np.float32
            np.testing.assert_allclose(got[0, ..., 0] + 1j * got[0, ..., 1], want, atol=1e-5)
        magnitude = np.hypot(*np.moveaxis(np.concatenate(slices), -1, 0))
        assert np.percentile(magnitude, 99.5) == pytest.approx(1.0, rel=1e-5)
        assert magnitude.max() > 1  # complex output is not clipped


def test_magnitude_images_are_clipped_to_unit_range(folder):
    data, images = folder
    (path,) = data.split_files("val")
    expected = np.abs(crop(images[path.name]))
    expected = np.clip(expected / np.percentile(expected, 99.5), 0, 1)
    slices = data.images("val", output="magnitude")
    assert all(s.shape == (1, *CROP) and s.dtype == np.float32 for s in slices)
    np.testing.assert_allclose(np.concatenate(slices), expected, atol=1e-5)
    assert np.concatenate(slices).max() == 1.0


def test_crop_is_clamped_to_the_image_size(folder):
    data, _ = folder
    big = FastMRISingleCoilFolder(data.dataset_dir, crop=(320, 320))
    assert big.images("test", "magnitude")[0].shape == (1, 40, 24)


def test_split_by_file_is_disjoint_complete_and_deterministic(tmp_path):
    for i in range(12):
        sub = tmp_path / ("singlecoil_a" if i % 2 else "singlecoil_b")
        sub.mkdir(exist_ok=True)
        (sub / f"file{i:03d}.h5").write_bytes(b"")  # the split reads no file
    (tmp_path / "notes.txt").write_text("ignored")
    data = FastMRISingleCoilFolder(tmp_path)
    parts = {split: data.split_files(split) for split in ("train", "val", "test")}
    assert sum(map(len, parts.values())) == 12 and len(set().union(*parts.values())) == 12
    assert set(data.files()) == set().union(*parts.values())
    assert len(parts["val"]) == len(parts["test"]) == 1
    again = FastMRISingleCoilFolder(str(tmp_path))
    assert all(again.split_files(split) == files for split, files in parts.items())


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        FastMRISingleCoilFolder(tmp_path / "missing").files()
    with pytest.raises(ValueError, match="no fastMRI .h5 files"):
        FastMRISingleCoilFolder(tmp_path).files()
    for i in range(2):
        (tmp_path / f"file{i}.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="need at least 3 .h5 files .* found 2"):
        FastMRISingleCoilFolder(tmp_path).split_files("train")
    (tmp_path / "file2.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="split must be one of"):
        FastMRISingleCoilFolder(tmp_path).split_files("training")
    with pytest.raises(ValueError, match="output must be one of"):
        FastMRISingleCoilFolder(tmp_path).images("train", output="real")


def test_undersampled_files_are_refused_as_training_data_and_read_for_reconstruction(tmp_path):
    mask = column_mask()
    kspace = (fft2c(complex_volume(5)) * mask).astype(np.complex64)
    for i in range(3):
        write_fastmri(tmp_path / f"file{i}.h5", kspace, mask=mask.astype(np.float32))
    with pytest.raises(ValueError, match="is undersampled .*test-set layout.* cannot be used as training data"):
        FastMRISingleCoilFolder(tmp_path, crop=CROP).images("train")

    got, got_mask, scale = read_undersampled(tmp_path / "file0.h5", crop=CROP)
    assert got.shape == (SHAPE[0], 1, *SHAPE[1:], 2) and got.dtype == np.float32
    assert got_mask.shape == (1, *SHAPE[1:]) and got_mask.dtype == np.float32
    np.testing.assert_array_equal(got_mask[0], np.broadcast_to(mask, SHAPE[1:]).astype(np.float32))
    assert scale == pytest.approx(np.percentile(np.abs(crop(ifft2c(kspace))), 99.5), rel=1e-5)
    np.testing.assert_allclose((got[:, 0, ..., 0] + 1j * got[:, 0, ..., 1]) * scale, kspace, atol=1e-4)
    same = FastMRISingleCoilFolder(tmp_path, crop=CROP).undersampled(tmp_path / "file0.h5")
    assert same[2] == scale
