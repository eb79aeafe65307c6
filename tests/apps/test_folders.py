"""Folder loops: NIfTI folders denoised with affines kept and inputs untouched; the output guard and clear errors."""

import hashlib

import nibabel as nib
import numpy as np
import pytest
from helpers import Halve
from monai.inferers import SimpleInferer, SliceInferer

from medden.apps.folders import denoise_nifti_folder


def _write(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_denoise_nifti_folder_keeps_affines_and_never_touches_inputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    affine = np.array([[0, 0, 2.0, -30], [-1.5, 0, 0, 40], [0, 1.5, 0, 12], [0, 0, 0, 1]])
    rng = np.random.default_rng(0)
    hashes = {
        "vol.nii.gz": _write(src / "vol.nii.gz", rng.uniform(0, 50, (16, 12, 3)).astype(np.float32), affine),
        "flat.nii": _write(src / "flat.nii", rng.uniform(-5, 5, (16, 12)).astype(np.float32), np.eye(4)),
    }
    (src / "readme.txt").write_text("not an image")
    written = denoise_nifti_folder(src, tmp_path / "out", Halve(), SliceInferer(roi_size=(16, 16), spatial_dim=2))
    assert sorted(p.name for p in written) == ["flat_denoised.nii.gz", "vol_denoised.nii.gz"]
    vol = nib.load(tmp_path / "out" / "vol_denoised.nii.gz")
    np.testing.assert_allclose(vol.affine, affine)
    assert vol.shape == (16, 12, 3)
    assert nib.load(tmp_path / "out" / "flat_denoised.nii.gz").shape == (16, 12)
    for name, digest in hashes.items():
        assert hashlib.sha256((src / name).read_bytes()).hexdigest() == digest
    with pytest.raises(FileExistsError):
        denoise_nifti_folder(src, tmp_path / "out", Halve(), SliceInferer(roi_size=(16, 16), spatial_dim=2))


def test_denoise_nifti_folder_errors_name_the_problem(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    with pytest.raises(ValueError, match="holds no .nii"):
        denoise_nifti_folder(src, tmp_path / "out", Halve(), SimpleInferer())
    with pytest.raises(ValueError, match="is not a folder"):
        denoise_nifti_folder(tmp_path / "missing", tmp_path / "out", Halve(), SimpleInferer())
    nib.save(nib.Nifti1Image(np.full((4, 4, 2), np.nan, np.float32), np.eye(4)), src / "nan.nii.gz")
    with pytest.raises(ValueError, match="output_dir must differ from input_dir"):
        denoise_nifti_folder(src, src, Halve(), SimpleInferer())
    with pytest.raises(ValueError, match="lies inside the input folder"):
        denoise_nifti_folder(src, src / "out", Halve(), SimpleInferer())
    with pytest.raises(ValueError, match="nan.nii.gz: .*non-finite"):
        denoise_nifti_folder(src, tmp_path / "out", Halve(), SliceInferer(roi_size=(4, 4), spatial_dim=2))
