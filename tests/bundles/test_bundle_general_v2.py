"""The general_denoiser_v2 bundle (the default model) runs as written: train, evaluate, inference, MONAI tooling."""

import json
from pathlib import Path

import pytest
import torch

from helpers import assert_standard_bundle, check_bundle_tooling, check_nifti_folder_inference, run_bundle

pytest.importorskip("pydicom.data")
ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "general_denoiser_v2"
CONFIGS = BUNDLE / "configs"
TINY = ["--channels", "[4,8]", "--full_channels", "4", "--max_epochs", "1", "--batch_size", "2",
        "--group_patches", "{'CT': 2, 'photograph': 2}", "--val_patches", "{'CT': 2, 'photograph': 2}"]


def test_bundle_has_the_standard_files():
    assert_standard_bundle(BUNDLE)


@pytest.mark.parametrize("variant", [[], ["--pair_mode", "n2c"], ["--pair_scaling", "noisy_region"]],
                         ids=["n2n", "clean-target", "crop-range"])
def test_train_config_runs_as_written(tmp_path, variant):
    run_bundle("run", "--config_file", str(CONFIGS / "train.json"), *TINY, *variant,
               "--output_dir", str(tmp_path), "--save_model_to", str(tmp_path / "model.pt"))
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert any(key.endswith("weight") for key in state) and (tmp_path / "last.pt").is_file()


def test_evaluate_config_scores_the_shipped_model(tmp_path):
    run_bundle("run", "--config_file", str(CONFIGS / "evaluate.json"), "--output_dir", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"gaussian", "poisson", "rician"}
    assert metrics["gaussian"]["val_psnr"] > 28  # noisy input: about 22 dB


@pytest.mark.parametrize("views", [1, 8])
def test_inference_config_denoises_a_nifti_folder_keeping_the_affine(tmp_path, views):
    check_nifti_folder_inference(CONFIGS, tmp_path, "--self_ensemble_views", str(views))


def test_monai_bundle_tooling_accepts_the_bundle(tmp_path):
    check_bundle_tooling(BUNDLE, tmp_path, trace=True)
