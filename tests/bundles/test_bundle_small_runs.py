"""Every bundle's train.json has the same small-run knobs, they take effect, and too little data is a clear error."""

import json
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import config_items, run_bundle

ROOT = Path(__file__).resolve().parents[2]
TRAIN_CONFIGS = sorted(ROOT.glob("bundles/*/configs/train.json"))
KNOBS = ("max_epochs", "epoch_length", "val_interval")
JSRT = ROOT / "bundles" / "recorruption_jsrt_poisson"


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=[p.parents[1].name for p in TRAIN_CONFIGS])
def test_every_train_json_exposes_the_same_knobs_and_its_trainer_uses_them(path):
    assert len(TRAIN_CONFIGS) >= 11
    config = json.loads(path.read_text())
    assert all(knob in config for knob in KNOBS), [k for k in KNOBS if k not in config]
    assert config["epoch_length"] is None  # one pass over the data unless overridden
    trainers = list(config_items(config, lambda target: target.endswith("build_trainer")))
    assert len(trainers) == 1
    assert all(trainers[0][knob] == f"@{knob}" for knob in KNOBS), trainers[0]


def _raw_jsrt(folder, names):
    rng = np.random.default_rng(0)
    folder.mkdir()
    smooth = np.linspace(500, 3500, 2048)[None, :] * np.ones((2048, 1))
    for name in names:
        raw = np.clip(smooth + rng.normal(0, 50, smooth.shape), 0, 4095).astype(">u2")
        raw.tofile(folder / f"{name}.IMG")  # headerless big-endian 12-bit, as the database ships
    return folder


JSRT_TINY = ["--channels", "[4,8]", "--perceptual_weight", "0", "--image_size", "[128,128]", "--patch_size", "[64,64]"]


def test_overridden_knobs_set_epochs_steps_and_validations(tmp_path):
    folder = _raw_jsrt(tmp_path / "jsrt", ["JPCLN001", "JPCLN002", "JPCNN001", "JPCNN002"])
    run_bundle("run", "--config_file", str(JSRT / "configs" / "train.json"), *JSRT_TINY, "--dataset_dir", str(folder),
               "--batch_size", "1", "--max_epochs", "3", "--epoch_length", "2", "--val_interval", "2",
               "--output_dir", str(tmp_path / "run"), "--save_model_to", str(tmp_path / "run" / "model.pt"))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("train_loss")) == 6  # 3 epochs of 2 steps
    assert [e.step for e in events.Scalars("val_psnr")] == [2, 3]  # every 2nd epoch, and the final one


def test_data_that_cannot_fill_one_batch_is_a_clear_error_not_a_missing_best_pt(tmp_path):
    folder = _raw_jsrt(tmp_path / "jsrt", ["JPCLN001", "JPCLN002", "JPCNN001", "JPCNN002"])
    with pytest.raises(Exception) as error:
        run_bundle("run", "--config_file", str(JSRT / "configs" / "train.json"), *JSRT_TINY, "--dataset_dir",
                   str(folder), "--batch_size", "8", "--max_epochs", "1", "--output_dir", str(tmp_path / "run"))
    chain, err = [], error.value
    while err is not None:
        chain.append(str(err))
        err = err.__cause__ or err.__context__
    message = "\n".join(chain)
    assert "cannot fill one batch" in message and "batch_size=8" in message and "best.pt" not in message
