"""Bundles run from any folder: ``bundle_root`` comes from the config file being run, not the current folder.

The runs here are real ``python -m monai.bundle run`` processes started in an unrelated temporary
folder, at the smallest size (one epoch of one step, a 4-8 channel network).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import copy_bundle
from medden.bundle.root import running_bundle_root

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "bundles" / "n2n_image"
TINY = ["--channels", "[4,8]", "--max_epochs", "1", "--epoch_length", "1", "--batch_size", "2",
        "--patches_per_modality", "2", "--val_interval", "1"]


def _monai_bundle_run(config: Path, cwd: Path, *overrides) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", str(config), *overrides],
                            cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def trained_copy(tmp_path_factory):
    """A copy of n2n_image elsewhere, trained by its own train.json run from a third folder."""
    base = tmp_path_factory.mktemp("anywhere")
    copy, cwd = copy_bundle("n2n_image", base / "elsewhere" / "my_n2n"), base / "cwd"
    cwd.mkdir()
    _monai_bundle_run(copy / "configs" / "train.json", cwd, *TINY)
    return copy, cwd


def test_train_json_run_from_another_folder_writes_into_the_copy(trained_copy):
    copy, cwd = trained_copy
    assert (copy / "runs" / "train" / "best.pt").is_file() and (copy / "runs" / "train" / "last.pt").is_file()
    tiny = torch.load(copy / "models" / "model.pt", weights_only=True)
    shipped = torch.load(SHIPPED / "models" / "model.pt", weights_only=True)
    assert tiny.keys() != shipped.keys() or any(tiny[k].shape != shipped[k].shape for k in tiny)  # the copy's own model
    assert list(cwd.iterdir()) == []  # nothing lands in the current folder


def test_inference_and_evaluate_json_run_from_another_folder_use_the_copy(trained_copy):
    copy, cwd = trained_copy
    _monai_bundle_run(copy / "configs" / "inference.json", cwd, "--channels", "[4,8]")
    outputs = list((copy / "runs" / "inference").glob("*_denoised.nii.gz"))
    assert outputs and (copy / "runs" / "demo_input").is_dir()
    _monai_bundle_run(copy / "configs" / "evaluate.json", cwd, "--channels", "[4,8]")
    metrics = json.loads((copy / "runs" / "eval" / "metrics.json").read_text())
    assert metrics["val_psnr"] > 0
    assert list(cwd.iterdir()) == []


def test_train_writes_validation_metrics_and_learning_rate_to_tensorboard(trained_copy):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    copy, _ = trained_copy
    events = EventAccumulator(str(copy / "runs" / "train" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss", "lr", "val_psnr", "val_ssim"} <= tags
    assert [e.step for e in events.Scalars("val_psnr")] == [1]
    assert events.Scalars("lr")[0].value == pytest.approx(1e-3)  # the learning rate of epoch 1


@pytest.mark.parametrize("name", ["train.json", "evaluate.json", "inference.json"])
def test_bundle_root_is_the_folder_of_the_workflow_config(name, tmp_path, monkeypatch):
    from monai.bundle import ConfigWorkflow

    monkeypatch.chdir(tmp_path)
    copy = copy_bundle("n2n_image", tmp_path / "copied")
    for bundle in (SHIPPED, copy):  # the workflow evaluates its own property (as in initialize and run)
        workflow = ConfigWorkflow(config_file=str(bundle / "configs" / name), workflow_type="infer", initialize=[])
        workflow.initialize()
        assert workflow.bundle_root == str(bundle.resolve())
    explicit = ConfigWorkflow(config_file=str(copy / "configs" / name), workflow_type="infer", initialize=[],
                              bundle_root="/some/where")
    explicit.initialize()
    assert explicit.bundle_root == "/some/where"  # --bundle_root still wins


def test_bundle_root_outside_a_workflow_is_the_shipped_bundle_or_a_clear_error(tmp_path, monkeypatch):
    from monai.bundle import ConfigParser

    monkeypatch.chdir(tmp_path)
    parser = ConfigParser()
    parser.read_config(str(SHIPPED / "configs" / "inference.json"))
    assert parser.get_parsed_content("bundle_root") == str(SHIPPED)
    with pytest.raises(FileNotFoundError, match="not a shipped bundle.*Set bundle_root"):
        running_bundle_root("no_such_bundle")


def test_every_bundle_config_finds_its_own_root():
    configs = sorted(ROOT.glob("bundles/*/configs/*.json"))
    for path in configs:
        config = json.loads(path.read_text())
        if "bundle_root" in config:
            name = path.parents[1].name
            assert config["bundle_root"] == f"$medden.bundle.root.running_bundle_root('{name}')", path
            assert "$import medden.bundle.root" in config["imports"], path



def test_monai_bundle_scripts_with_a_bare_parser_use_the_config_files_folder(tmp_path, monkeypatch):
    from monai.bundle import ckpt_export

    from medden.networks import general_denoiser_net

    monkeypatch.chdir(tmp_path)
    copy = copy_bundle("n2n_image", tmp_path / "copied")
    torch.save(general_denoiser_net(channels=[4, 8]).state_dict(), copy / "models" / "model.pt")
    # ckpt_export evaluates "network", i.e. load_network_weights(@network_def, @bundle_root + '/models/model.pt'):
    # the shipped 16-128 channel weights would not fit the 4-8 channel network
    ckpt_export(net_id="network", filepath=str(tmp_path / "model.ts"), meta_file=str(copy / "configs/metadata.json"),
                config_file=str(copy / "configs/inference.json"), ckpt_file=str(copy / "models/model.pt"),
                channels=[4, 8], device="$torch.device('cpu')")
    assert (tmp_path / "model.ts").is_file()
