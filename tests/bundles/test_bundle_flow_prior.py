"""The flow_prior_unpaired bundle: both stages run on CPU, the data sets stay unpaired, the
baselines share the budget, and the shipped models evaluate and infer."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import assert_standard_bundle, check_bundle_tooling, run_bundle
from medden.io import load_network_weights
from medden.networks import ImageFlow, ResNetDenoiser

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "flow_prior_unpaired"
CONFIGS = BUNDLE / "configs"
TINY_FLOW = {"flow_levels": 2, "flow_steps_per_level": 1, "flow_hidden": 4}
TINY_NET = {"features": 4, "n_blocks": 1}
TINY_RUN = {"max_epochs": 1, "repeats_per_epoch": 1, "batch_size": 4, "val_interval": 1, "patch_size": [32, 32]}


def _args(settings):
    return [token for key, value in settings.items() for token in (f"--{key}", json.dumps(value))]


def _parser(*names, **overrides):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / name) for name in names])
    parser["bundle_root"] = str(BUNDLE)
    for key, value in overrides.items():
        parser[key] = value
    return parser


def test_bundle_has_the_standard_files_and_passes_monai_tooling(tmp_path):
    assert_standard_bundle(BUNDLE)
    assert (BUNDLE / "models" / "flow.pt").is_file()
    check_bundle_tooling(BUNDLE, tmp_path, trace=True)


def test_stage_1_fits_the_flow_and_stage_2_trains_the_denoiser_against_it(tmp_path):
    flow_path = tmp_path / "flow.pt"
    result = run_bundle("run", "--config_file", str(CONFIGS / "train_flow.json"), *_args({**TINY_FLOW, **TINY_RUN}),
                        "--max_epochs", "2", "--output_dir", str(tmp_path / "flow"), "--save_model_to", str(flow_path))
    log = result.stdout + result.stderr
    values = [float(v) for v in re.findall(r"Metrics -- val_bits_per_dim: ([0-9.]+)", log)]
    assert len(values) == 2 and all(0 < v < 9 for v in values)
    samples = tmp_path / "flow" / "samples"
    assert sorted(samples.glob("epoch_*.png")) == [samples / f"epoch_000{i}.png" for i in (1, 2)]
    flow = ImageFlow(1, TINY_FLOW["flow_levels"], TINY_FLOW["flow_steps_per_level"], TINY_FLOW["flow_hidden"])
    load_network_weights(flow, flow_path)
    # best.pt is the epoch with the lowest validation bits/dim
    best = torch.load(tmp_path / "flow" / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "flow" / "last.pt", weights_only=True)["network"]
    assert all(torch.equal(best[k], last[k]) for k in best) == (values[1] < values[0])

    flow_before = torch.load(flow_path, weights_only=True)
    run_bundle("run", "--config_file", str(CONFIGS / "train.json"), *_args({**TINY_FLOW, **TINY_NET, **TINY_RUN}),
               "--flow_path", str(flow_path), "--output_dir", str(tmp_path / "denoiser"),
               "--save_model_to", str(tmp_path / "model.pt"))
    net = load_network_weights(ResNetDenoiser(1, **TINY_NET), tmp_path / "model.pt")
    assert net(torch.rand(1, 1, 37, 41)).shape == (1, 1, 37, 41)
    flow_after = torch.load(flow_path, weights_only=True)
    assert all(torch.equal(value, flow_after[key]) for key, value in flow_before.items())


def test_stage_2_training_batches_hold_noisy_images_only():
    parser = _parser("train.json", **TINY_RUN)
    dataset = parser.get_parsed_content("train#dataset")
    item = dataset[0]
    assert set(item) == {"input"} and tuple(item["input"].shape) == (1, 32, 32)
    assert parser.get_parsed_content("train#trainer#target_key") == "input"


@pytest.mark.parametrize("overlay, role", [("train_supervised.json", "clean"), ("train_recorruption.json", "noisy")])
def test_baselines_share_the_network_and_budget_and_read_their_own_set(overlay, role):
    from medden.data.unpaired import unpaired_slices

    base, parser = _parser("train.json"), _parser("train.json", overlay)
    for key in ("network_def", "max_epochs", "repeats_per_epoch", "batch_size", "patch_size", "learning_rate"):
        assert parser.get_parsed_content(key) == base.get_parsed_content(key) or key == "network_def"
    assert type(parser.get_parsed_content("network_def")) is ResNetDenoiser
    images = parser.get_parsed_content("train_images")
    expected = unpaired_slices(role)
    assert len(images) == len(expected) and all(np.array_equal(a, b) for a, b in zip(images, expected))
    item = parser.get_parsed_content("train#noisy_data")[0]
    assert set(parser.get_parsed_content("train#dataset")[0]) == {"input", "target"}
    if role == "clean":  # supervised: noisy input, clean target
        assert np.array_equal(item["target"], item["clean"]) and not np.array_equal(item["input"], item["clean"])
    else:  # recorruption: y' -> y, y noisier than nothing but not the clean image
        assert not np.array_equal(item["target"], item["clean"])
        assert float(np.std(item["input"] - item["clean"])) >= float(np.std(item["target"] - item["clean"]))
    assert parser.get_parsed_content("save_model_to") != str(BUNDLE / "models" / "model.pt")


def test_recorruption_overlay_runs(tmp_path):
    run_bundle("run", "--config_file", f"['{CONFIGS / 'train.json'}','{CONFIGS / 'train_recorruption.json'}']",
               *_args({**TINY_NET, **TINY_RUN}), "--output_dir", str(tmp_path), "--save_model_to",
               str(tmp_path / "model.pt"))
    load_network_weights(ResNetDenoiser(1, **TINY_NET), tmp_path / "model.pt")


def test_evaluate_and_inference_configs_run_with_the_shipped_model(tmp_path):
    run_bundle("run", "--config_file", str(CONFIGS / "evaluate.json"), "--output_dir", str(tmp_path),
               "--dataset#images", "$medden.data.unpaired.unpaired_slices('test')[::5]")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # noisy inputs score about 20.2 dB at sigma 25/255 (docs/results/flow_prior.md)
    assert metrics["val_psnr"] > 26 and 0 < metrics["val_ssim"] <= 1
    run_bundle("run", "--config_file", str(CONFIGS / "inference.json"), "--output_dir", str(tmp_path / "out"),
               "--input_dir", str(tmp_path / "demo"), "--demo_input", str(tmp_path / "demo" / "slab.nii.gz"),
               "--initialize",
               "$medden.data.slices.write_corrupted_mni_slab(@demo_input, medden.transforms.RandGaussianSigmaNoise(25 / 255))")
    assert (tmp_path / "out" / "slab_denoised.nii.gz").is_file()


def test_shipped_flow_rates_clean_slices_above_noisy_ones():
    from medden.data.unpaired import tile_patches, unpaired_slices
    from medden.networks import dequantized_bits_per_dim

    parser = _parser("train.json")
    flow = parser.get_parsed_content("flow").eval()
    clean = torch.as_tensor(np.stack(tile_patches(unpaired_slices("test")[::5], (64, 64))))
    noisy = (clean + 25 / 255 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        bits = [float(dequantized_bits_per_dim(flow, x, 256, generator).mean()) for x in (clean, noisy)]
    assert bits[0] + 0.5 < bits[1]
