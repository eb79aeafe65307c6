"""``medden train``: a bundle's train.json (then evaluate.json) from any folder, outputs outside the bundle."""

import hashlib
import logging

import pytest
import torch

from helpers import REPO, copy_bundle
from medden.apps.cli import main
from medden.apps.train import parse_settings

TINY = ["--set", "channels=[4,8]", "--set", "max_epochs=1", "--set", "epoch_length=1", "--set", "batch_size=2",
        "--set", "patches_per_modality=2", "--set", "val_interval=1"]
SHIPPED_MODEL = REPO / "bundles" / "n2n_image" / "models" / "model.pt"


@pytest.fixture(autouse=True)
def _keep_logging():
    """A bundle's logging.conf replaces the root logger's handlers; put them back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_parse_settings_reads_json_literals_and_text():
    assert parse_settings(["max_epochs=2", "channels=[4, 8]", "dataset_dir=/data/x", "resume_from=None",
                           "a#b=true"]) == {"max_epochs": 2, "channels": [4, 8], "dataset_dir": "/data/x",
                                            "resume_from": None, "a#b": True}
    with pytest.raises(ValueError, match="KEY=VALUE.*got 'max_epochs'"):
        parse_settings(["max_epochs"])


def test_train_a_shipped_bundle_from_another_folder_with_evaluation(tmp_path, monkeypatch, capsys):
    shipped = hashlib.sha256(SHIPPED_MODEL.read_bytes()).hexdigest()
    monkeypatch.chdir(tmp_path)
    assert main(["train", "n2n_image", *TINY, "--evaluate"]) == 0
    out = tmp_path / "medden-train" / "n2n_image"  # the default output
    trained, original = (torch.load(path, weights_only=True) for path in (out / "model.pt", SHIPPED_MODEL))
    assert any(trained[key].shape != original[key].shape for key in trained)  # the 4-8 channel network
    assert (out / "train" / "last.pt").is_file() and any((out / "train" / "tensorboard").iterdir())
    printed = capsys.readouterr().out
    assert f"model: {out / 'model.pt'}" in printed and "evaluation: val_psnr" in printed
    assert (out / "eval" / "metrics.json").is_file()
    assert hashlib.sha256(SHIPPED_MODEL.read_bytes()).hexdigest() == shipped  # the shipped model is untouched


def test_an_unshipped_folder_needs_trust_and_then_trains_into_output(tmp_path, capsys):
    bundle = copy_bundle("n2n_image", tmp_path / "mine")
    assert main(["train", str(bundle), *TINY, "--output", str(tmp_path / "out")]) == 1
    assert "--trust-bundle" in capsys.readouterr().err
    assert main(["train", str(bundle), *TINY, "--output", str(tmp_path / "out"), "--trust-bundle"]) == 0
    assert (tmp_path / "out" / "model.pt").is_file() and not (bundle / "runs" / "train").exists()


def test_a_failing_run_names_the_cause(tmp_path, capsys):
    code = main(["train", "n2n_image", *TINY, "--set", "batch_size=64", "--output", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "train.json of bundle 'n2n_image' failed: ValueError: the training data cannot fill one batch" in err


@pytest.mark.parametrize("argv, bundle, output", [
    (["n2n_image"], "n2n_image", None),
    (["n2n_image", "out"], "n2n_image", "out"),
    (["--bundle", "n2n_image", "out"], "n2n_image", "out"),
    (["--bundle", "n2n_image", "--output", "out"], "n2n_image", "out"),
    (["n2n_image", "--output", "out"], "n2n_image", "out"),
])
def test_train_takes_the_bundle_and_output_spellings_of_the_other_commands(monkeypatch, argv, bundle, output):
    seen = {}
    monkeypatch.setattr("medden.apps.train.train_command", lambda args: seen.update(vars(args)) or 0)
    assert main(["train", *argv]) == 0
    assert (seen["bundle"], seen["output"]) == (bundle, output)


def test_train_without_a_bundle_or_with_two_says_so(capsys):
    assert main(["train"]) == 1
    assert "no bundle given: give --bundle NAME_OR_DIR" in capsys.readouterr().err
    assert main(["train", "n2n_image", "out", "--bundle", "n2n_image", "--output", "other"]) == 1
    assert "two outputs given" in capsys.readouterr().err


FLOW_TINY = ["--set", "flow_levels=2", "--set", "flow_steps_per_level=1", "--set", "flow_hidden=4",
             "--set", "max_epochs=1", "--set", "repeats_per_epoch=1", "--set", "batch_size=4",
             "--set", "patch_size=[32,32]", "--set", "val_interval=1"]


def test_train_runs_another_stage_and_overlays_by_config(tmp_path, capsys):
    from medden.io import load_network_weights
    from medden.networks import ImageFlow, ResNetDenoiser

    flow_out = tmp_path / "flow"
    assert main(["train", "flow_prior_unpaired", str(flow_out), "--config", "train_flow.json", *FLOW_TINY]) == 0
    load_network_weights(ImageFlow(1, 2, 1, 4), flow_out / "flow.pt")  # the stage's weights, named for it
    assert not (flow_out / "model.pt").exists() and "--set flow_path=" in capsys.readouterr().out
    supervised = tmp_path / "supervised"
    assert main(["train", "flow_prior_unpaired", str(supervised), "--config", "train.json", "--config",
                 "train_supervised.json", *FLOW_TINY, "--set", "features=4", "--set", "n_blocks=1"]) == 0
    load_network_weights(ResNetDenoiser(1, features=4, n_blocks=1), supervised / "model.pt")


def test_train_refuses_an_unknown_config_and_evaluating_another_stage(tmp_path, capsys):
    assert main(["train", "n2n_image", str(tmp_path / "x"), "--config", "train_flow.json"]) == 1
    assert "has no config 'train_flow.json'" in capsys.readouterr().err
    assert main(["train", "flow_prior_unpaired", str(tmp_path / "x"), "--config", "train_flow.json", "--evaluate"]) == 1
    assert "--evaluate scores the weights train.json makes" in capsys.readouterr().err
    assert main(["train", "n2n_image", str(tmp_path / "x"), "--config", "../x.json"]) == 1
    assert "has no config '../x.json'" in capsys.readouterr().err
