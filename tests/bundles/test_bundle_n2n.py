"""The Noise2Noise bundles run as written: k-space MRI and image-domain noise, on CPU, tiny networks."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from helpers import assert_standard_bundle, check_bundle_tooling, run_bundle, run_bundle_training_under_torchrun
from medden.io.fastmri import write_singlecoil_h5

ROOT = Path(__file__).resolve().parents[2]
KSPACE = ROOT / "bundles" / "n2n_kspace_mri"
IMAGE = ROOT / "bundles" / "n2n_image"
TINY_KSPACE = ["--channels", "[4,8]", "--max_epochs", "1", "--slice_size", "[64,64]", "--val_interval", "1"]
TINY_IMAGE = ["--channels", "[4,8]", "--max_epochs", "1", "--patches_per_modality", "2", "--batch_size", "2",
              "--val_interval", "1"]


def _train(bundle, out, *overrides):
    run_bundle("run", "--config_file", str(bundle / "configs" / "train.json"), *overrides,
               "--output_dir", str(out), "--save_model_to", str(out / "model.pt"))
    state = torch.load(out / "model.pt", weights_only=True)
    assert any(key.endswith("weight") for key in state) and (out / "last.pt").is_file()


@pytest.mark.parametrize("bundle", [KSPACE, IMAGE], ids=["kspace", "image"])
def test_bundle_has_the_standard_files_and_passes_monai_tooling(bundle, tmp_path):
    assert_standard_bundle(bundle)
    check_bundle_tooling(bundle, tmp_path)


@pytest.mark.parametrize("variant", [[], ["--pair_mode", "n2c"], ["--fourier_restrict", "overwrite"]],
                         ids=["n2n-target", "n2c", "n2n-overwrite"])
def test_kspace_train_config_runs_on_mni_slices(variant, tmp_path):
    _train(KSPACE, tmp_path, *TINY_KSPACE, *variant)


def _fastmri_folder(root, files=3, slices=3, shape=(48, 40)):
    rng = np.random.default_rng(0)
    root.mkdir()
    for index in range(files):
        kspace = (rng.standard_normal((slices, *shape)) + 1j * rng.standard_normal((slices, *shape))) * 1e-4
        write_singlecoil_h5(root / f"file{index}.h5", kspace.astype(np.complex64))
    return root


@pytest.mark.parametrize("is_complex", ["False", "True"])
def test_kspace_train_config_reads_a_fastmri_folder(is_complex, tmp_path):
    folder = _fastmri_folder(tmp_path / "fastmri")
    _train(KSPACE, tmp_path / "run", *TINY_KSPACE, "--slice_size", "[32,32]", "--dataset_dir", str(folder),
           "--is_complex", is_complex, "--batch_size", "2")


def test_kspace_evaluate_and_inference_configs_run_with_the_shipped_model(tmp_path):
    run_bundle("run", "--config_file", str(KSPACE / "configs" / "evaluate.json"), "--output_dir", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # the zero-filled input scores about 24 dB on the test slab (docs/results/n2n.md)
    assert metrics["val_psnr"] > 30 and 0 < metrics["val_ssim"] <= 1
    demo, out = tmp_path / "demo", tmp_path / "recon"
    run_bundle("run", "--config_file", str(KSPACE / "configs" / "inference.json"), "--output_dir", str(out),
               "--demo_input", str(demo / "slab.h5"), "--input_dir", str(demo),
               "--initialize", "$medden.data.mri.write_undersampled_slab(@demo_input, @mask, @mask_kwargs)")
    import h5py

    with h5py.File(demo / "slab.h5") as f:
        clean = np.moveaxis(f["reconstruction_esc"][()], 0, -1)
        zero_filled = np.moveaxis(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(
            f["kspace"][()], axes=(-2, -1)), norm="ortho"), axes=(-2, -1)).real, 0, -1)
    recon = np.asarray(nib.load(out / "slab_recon.nii.gz").dataobj)
    assert recon.shape == clean.shape
    assert np.mean((recon - clean) ** 2) < 0.5 * np.mean((zero_filled - clean) ** 2)


@pytest.mark.parametrize("noise", ["gaussian", "poisson", "bernoulli", "impulse", "text"])
def test_image_train_config_runs_for_every_noise(noise, tmp_path):
    _train(IMAGE, tmp_path, *TINY_IMAGE, "--noise", noise)


def test_image_train_config_clean_target_and_real_pairs(tmp_path):
    _train(IMAGE, tmp_path / "n2c", *TINY_IMAGE, "--pair_mode", "n2c")
    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(0, 1, 80, dtype=np.float32), (72, 1))
    for index in range(4):
        folder = tmp_path / "pairs" / f"subject{index}"
        folder.mkdir(parents=True)
        for repetition in (1, 2):
            noisy = clean + 0.1 * rng.standard_normal(clean.shape).astype(np.float32)
            nib.save(nib.Nifti1Image(noisy[..., None].repeat(3, -1), np.eye(4)), folder / f"rep{repetition}.nii.gz")
    _train(IMAGE, tmp_path / "pairs_run", *TINY_IMAGE, "--dataset_dir", str(tmp_path / "pairs"))


def test_image_evaluate_and_inference_configs_run_with_the_shipped_model(tmp_path):
    run_bundle("run", "--config_file", str(IMAGE / "configs" / "evaluate.json"), "--output_dir", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # noisy inputs score about 20 dB at sigma 25/255
    assert metrics["val_psnr"] > 27 and 0 < metrics["val_ssim"] <= 1
    run_bundle("run", "--config_file", str(IMAGE / "configs" / "inference.json"), "--output_dir",
               str(tmp_path / "out"), "--input_dir", str(tmp_path / "demo"), "--demo_input",
               str(tmp_path / "demo" / "slab.nii.gz"), "--initialize",
               "$medden.data.slices.write_corrupted_mni_slab(@demo_input, medden.transforms.RandGaussianSigmaNoise(25 / 255))")
    assert (tmp_path / "out" / "slab_denoised.nii.gz").is_file()


def test_multi_gpu_config_runs_under_torchrun_on_two_cpu_processes(tmp_path):
    # k-space batches carry loss keyword arguments; the image bundle shares the path (test_bundle_configs.py)
    run_bundle_training_under_torchrun(KSPACE, tmp_path, *TINY_KSPACE)
