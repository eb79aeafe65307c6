"""Stage 1 of unpaired denoising: maximum-likelihood training of an image flow on clean images.

The step minimises bits per dimension of dequantised clean patches
(:func:`~medden.networks.bits_per_dim`); the evaluator reports ``val_bits_per_dim`` on
held-out clean patches (lower is better, so ``build_trainer(..., key_metric_mode="min")``);
:class:`FlowSampleSaver` writes images drawn from the flow as a PNG grid after each epoch.
Stage 2 is an ordinary :func:`~medden.engines.make_train_step` with
:class:`~medden.losses.FlowPriorLoss` (the noisy input as its own target).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.metrics import Average, MetricsLambda
from monai.engines import SupervisedEvaluator
from monai.handlers import StatsHandler
from monai.utils import CommonKeys

from medden.engines.distributed import is_main_process
from medden.engines.handlers import ProgressLog
from medden.engines.steps import optimiser_step, to_engine_device
from medden.io.files import atomic_write
from medden.core.keys import Keys
from medden.core.validation import check_number
from medden.networks.flow import dequantized_bits_per_dim

__all__ = ["VAL_BITS_PER_DIM", "FlowSampleSaver", "build_flow_evaluator", "make_flow_step"]

VAL_BITS_PER_DIM = "val_bits_per_dim"
BITS_PER_DIM = "bits_per_dim"
logger = logging.getLogger(__name__)


def make_flow_step(input_key: str = Keys.CLEAN, n_bins: int = 256, noise_std: float = 0.0) -> Callable:
    """Build the ``iteration_update`` training a flow by maximum likelihood.

    ``batch[input_key]`` (clean ``(B, C, H, W)`` patches in [0, 1]) is dequantised to
    ``n_bins`` levels and the network (an :class:`~medden.networks.ImageFlow`, called through
    its ``forward`` so DDP synchronises gradients) gives log densities; the loss is their mean
    bits per dimension. Mixed precision follows ``engine.amp``.

    ``noise_std > 0`` adds Gaussian noise of that std to every patch first, so the flow
    learns the clean density smoothed at that scale: a prior whose gradient is better behaved
    away from the clean images, where a denoiser's outputs start.

    Returns:
        ``step(engine, batch) -> dict`` with MONAI's ``image`` and ``loss`` (bits/dim, detached).
    """
    noise_std = check_number(noise_std, "noise_std", 0.0, hint="use 0 for no extra noise")

    def step(engine, batch: dict) -> dict:
        images = to_engine_device(batch[input_key], engine)
        if noise_std > 0:
            images = images + noise_std * torch.randn_like(images)
        out = optimiser_step(engine, lambda: {
            CommonKeys.LOSS: dequantized_bits_per_dim(engine.network, images, n_bins).mean()})
        return {CommonKeys.IMAGE: images, CommonKeys.LOSS: out[CommonKeys.LOSS].detach()}

    return step


def build_flow_evaluator(network: torch.nn.Module, val_loader, device: torch.device | str = "cpu",
                         input_key: str = Keys.CLEAN, n_bins: int = 256, seed: int = 0) -> SupervisedEvaluator:
    """An evaluator reporting ``val_bits_per_dim``: the mean bits per dimension of
    ``batch[input_key]`` (held-out clean images). The dequantisation noise of iteration ``i``
    is seeded by ``(seed, i)``, so every validation sees the same draws."""

    def step(engine, batch: dict) -> dict:
        images = to_engine_device(batch[input_key], engine)
        generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + engine.state.iteration)
        engine.network.eval()
        with torch.no_grad():
            bits = dequantized_bits_per_dim(engine.network, images, n_bins, generator)
        return {CommonKeys.IMAGE: images, BITS_PER_DIM: bits}

    # Average sums a (B, 1) batch over images; a (B,) one would be taken as one vector
    per_image_mean = Average(output_transform=lambda out: out[BITS_PER_DIM][:, None])
    handlers = [StatsHandler(iteration_log=False)] if is_main_process() else []
    handlers.append(ProgressLog("flow evaluation"))
    return SupervisedEvaluator(
        device=torch.device(device), val_data_loader=val_loader, network=network, iteration_update=step,
        key_val_metric={VAL_BITS_PER_DIM: MetricsLambda(float, per_image_mean)}, val_handlers=handlers,
        metric_cmp_fn=lambda current, best: best < 0 or current < best,  # MONAI starts best at -1
    )


def _grid(images: np.ndarray, columns: int) -> np.ndarray:
    """``(N, 1, H, W)`` values in [0, 1] -> one ``(rows * H, columns * W)`` uint8 mosaic."""
    n, _, height, width = images.shape
    rows = -(-n // columns)
    mosaic = np.zeros((rows * height, columns * width), np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        mosaic[r * height:(r + 1) * height, c * width:(c + 1) * width] = image[0]
    return np.round(np.clip(mosaic, 0.0, 1.0) * 255).astype(np.uint8)


class FlowSampleSaver:
    """Write ``n_samples`` images drawn from the flow as ``output_dir/samples/epoch_NNNN.png``
    (a grey mosaic, values clipped to [0, 1]) every ``interval`` epochs, on rank 0.

    The same latent seed is used every time, so the PNGs show one set of samples sharpening
    as training proceeds. Single-channel flows only (the mosaic is grey).

    Args:
        network: the :class:`~medden.networks.ImageFlow` being trained (DDP is unwrapped).
        output_dir: run folder; PNGs go to its ``samples/`` sub-folder.
        size: ``(H, W)`` of each sample, a multiple of ``2 ** levels``.
        n_samples: images per mosaic (8 per row).
        temperature: latent std scale; below 1 gives cleaner, less varied samples.
        interval: epochs between mosaics.
    """

    def __init__(self, network: torch.nn.Module, output_dir: str | os.PathLike, size: tuple[int, int],
                 n_samples: int = 16, temperature: float = 0.7, interval: int = 1, seed: int = 0) -> None:
        self.flow = getattr(network, "module", network)
        if getattr(self.flow, "in_channels", 1) != 1:
            raise ValueError(f"FlowSampleSaver writes grey mosaics; the flow has {self.flow.in_channels} channels.")
        self.folder = Path(output_dir) / "samples"
        self.size, self.n_samples = tuple(size), int(n_samples)
        self.temperature, self.interval, self.seed = float(temperature), int(interval), int(seed)

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def __call__(self, trainer: Engine) -> Path | None:
        if not is_main_process():
            return None
        was_training = self.flow.training
        self.flow.eval()
        samples = self.flow.sample(self.n_samples, self.size, self.temperature,
                                   torch.Generator().manual_seed(self.seed))
        self.flow.train(was_training)
        from PIL import Image

        pixels = _grid(samples.float().cpu().numpy(), columns=min(8, self.n_samples))
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"epoch_{trainer.state.epoch:04d}.png"
        atomic_write(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"), overwrite=True)
        logger.info("flow samples written to %s", path)
        return path
