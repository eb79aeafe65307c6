"""The recorruption_ixi_bernoulli bundle runs as written: train, evaluate, inference, torchrun, MONAI tooling."""

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from helpers import assert_standard_bundle, check_bundle_tooling, run_bundle

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "recorruption_ixi_bernoulli"
CONFIGS = BUNDLE / "configs"
TINY_NET = "[4,8,8,16]"  # UNet channels for fast smoke runs


def test_bundle_has_the_standard_files():
    assert_standard_bundle(BUNDLE)


def test_train_config_runs_as_written(tmp_path):
    run_bundle("run", "--config_file", str(CONFIGS / "train.json"), "--max_epochs", "1", "--repeats_per_epoch", "1",
               "--output_dir", str(tmp_path), "--save_model_to", str(tmp_path / "model.pt"),
               "--network_def#channels", TINY_NET)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert any(key.endswith("weight") for key in state)
    assert (tmp_path / "last.pt").is_file()


def test_evaluate_config_scores_the_shipped_model(tmp_path):
    run_bundle("run", "--config_file", str(CONFIGS / "evaluate.json"), "--output_dir", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # the shipped model must beat the noisy input (about 10.5 dB at keep probability 0.5) by far
    assert metrics["one_pass"]["val_psnr"] > 25 and metrics["refined"]["val_psnr"] > 20
    assert metrics["one_pass_observed_kept"]["val_psnr"] > metrics["one_pass"]["val_psnr"]
    assert 0 < metrics["refined"]["val_ssim"] <= 1


def test_inference_config_denoises_a_nifti_folder_keeping_the_affine(tmp_path):
    from medden.data.slices import write_corrupted_mni_slab
    from medden.transforms import RandBernoulliNoise

    source = write_corrupted_mni_slab(tmp_path / "in" / "slab.nii.gz", RandBernoulliNoise(0.5))
    run_bundle("run", "--config_file", str(CONFIGS / "inference.json"), "--input_dir", str(tmp_path / "in"),
               "--output_dir", str(tmp_path / "out"))
    out = nib.load(tmp_path / "out" / "slab_denoised.nii.gz")
    original = nib.load(source)
    np.testing.assert_allclose(out.affine, original.affine)
    assert out.shape == original.shape
    noisy, denoised = np.asarray(original.dataobj), np.asarray(out.dataobj)
    assert (denoised == 0).mean() < 0.5 * (noisy == 0).mean()  # the holes were filled
    observed = noisy != 0
    np.testing.assert_allclose(denoised[observed], noisy[observed], rtol=1e-5, atol=1e-6)  # observed pixels kept


def test_monai_bundle_tooling_accepts_the_bundle(tmp_path):
    check_bundle_tooling(BUNDLE, tmp_path)


def test_a_corrupt_model_file_gives_a_clear_error(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"truncated")
    result = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "evaluate.json"),
                             "--model_path", str(bad), "--output_dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "is not a readable PyTorch weights file" in result.stderr


def test_train_config_reads_an_ixi_t1_folder(tmp_path):
    data = tmp_path / "IXI-T1"
    data.mkdir()
    rng = np.random.default_rng(0)
    affine = np.array([[0, 0, -1.2, 90], [-0.94, 0, 0, 120], [0, 0.94, 0, -100], [0, 0, 0, 1]], float)
    for i in range(2, 12):  # ten subjects, stored sagittally like IXI
        vol = np.zeros((12, 40, 36), np.float32)
        vol[2:-2, 4:-4, 4:-4] = rng.uniform(100, 900, (8, 32, 28))
        nib.save(nib.Nifti1Image(vol, affine), data / f"IXI{i:03d}-Guys-{1000 + i}-T1.nii.gz")
    run_bundle("run", "--config_file", str(CONFIGS / "train.json"), "--dataset_dir", str(data), "--max_epochs", "1",
               "--repeats_per_epoch", "1", "--batch_size", "4", "--output_dir", str(tmp_path / "run"),
               "--save_model_to", str(tmp_path / "model.pt"), "--network_def#channels", TINY_NET)
    assert (tmp_path / "model.pt").is_file()
