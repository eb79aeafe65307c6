"""The general_denoiser_v2 bundle runs as written: train, evaluate, inference, MONAI tooling; the standard files,
evaluation and inference tests also run on general_denoiser_v3 (the 2.5D default, whose own tests are in
test_bundle_general_v3.py)."""

import json
from pathlib import Path

import pytest
import torch

from helpers import assert_standard_bundle, check_bundle_tooling, check_nifti_folder_inference, run_bundle

pytest.importorskip("pydicom.data")
ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "general_denoiser_v2"
CONFIGS = BUNDLE / "configs"
#: the bundles the shared tests run on: version 2 and version 3 (same evaluation and inference configs' contract)
GENERAL_BUNDLES = [BUNDLE, ROOT / "bundles" / "general_denoiser_v3"]
TINY = ["--channels", "[4,8]", "--full_channels", "4", "--max_epochs", "1", "--batch_size", "2",
        "--group_patches", "{'CT': 2, 'photograph': 2}", "--val_patches", "{'CT': 2, 'photograph': 2}"]


@pytest.mark.parametrize("bundle", GENERAL_BUNDLES, ids=lambda b: b.name)
def test_bundle_has_the_standard_files(bundle):
    assert_standard_bundle(bundle)


@pytest.mark.parametrize("variant", [[], ["--pair_mode", "n2c"], ["--pair_scaling", "noisy_region"]],
                         ids=["n2n", "clean-target", "crop-range"])
def test_train_config_runs_as_written(tmp_path, variant):
    run_bundle("run", "--config_file", str(CONFIGS / "train.json"), *TINY, *variant,
               "--output_dir", str(tmp_path), "--save_model_to", str(tmp_path / "model.pt"))
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert any(key.endswith("weight") for key in state) and (tmp_path / "last.pt").is_file()


@pytest.mark.parametrize("bundle", GENERAL_BUNDLES, ids=lambda b: b.name)
def test_evaluate_config_scores_the_shipped_model(tmp_path, bundle):
    run_bundle("run", "--config_file", str(bundle / "configs" / "evaluate.json"), "--output_dir", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"gaussian", "poisson", "rician"}
    assert metrics["gaussian"]["val_psnr"] > 28  # noisy input: about 22 dB


@pytest.mark.parametrize("bundle", GENERAL_BUNDLES, ids=lambda b: b.name)
@pytest.mark.parametrize("views", [1, 8])
def test_inference_config_denoises_a_nifti_folder_keeping_the_affine(tmp_path, views, bundle):
    check_nifti_folder_inference(bundle / "configs", tmp_path, "--self_ensemble_views", str(views))


def test_monai_bundle_tooling_accepts_the_bundle(tmp_path):
    check_bundle_tooling(BUNDLE, tmp_path, trace=True)
