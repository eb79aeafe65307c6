"""What the benchmark scripts under ``scripts/`` share: training a bundle with overrides, PSNR and
SSIM of one image, median wall-clock seconds over a list of inputs, and labelled figures."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medden.io.files import atomic_write
from medden.metrics.image_quality import psnr, ssim

__all__ = ["contact_sheet", "image_scores", "timed_outputs", "train_bundle"]

TRAINING_RECORD = "training_seconds.json"


def train_bundle(bundle_dir: str | os.PathLike, output_dir: str | os.PathLike,
                 overrides: Mapping[str, Any] | None = None, reuse: bool = False,
                 configs: Sequence[str] = ("train.json",)) -> tuple[Path, float | None]:
    """Run ``bundle_dir/configs/train.json`` (or the merged ``configs``) with its outputs in ``output_dir``.

    Args:
        bundle_dir: the bundle (``bundle_root`` is set to it).
        output_dir: the run's ``output_dir``; the published weights go to ``output_dir/model.pt``.
        overrides: further config ids and values, e.g. ``{"max_epochs": 5}``.
        reuse: if ``output_dir/model.pt`` exists, return it without training.
        configs: config file names under ``bundle_dir/configs``, later ones overriding earlier
            ones (e.g. ``("train.json", "train_supervised.json")``).

    Returns:
        ``(weights path, training seconds)``; seconds come from ``training_seconds.json`` when
        reused (None if that record is missing).
    """
    from monai.bundle import ConfigWorkflow

    from medden.bundle.layout import config_file

    bundle_dir, output_dir = Path(bundle_dir), Path(output_dir)
    weights, record = output_dir / "model.pt", output_dir / TRAINING_RECORD
    if reuse and weights.is_file():
        return weights, json.loads(record.read_text())["seconds"] if record.is_file() else None
    settings = {"bundle_root": str(bundle_dir), "output_dir": str(output_dir), "save_model_to": str(weights),
                **dict(overrides or {})}
    config_files = [str(bundle_dir / config_file(name)) for name in configs]
    workflow = ConfigWorkflow(config_file=config_files if len(config_files) > 1 else config_files[0],
                              workflow_type="train", **settings)
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


LABEL_HEIGHT = 14


def _display(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] (C 1 or 3) -> uint8 ``(rows, cols[, 3])`` with W pointing up."""
    image = np.asarray(image, np.float32)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"figure tiles must be (1 or 3, H, W) images, got shape {image.shape}.")
    pixels = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8).transpose(2, 1, 0)[::-1]
    return np.ascontiguousarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def contact_sheet(path: str | os.PathLike, rows: Sequence[Sequence[tuple[str, np.ndarray]]],
                  tile_size: int | None = None, label_chars: int = 34) -> Path:
    """Write a PNG grid of labelled images (written atomically, replacing ``path``).

    Args:
        path: the ``.png`` to write; its folder is created.
        rows: one sequence of ``(label, image)`` per grid row; images are ``(1 or 3, H, W)``
            float arrays in [0, 1] (medden's plane layout), shown with X across and Y up.
        tile_size: resize every tile to this square side; None keeps each at its own size
            (cells are as large as the largest tile).
        label_chars: labels are cut to this many characters.

    Returns:
        ``path``.
    """
    from PIL import Image, ImageDraw

    tiles = [[(label[:label_chars], Image.fromarray(_display(image))) for label, image in row] for row in rows]
    if not any(tiles):
        raise ValueError("contact_sheet needs at least one image.")
    if tile_size is not None:
        tiles = [[(label, tile.resize((tile_size, tile_size))) for label, tile in row] for row in tiles]
    cell_w = max(tile.width for row in tiles for _, tile in row)
    cell_h = max(tile.height for row in tiles for _, tile in row) + LABEL_HEIGHT
    mode = "RGB" if any(tile.mode == "RGB" for row in tiles for _, tile in row) else "L"
    sheet = Image.new(mode, (cell_w * max(len(row) for row in tiles), cell_h * len(tiles)), 0)
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(tiles):
        for c, (label, tile) in enumerate(row):
            sheet.paste(tile.convert(mode), (c * cell_w, r * cell_h + LABEL_HEIGHT))
            draw.text((c * cell_w + 2, r * cell_h + 1), label, fill="white" if mode == "RGB" else 255)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"), overwrite=True)
