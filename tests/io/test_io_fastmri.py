"""fastMRI single-coil files: centring, reading, checks, undersampled inputs, writing."""

import h5py
import numpy as np
import pytest
from fastmri_helpers import (
    CROP,
    PATIENT_ID,
    SHAPE,
    column_mask,
    complex_volume,
    crop,
    fft2c,
    ifft2c,
    write_fastmri,
    write_full_volumes,
)
from monai.apps.reconstruction.fastmri_reader import FastMRIReader

from medden.io.fastmri import kspace_to_image, read_singlecoil_kspace, read_undersampled, write_singlecoil_h5


@pytest.mark.parametrize("shape", [(2, 40, 24), (1, 7, 5), (2, 6, 5)])
def test_kspace_to_image_matches_fastmri_ifft2c_for_even_and_odd_sizes(shape):
    kspace = fft2c(complex_volume(0, shape))
    image = kspace_to_image(kspace)
    assert image.shape == (*shape, 2) and image.dtype == np.float32
    np.testing.assert_allclose(image[..., 0] + 1j * image[..., 1], ifft2c(kspace), atol=1e-5)


def test_read_undersampled_refuses_fully_sampled_files(tmp_path):
    write_full_volumes(tmp_path)
    with pytest.raises(ValueError, match="no 'mask' dataset: it is fully sampled"):
        read_undersampled(tmp_path / "file0.h5")


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


def test_patient_id_is_never_returned(tmp_path):
    write_full_volumes(tmp_path)
    kspace, mask, attrs = read_singlecoil_kspace(tmp_path / "file0.h5")
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
