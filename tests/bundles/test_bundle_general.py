"""The general_denoiser bundle runs as written: train, evaluate, inference, torchrun, MONAI tooling."""

import json
from pathlib import Path

import torch

from helpers import assert_standard_bundle, check_bundle_tooling, check_nifti_folder_inference, run_bundle, run_bundle_training_under_torchrun

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "general_denoiser"
CONFIGS = BUNDLE / "configs"
TINY = ["--channels", "[4,8]", "--max_epochs", "1", "--patches_per_modality", "2", "--batch_size", "2"]


def test_bundle_has_the_standard_files():
    assert_standard_bundle(BUNDLE)


def test_train_config_runs_as_written_blind_conditioned_and_clean_target(tmp_path):
    for variant in (["--noise_conditioned", "False"], ["--noise_conditioned", "True"], ["--pair_mode", "n2c"]):
        out = tmp_path / variant[-1]
        run_bundle("run", "--config_file", str(CONFIGS / "train.json"), *TINY, *variant,
                      "--output_dir", str(out), "--save_model_to", str(out / "model.pt"))
        state = torch.load(out / "model.pt", weights_only=True)
        assert any(key.endswith("weight") for key in state) and (out / "last.pt").is_file()


def test_evaluate_config_scores_the_shipped_model_on_three_noises(tmp_path):
    run_bundle("run", "--config_file", str(CONFIGS / "evaluate.json"), "--output_dir", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"gaussian", "poisson", "rician"}
    # noisy inputs score about 22 dB (Gaussian 20/255); the shipped model must clear that by far
    assert metrics["gaussian"]["val_psnr"] > 28
    assert all(0 < m["val_ssim"] <= 1 for m in metrics.values())


def test_inference_config_denoises_a_nifti_folder_keeping_the_affine(tmp_path):
    check_nifti_folder_inference(CONFIGS, tmp_path)


def test_multi_gpu_config_runs_under_torchrun_on_two_cpu_processes(tmp_path):
    run_bundle_training_under_torchrun(BUNDLE, tmp_path, *TINY)


def test_monai_bundle_tooling_accepts_the_bundle(tmp_path):
    check_bundle_tooling(BUNDLE, tmp_path)
