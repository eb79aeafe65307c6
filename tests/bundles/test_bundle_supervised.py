"""The supervised_baseline bundle: network chosen by name, noisy -> clean on every benchmark noise."""

import json
from pathlib import Path

import pytest
import torch

from helpers import assert_standard_bundle, check_bundle_tooling, run_bundle

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "supervised_baseline"
TINY = ["--max_epochs", "1", "--patches_per_modality", "2", "--batch_size", "2", "--val_interval", "1"]
TINY_NETWORKS = {
    "ridnet": "{'features': 4, 'n_blocks': 1}",
    "cbdnet": "{'features': [4, 8, 16], 'convs': [1, 1, 1], 'estimator_features': 4}",
}


def _train(out, *overrides):
    run_bundle("run", "--config_file", str(BUNDLE / "configs" / "train.json"), *TINY, *overrides,
               "--output_dir", str(out), "--save_model_to", str(out / "model.pt"))
    return torch.load(out / "model.pt", weights_only=True)


def test_bundle_has_the_standard_files_and_passes_monai_tooling(tmp_path):
    assert_standard_bundle(BUNDLE)
    check_bundle_tooling(BUNDLE, tmp_path, trace=True)


@pytest.mark.parametrize("network, noise", [("ridnet", "kspace"), ("cbdnet", "poisson")])
def test_train_config_runs_for_a_network_and_noise_chosen_by_name(network, noise, tmp_path):
    import ast

    from medden.networks import denoiser_network

    state = _train(tmp_path, "--network_name", network, "--network_kwargs", TINY_NETWORKS[network], "--noise", noise)
    # the published weights are those of the named network with the given arguments
    expected = denoiser_network(network, 1, **ast.literal_eval(TINY_NETWORKS[network])).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in expected.items()}


def test_evaluate_and_inference_configs_run_with_the_shipped_model(tmp_path):
    run_bundle("run", "--config_file", str(BUNDLE / "configs" / "evaluate.json"), "--output_dir", str(tmp_path),
               "--dataset#images", "$[item.image for item in medden.data.modalities.general_test_images(brain_slices=1)]")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # noisy inputs score about 22 dB at sigma 20/255 (docs/results/README.md)
    assert metrics["val_psnr"] > 28 and 0 < metrics["val_ssim"] <= 1
    run_bundle("run", "--config_file", str(BUNDLE / "configs" / "inference.json"), "--output_dir",
               str(tmp_path / "out"), "--input_dir", str(tmp_path / "demo"), "--demo_input",
               str(tmp_path / "demo" / "slab.nii.gz"), "--initialize",
               "$medden.data.slices.write_corrupted_mni_slab(@demo_input, medden.transforms.RandGaussianSigmaNoise(20 / 255))")
    assert (tmp_path / "out" / "slab_denoised.nii.gz").is_file()
