"""The VAE + Direct Denoiser bundle runs as written on CPU (tiny networks, one epoch)."""

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from helpers import assert_standard_bundle, check_bundle_tooling, run_bundle
from medden.io import load_network_weights
from medden.networks import PairingError

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "vae_direct_denoiser"
CONFIGS = BUNDLE / "configs"
TINY_NETS = ["--n_groups", "2", "--n_filters", "8", "--latent_channels", "2", "--direct_filters", "4",
             "--direct_depth", "2"]
TINY = [*TINY_NETS, "--max_epochs", "1", "--batch_size", "2", "--val_interval", "1", "--patch_size", "[32,32]",
        "--repeats_per_epoch", "1", "--val_samples", "2"]


def _train(out, *overrides, config="train.json"):
    configs = str(CONFIGS / config) if "," not in config else config
    run_bundle("run", "--config_file", configs, *TINY, *overrides, "--output_dir", str(out),
               "--save_model_to", str(out / "model.pt"))
    return torch.load(out / "model.pt", weights_only=True)


def _tiny_network():
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    for name, value in zip(TINY_NETS[::2], TINY_NETS[1::2]):
        parser[name.lstrip("-")] = int(value)
    return parser.get_parsed_content("network_def")


def test_bundle_has_the_standard_files_and_passes_monai_tooling(tmp_path):
    assert_standard_bundle(BUNDLE)
    check_bundle_tooling(BUNDLE, tmp_path, trace=True)


def test_cotraining_trains_both_networks_pairs_them_validates_both_and_evaluates(tmp_path):
    result = run_bundle("run", "--config_file", str(CONFIGS / "train.json"), *TINY, "--output_dir",
                        str(tmp_path), "--save_model_to", str(tmp_path / "model.pt"))
    log = result.stdout + result.stderr
    assert "vae_val_psnr" in log and "val_psnr" in log.replace("vae_val_psnr", "")  # both models validated
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert int(state["direct.teacher_id"]) == int(state["vae.model_id"]) != 0
    assert {"vae.noise_model.log_gain", "vae.noise_model.log_read_sigma"} <= set(state)  # calibrated, saved
    net = load_network_weights(_tiny_network(), state)
    assert net(torch.rand(1, 1, 40, 36)).shape == (1, 1, 40, 36)
    result = run_bundle("run", "--config_file", str(CONFIGS / "evaluate.json"), *TINY_NETS, "--model_path",
                        str(tmp_path / "model.pt"), "--n_samples", "3", "--output_dir", str(tmp_path / "eval"))
    log = result.stdout + result.stderr
    assert re.search(r"evaluation: 1/\d+ batches \(\d+%\), [\d.ms]+ elapsed, about", log)  # long runs say how far
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"direct", "vae_mean", "vae_median", "n_samples"}
    for name in ("direct", "vae_mean", "vae_median"):
        assert np.isfinite(metrics[name]["val_psnr"])


def test_vae_then_direct_stages_pair_the_direct_denoiser_with_the_loaded_vae(tmp_path):
    vae_state = _train(tmp_path / "vae", "--stage", "vae")
    direct_state = _train(tmp_path / "direct", "--stage", "direct", "--vae_weights", str(tmp_path / "vae" / "model.pt"))
    vae_keys = [k for k in vae_state if k.startswith("vae.")]
    for key in vae_keys:  # stage 'direct' leaves the VAE as loaded
        torch.testing.assert_close(direct_state[key], vae_state[key])
    assert int(direct_state["direct.teacher_id"]) == int(vae_state["vae.model_id"])
    # the direct stage's Direct Denoiser with a VAE from another run is refused
    other = _tiny_network().state_dict()  # another VAE (its own model_id)
    mixed = {**direct_state, **{k: v for k, v in other.items() if k.startswith("vae.")}}
    with pytest.raises(PairingError, match="trained on the posterior of VAE"):
        load_network_weights(_tiny_network(), mixed)


def test_shipped_model_evaluates_and_denoises_with_an_uncertainty_map(tmp_path):
    run_bundle("run", "--config_file", str(CONFIGS / "evaluate.json"), "--n_samples", "4", "--output_dir",
               str(tmp_path / "eval"), "--dataloader#dataset#images", "$medden.data.slices.t1_slices(@split)[::4]")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    noisy_psnr = 22.0  # the Poisson-Gaussian test input scores about this
    assert metrics["direct"]["val_psnr"] > noisy_psnr + 3
    demo = BUNDLE / "runs" / "demo_input"
    run_bundle("run", "--config_file", str(CONFIGS / "inference.json"), "--mode", "vae", "--n_samples", "4",
               "--output_dir", str(tmp_path / "out"))
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    stem = next(demo.glob("*.nii.gz")).name[: -len(".nii.gz")]
    assert outputs == [f"{stem}_denoised.nii.gz", f"{stem}_denoised_std.nii.gz"]
    std = nib.load(tmp_path / "out" / outputs[1]).get_fdata()
    assert std.min() >= 0 and std.max() > 0  # a per-voxel uncertainty map
    run_bundle("run", "--config_file", str(CONFIGS / "inference.json"), "--output_dir", str(tmp_path / "direct"))
    assert [p.name for p in (tmp_path / "direct").iterdir()] == [f"{stem}_denoised.nii.gz"]


def test_real_noisy_data_without_ground_truth_trains_and_reports_noise_statistics(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "noisy"
    folder.mkdir()
    x, y = np.meshgrid(np.linspace(0, 1, 40), np.linspace(0, 1, 36), indexing="ij")
    for index in range(3):
        clean = 100 + 400 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.1)[..., None] * np.ones((1, 1, 12))
        nib.save(nib.Nifti1Image((clean + rng.normal(0, 20, clean.shape)).astype(np.float32), np.eye(4)),
                 folder / f"scan{index}.nii.gz")
    configs = f"['{CONFIGS / 'train.json'}','{CONFIGS / 'train_noisy.json'}']"
    _train(tmp_path / "run", "--dataset_dir", str(folder), config=configs)
    evaluate = f"['{CONFIGS / 'evaluate.json'}','{CONFIGS / 'evaluate_noisy.json'}']"
    run_bundle("run", "--config_file", evaluate, *TINY_NETS, "--dataset_dir", str(folder), "--model_path",
               str(tmp_path / "run" / "model.pt"), "--n_samples", "2", "--output_dir", str(tmp_path / "eval"))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for name in ("direct", "vae_mean"):
        assert {"residual_std", "residual_lag1_correlation", "noise_model_nll", "images"} <= set(metrics[name])
        assert "val_psnr" not in metrics[name]
