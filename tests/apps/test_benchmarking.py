"""The helpers the benchmark scripts share."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medden.apps.benchmark.helpers import contact_sheet, image_scores, timed_outputs, train_bundle

JSRT = Path(__file__).resolve().parents[2] / "bundles" / "recorruption_jsrt_poisson"
TINY = {"channels": [4, 8], "max_epochs": 1, "batch_size": 2, "val_interval": 1, "repeats_per_epoch": 4,
        "perceptual_weight": 0.0}


def test_train_bundle_publishes_weights_records_seconds_and_reuses_them(tmp_path, monkeypatch):
    weights, seconds = train_bundle(JSRT, tmp_path / "run", TINY)
    assert weights == tmp_path / "run" / "model.pt"
    assert any(key.endswith("weight") for key in torch.load(weights, weights_only=True))
    record = json.loads((tmp_path / "run" / "training_seconds.json").read_text())
    assert seconds > 0 and record["seconds"] == seconds and record["overrides"]["max_epochs"] == "1"

    import monai.bundle

    def no_training(*args, **kwargs):
        raise AssertionError("reuse=True must not train again")

    monkeypatch.setattr(monai.bundle, "ConfigWorkflow", no_training)
    assert train_bundle(JSRT, tmp_path / "run", TINY, reuse=True) == (weights, seconds)


def test_image_scores_are_psnr_and_ssim_against_the_reference():
    clean = np.random.default_rng(0).uniform(0, 1, (1, 32, 32)).astype(np.float32)
    psnr, ssim = image_scores(clean + 0.1, clean)
    assert psnr == pytest.approx(20.0, abs=1e-4)  # MSE 0.01 at data range 1
    assert ssim < 1.0
    assert image_scores(clean, clean)[1] == pytest.approx(1.0)


def test_timed_outputs_keeps_order_and_returns_a_median():
    outputs, seconds = timed_outputs(lambda x: 2 * x, [1, 2, 3])
    assert outputs == [2, 4, 6] and seconds >= 0


def test_contact_sheet_lays_out_labelled_grey_and_rgb_tiles(tmp_path):
    from PIL import Image

    grey = np.zeros((1, 20, 10), np.float32)
    grey[0, :, -1] = 1.0  # the last Y column: shown as the top row (Y points up)
    rgb = np.zeros((3, 20, 10), np.float32)
    rgb[0] = 1.0  # pure red
    path = contact_sheet(tmp_path / "figs" / "sheet.png", [[("a", grey), ("b", rgb)], [("c", grey)]])
    sheet = np.asarray(Image.open(path))
    assert sheet.shape == (2 * (10 + 14), 2 * 20, 3)  # 2 rows x 2 cells of 20 x 10 tiles + label strips
    np.testing.assert_array_equal(sheet[14, :20], 255)  # the grey tile's top row is the Y = max column
    assert (sheet[15:24, :20] == 0).all()
    np.testing.assert_array_equal(sheet[20, 25], (255, 0, 0))
    assert not list(tmp_path.glob("figs/.*"))  # no temporary file left behind


def test_contact_sheet_refuses_non_image_tiles(tmp_path):
    with pytest.raises(ValueError, match=r"\(1 or 3, H, W\)"):
        contact_sheet(tmp_path / "x.png", [[("flat", np.zeros((20, 10)))]])
