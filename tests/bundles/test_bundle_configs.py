"""Every bundle's multi-GPU path is the same: one DDP overlay, DDP-wrapped network, distributed
loaders. The overlay itself runs under torchrun in test_bundle_general.py and test_bundle_n2n.py
(k-space); this keeps the other bundles on exactly that path without a torchrun each."""

import json
from pathlib import Path

import pytest

BUNDLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "bundles").iterdir() if (p / "configs").is_dir())
OVERLAY = {
    "initialize": ["$medden.engines.init_distributed()", "$monai.utils.set_determinism(seed=@seed)"],
    "run": ["$@train#trainer.run()", "$medden.io.publish_model(@output_dir + '/best.pt', @save_model_to)"],
    "finalize": ["$medden.engines.cleanup(wait_for_all=True)"],
}


def _loaders(config):
    """Every dict with a ``_target_`` naming a data loader, anywhere in the config."""
    if isinstance(config, dict):
        if "loader" in str(config.get("_target_", "")).lower():
            yield config
        for value in config.values():
            yield from _loaders(value)
    elif isinstance(config, list):
        for value in config:
            yield from _loaders(value)


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_bundle_trains_on_the_shared_ddp_path(bundle):
    assert len(BUNDLES) >= 8
    overlay = json.loads((bundle / "configs" / "multi_gpu_train.json").read_text())
    assert overlay == OVERLAY
    train = json.loads((bundle / "configs" / "train.json").read_text())
    assert train["network"].startswith("$medden.engines.wrap_ddp(")
    loaders = list(_loaders(train))
    assert loaders and all(loader["_target_"] == "medden.engines.make_loader" for loader in loaders)
