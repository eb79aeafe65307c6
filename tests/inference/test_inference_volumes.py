"""Whole-image and NIfTI-folder denoising: units kept, affine kept, inputs untouched, clear errors."""

import hashlib

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.inferers import SimpleInferer, SliceInferer

from medden.inference import denoise_image, denoise_nifti_folder


class Halve(torch.nn.Module):
    """f(x) = x / 2: a network whose effect in the input's units is known exactly."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x / 2 + self.dummy


def test_denoise_image_works_in_the_images_own_units():
    image = np.linspace(100, 300, 2 * 8 * 6, dtype=np.float32).reshape(1, 8, 6, 2)
    out = denoise_image(image, Halve(), SliceInferer(roi_size=(8, 8), spatial_dim=2))
    # scaled to [0, 1] by min/max (100, 300), halved, mapped back: 100 + (x - 100) / 2
    np.testing.assert_allclose(out, 100 + (image - 100) / 2, rtol=1e-5)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32


def test_denoise_image_rejects_non_finite_input():
    bad = np.ones((1, 4, 4), np.float32)
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        denoise_image(bad, Halve(), SimpleInferer())


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
    with pytest.raises(ValueError, match="holds no .nii"):
        denoise_nifti_folder(tmp_path, tmp_path / "out", Halve(), SimpleInferer())
    with pytest.raises(ValueError, match="is not a folder"):
        denoise_nifti_folder(tmp_path / "missing", tmp_path / "out", Halve(), SimpleInferer())
    nib.save(nib.Nifti1Image(np.full((4, 4, 2), np.nan, np.float32), np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(ValueError, match="output_dir must differ from input_dir"):
        denoise_nifti_folder(tmp_path, tmp_path, Halve(), SimpleInferer())
    with pytest.raises(ValueError, match="nan.nii.gz: .*non-finite"):
        denoise_nifti_folder(tmp_path, tmp_path / "out", Halve(), SliceInferer(roi_size=(4, 4), spatial_dim=2))
