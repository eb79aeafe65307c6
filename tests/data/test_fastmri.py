"""fastMRI single-coil files: centring, reading, splits by volume, undersampled inputs, writing."""

import h5py
import numpy as np
import pytest
from monai.apps.reconstruction.fastmri_reader import FastMRIReader

from medden.data.fastmri import (
    FastMRISingleCoilFolder,
    kspace_to_image,
    read_singlecoil_kspace,
    read_undersampled,
    write_singlecoil_h5,
)

SHAPE = (3, 40, 24)  # slices, H (readout), W (phase encode)
CROP = (16, 16)
PATIENT_ID = "a1b2c3-secret-patient"


def fft2c(image):
    """fastMRI's centred orthonormal FFT (ifftshift -> fft2 -> fftshift), in numpy."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def ifft2c(kspace):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def complex_volume(seed, shape=SHAPE):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 5, shape) * np.exp(1j * rng.uniform(-np.pi, np.pi, shape))).astype(np.complex64)


def write_fastmri(path, kspace, mask=None, **datasets):
    """A file in fastMRI's single-coil layout, written with h5py directly (not the module's writer)."""
    with h5py.File(path, "w") as f:
        if kspace is not None:
            f.create_dataset("kspace", data=kspace)
        f.create_dataset("ismrmrd_header", data=np.bytes_(b"<ismrmrdHeader/>"))
        for name, value in datasets.items():
            f.create_dataset(name, data=value)
        f.attrs.update(acquisition="CORPD_FBK", max=1.0, norm=2.0, patient_id=PATIENT_ID)
        if mask is not None:
            f.create_dataset("mask", data=mask)
            f.attrs.update(acceleration=4, num_low_frequency=4)
    return path


def crop(image):
    top, left = (image.shape[-2] - CROP[0]) // 2, (image.shape[-1] - CROP[1]) // 2
    return image[..., top:top + CROP[0], left:left + CROP[1]]


def column_mask(width=SHAPE[2]):
    mask = np.zeros(width, bool)
    mask[::4] = True
    mask[width // 2 - 2:width // 2 + 2] = True
    return mask


@pytest.fixture
def folder(tmp_path):
    """Three fully sampled volumes, each the centred FFT of a known complex image."""
    images = {}
    for i in range(3):
        images[f"file{i}.h5"] = complex_volume(i)
        write_fastmri(tmp_path / f"file{i}.h5", fft2c(images[f"file{i}.h5"]).astype(np.complex64),
                      reconstruction_esc=np.abs(crop(images[f"file{i}.h5"])).astype(np.float32))
    return FastMRISingleCoilFolder(tmp_path, crop=CROP), images


@pytest.mark.parametrize("shape", [(2, 40, 24), (1, 7, 5), (2, 6, 5)])
def test_kspace_to_image_matches_fastmri_ifft2c_for_even_and_odd_sizes(shape):
    kspace = fft2c(complex_volume(0, shape))
    image = kspace_to_image(kspace)
    assert image.shape == (*shape, 2) and image.dtype == np.float32
    np.testing.assert_allclose(image[..., 0] + 1j * image[..., 1], ifft2c(kspace), atol=1e-5)


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


def test_read_undersampled_refuses_fully_sampled_files(folder):
    data, _ = folder
    with pytest.raises(ValueError, match="no 'mask' dataset: it is fully sampled"):
        read_undersampled(data.files()[0])


BAD_FILES = {
    "no kspace": (dict(kspace=None, reconstruction_esc=np.zeros((3, 16, 16), np.float32)), "no 'kspace' dataset"),
    "real": (dict(kspace=np.ones(SHAPE, np.float32)), "real-only .* complex k-space .* is required"),
    "multi-coil": (dict(kspace=np.ones((3, 4, 40, 24), np.complex64)), "multi-coil .* not supported, single-coil only"),
    "2-D": (dict(kspace=np.ones((40, 24), np.complex64)), r"must be \(slices, H, W\)"),
    "nan": (dict(kspace=np.full(SHAPE, np.nan, np.complex64)), "non-finite"),
    "mask length": (dict(kspace=np.ones(SHAPE, np.complex64), mask=np.ones(40, bool)),
                    r"mask/k-space shape mismatch: mask shape \(40,\), k-space shape \(3, 40, 24\)"),
    "zero mask": (dict(kspace=np.ones(SHAPE, np.complex64), mask=np.zeros(24, np.float32)), "mask is all zero"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_raise_errors_naming_the_file_and_problem(tmp_path, case, capsys, caplog):
    datasets, message = BAD_FILES[case]
    path = write_fastmri(tmp_path / "bad.h5", **datasets)
    with pytest.raises(ValueError, match=message) as err:
        read_singlecoil_kspace(path)
    assert "bad.h5" in str(err.value) and PATIENT_ID not in str(err.value)
    out = capsys.readouterr()
    assert PATIENT_ID not in out.out + out.err + caplog.text


def test_patient_id_is_never_returned(folder):
    data, _ = folder
    kspace, mask, attrs = read_singlecoil_kspace(data.files()[0])
    assert kspace.shape == SHAPE and kspace.dtype == np.complex64 and mask is None
    assert attrs == {"acquisition": "CORPD_FBK", "max": 1.0, "norm": 2.0}
    assert PATIENT_ID not in repr(attrs)


def test_writer_output_has_the_fastmri_layout(tmp_path):
    kspace = fft2c(complex_volume(1)).astype(np.complex64)
    recon = np.abs(crop(ifft2c(kspace))).astype(np.float32)
    path = write_singlecoil_h5(tmp_path / "full.h5", kspace, reconstruction=recon, attrs={"patient_id": PATIENT_ID})
    raw = FastMRIReader().read(path)
    assert {"kspace", "reconstruction_esc", "ismrmrd_header", "acquisition", "max", "norm", "patient_id"} <= set(raw)
    assert raw["kspace"].dtype == np.complex64 and raw["reconstruction_esc"].dtype == np.float32
    assert raw["max"] == pytest.approx(recon.max()) and raw["norm"] == pytest.approx(np.linalg.norm(recon))
    assert b"<matrixSize><x>40</x><y>24</y>" in bytes(raw["ismrmrd_header"])
    got, mask, attrs = read_singlecoil_kspace(path)
    np.testing.assert_array_equal(got, kspace)
    assert mask is None and "patient_id" not in attrs and attrs["acquisition"] == "CORPD_FBK"
    assert [p.name for p in tmp_path.iterdir()] == ["full.h5"]  # no temporary file left behind
    with pytest.raises(FileExistsError):
        write_singlecoil_h5(path, kspace)


def test_writer_with_mask_writes_the_test_set_layout(tmp_path):
    kspace = fft2c(complex_volume(2))
    as_real = np.stack([kspace.real, kspace.imag], -1).astype(np.float32)  # (S, H, W, 2) is accepted too
    path = write_singlecoil_h5(tmp_path / "test.h5", as_real, mask=column_mask())
    with h5py.File(path, "r") as f:
        assert set(f) == {"kspace", "mask", "ismrmrd_header"}
        assert f["mask"].shape == (SHAPE[2],)
        assert f.attrs["acceleration"] == 3 and f.attrs["num_low_frequency"] == 4  # 9 of 24 sampled
        np.testing.assert_array_equal(f["kspace"][()][..., ~column_mask()], 0)
    got, got_mask, _ = read_undersampled(path, crop=CROP)
    np.testing.assert_array_equal(got_mask[0, 0], column_mask().astype(np.float32))


@pytest.mark.parametrize("kwargs, message", [
    (dict(kspace=np.ones(SHAPE, np.float32)), "real-only"),
    (dict(kspace=np.ones((3, 2, 40, 24), np.complex64)), "multi-coil"),
    (dict(kspace=np.ones(SHAPE, np.complex64), mask=np.ones(7)), "shape mismatch"),
    (dict(kspace=np.ones(SHAPE, np.complex64), mask=np.zeros(24)), "all zero"),
    (dict(kspace=np.ones(SHAPE, np.complex64), reconstruction=np.ones((2, 16, 16))), "3 slices like kspace"),
])
def test_writer_rejects_bad_inputs_and_leaves_no_file(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_singlecoil_h5(tmp_path / "bad.h5", **kwargs)
    assert not list(tmp_path.iterdir())
