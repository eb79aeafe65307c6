"""Every bundle's multi-GPU path is the same: one DDP overlay, DDP-wrapped network, distributed
loaders. The overlay itself runs under torchrun in test_bundle_general.py and test_bundle_n2n.py
(k-space); this keeps the other bundles on exactly that path without a torchrun each."""

import json
from pathlib import Path

import pytest
from helpers import config_items

BUNDLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "bundles").iterdir() if (p / "configs").is_dir())
OVERLAY = {
    "initialize": ["$medden.engines.init_distributed()", "$monai.utils.set_determinism(seed=@seed)"],
    "run": ["$@train#trainer.run()", "$medden.io.publish_model(@output_dir + '/best.pt', @save_model_to)"],
    "finalize": ["$medden.engines.cleanup(wait_for_all=True)"],
}


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_bundle_trains_on_the_shared_ddp_path(bundle):
    assert len(BUNDLES) >= 8
    overlay = json.loads((bundle / "configs" / "multi_gpu_train.json").read_text())
    assert overlay == OVERLAY
    train = json.loads((bundle / "configs" / "train.json").read_text())
    assert train["network"].startswith("$medden.engines.wrap_ddp(")
    loaders = list(config_items(train, lambda target: "loader" in target.lower()))
    assert loaders and all(loader["_target_"] == "medden.engines.make_loader" for loader in loaders)
