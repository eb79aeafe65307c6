"""What the benchmark scripts under ``scripts/`` share: training a bundle with overrides, PSNR and
SSIM of one image, and median wall-clock seconds over a list of inputs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medden.metrics import psnr, ssim

__all__ = ["image_scores", "timed_outputs", "train_bundle"]

TRAINING_RECORD = "training_seconds.json"


def train_bundle(bundle_dir: str | os.PathLike, output_dir: str | os.PathLike,
                 overrides: Mapping[str, Any] | None = None, reuse: bool = False) -> tuple[Path, float | None]:
    """Run ``bundle_dir/configs/train.json`` with its outputs in ``output_dir``.

    Args:
        bundle_dir: the bundle (``bundle_root`` is set to it).
        output_dir: the run's ``output_dir``; the published weights go to ``output_dir/model.pt``.
        overrides: further config ids and values, e.g. ``{"max_epochs": 5}``.
        reuse: if ``output_dir/model.pt`` exists, return it without training.

    Returns:
        ``(weights path, training seconds)``; seconds come from ``training_seconds.json`` when
        reused (None if that record is missing).
    """
    from monai.bundle import ConfigWorkflow

    bundle_dir, output_dir = Path(bundle_dir), Path(output_dir)
    weights, record = output_dir / "model.pt", output_dir / TRAINING_RECORD
    if reuse and weights.is_file():
        return weights, json.loads(record.read_text())["seconds"] if record.is_file() else None
    settings = {"bundle_root": str(bundle_dir), "output_dir": str(output_dir), "save_model_to": str(weights),
                **dict(overrides or {})}
    workflow = ConfigWorkflow(config_file=str(bundle_dir / "configs" / "train.json"), workflow_type="train",
                              **settings)
    workflow.initialize()
    started = time.perf_counter()
    workflow.run()
    workflow.finalize()
    seconds = time.perf_counter() - started
    output_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"seconds": seconds, "overrides": {k: str(v) for k, v in settings.items()}}) + "\n")
    return weights, seconds


def image_scores(output: np.ndarray, clean: np.ndarray, data_range: float = 1.0) -> tuple[float, float]:
    """``(PSNR dB, SSIM)`` of one ``(C, H, W)`` output against its clean reference."""
    output = np.asarray(output, np.float32)
    return float(psnr(output, clean, data_range)[0]), float(ssim(output, clean, data_range)[0])


def timed_outputs(fn: Callable[[Any], Any], inputs: Iterable[Any]) -> tuple[list[Any], float]:
    """``fn`` on each input: ``(outputs, median wall-clock seconds per call)``."""
    outputs, seconds = [], []
    for item in inputs:
        started = time.perf_counter()
        outputs.append(fn(item))
        seconds.append(time.perf_counter() - started)
    return outputs, float(np.median(seconds))
