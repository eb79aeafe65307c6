"""The general_denoiser_v3 bundle (the 2.5D default model): its train config and MONAI tooling (its standard files,
evaluation and inference run in test_bundle_general_v2.py with version 2's)."""

from pathlib import Path

import pytest
import torch

from helpers import check_bundle_tooling, run_bundle

pytest.importorskip("pydicom.data")
ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "general_denoiser_v3"
CONFIGS = BUNDLE / "configs"
TINY = ["--channels", "[4,8]", "--full_channels", "4", "--max_epochs", "1", "--batch_size", "2",
        "--group_patches", "{'CT': 2, 'brain MR volume': 2}", "--val_patches", "{'CT': 2, 'brain MR volume': 2}"]


def test_train_config_runs_as_written_from_scratch_and_from_a_2d_model(tmp_path):
    from medden.networks import general_denoiser_net

    run_bundle("run", "--config_file", str(CONFIGS / "train.json"), *TINY, "--init_from", "False",
               "--output_dir", str(tmp_path / "scratch"), "--save_model_to", str(tmp_path / "scratch.pt"))
    state = torch.load(tmp_path / "scratch.pt", weights_only=True)
    assert tuple(state["net.head.0.weight"].shape) == (4, 5, 3, 3)  # five slices in
    two_d = general_denoiser_net(channels=(4, 8), architecture="bilinear", full_channels=4)
    torch.save(two_d.state_dict(), tmp_path / "v2.pt")
    run_bundle("run", "--config_file", str(CONFIGS / "train.json"), *TINY, "--init_from", str(tmp_path / "v2.pt"),
               "--output_dir", str(tmp_path / "warm"), "--save_model_to", str(tmp_path / "warm.pt"))
    assert (tmp_path / "warm" / "last.pt").is_file()


def test_monai_bundle_tooling_accepts_the_bundle(tmp_path):
    check_bundle_tooling(BUNDLE, tmp_path, channels=5, trace=True, out_channels=1)
