"""Fine-tuning a trained denoiser on the noisy images themselves, by recorruption, within a
wall-clock budget: the training behind ``medden denoise --fit``.

The pieces, each replaceable:

* data: :func:`r2r_batches`, endless batches of random patches of the slices, each made into a
  Recorrupted-to-Recorrupted pair by :class:`~medden.transforms.R2RPair`;
* step: the supervised step of :func:`~medden.engines.make_train_step` (mean squared error of
  ``f(input)`` against ``target``) in a MONAI ``SupervisedTrainer`` (:func:`build_fit_trainer`);
* handlers: :class:`~medden.engines.LossHistory`, :class:`~medden.engines.TimedSnapshots` and
  :class:`~medden.engines.TimeBudget`, sharing one ``ignite.handlers.Timer``.

:func:`fit_network` puts them together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from ignite.handlers import Timer
from monai.engines import SupervisedTrainer

from medden.core.keys import Keys
from medden.core.noise_estimation import wavelet_noise_sigma
from medden.core.validation import check_int, check_positive
from medden.engines.handlers import LossHistory, TimeBudget, TimedSnapshots
from medden.engines.steps import make_train_step
from medden.losses import MaskedMSELoss
from medden.transforms.recorruption import R2RPair

__all__ = ["FitResult", "build_fit_trainer", "fit_network", "r2r_batches", "random_patch"]

#: epoch length of a run that only its time budget ends
ENDLESS = 2**31 - 1
logger = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What a fit did: iterations run, seconds spent, and the loss every ``log_every`` steps."""

    iterations: int
    seconds: float
    losses: list[float] = field(default_factory=list)


def random_patch(image: np.ndarray, patch: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``(C, patch, patch)`` crop of a ``(C, H, W)`` image (``H, W >= patch``), flipped
    up-down and left-right with probability 1/2 each; draws four numbers from ``rng``."""
    x0 = rng.integers(0, image.shape[1] - patch + 1)
    y0 = rng.integers(0, image.shape[2] - patch + 1)
    crop = image[:, x0 : x0 + patch, y0 : y0 + patch]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop[:, :, ::-1]
    return np.ascontiguousarray(crop)


def r2r_batches(slices: Sequence[np.ndarray], sigmas: Sequence[float], recorrupt: R2RPair, patch: int,
                batch_size: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
    """Endless training batches: random patches of ``slices``, each made into an R2R pair.

    Each patch comes from a slice drawn uniformly (mirror-padded up to ``patch`` first), at a
    random place, randomly flipped (:func:`random_patch`), and is recorrupted with its slice's
    noise level ``sigmas[i]``. Patch positions and flips come from ``rng``, the recorruption
    from ``recorrupt``'s own generator.

    Args:
        slices: ``(1, H, W)`` float32 noisy slices.
        sigmas: the noise std of each slice, in its units.

    Yields:
        ``{"input", "target"}``: ``(batch_size, 1, patch, patch)`` float32 tensors.
    """
    padded = []
    for image in slices:
        pad = [(0, 0)] + [(0, max(patch - n, 0)) for n in image.shape[1:]]
        padded.append(np.pad(image, pad, mode="reflect") if any(p[1] for p in pad) else image)
    while True:
        pairs = []
        for index in rng.integers(0, len(padded), batch_size):
            crop = torch.from_numpy(random_patch(padded[index], patch, rng))
            recorrupt.randomize(crop)  # the slices were checked when their sigma was estimated
            pairs.append(recorrupt.apply(crop, sigmas[index]))
        yield {Keys.INPUT: torch.stack([p.input for p in pairs]), Keys.TARGET: torch.stack([p.target for p in pairs])}


def build_fit_trainer(network: torch.nn.Module, batches: Iterator[dict], learning_rate: float,
                      device: torch.device, iterations: int = ENDLESS) -> SupervisedTrainer:
    """A ``SupervisedTrainer`` over an endless stream of ``{"input", "target"}`` batches.

    Adam at ``learning_rate``, :class:`~medden.losses.MaskedMSELoss` without a mask, the step of
    :func:`~medden.engines.make_train_step`, no decollation. It stops after ``iterations``
    (one epoch of that length; by default practically never) unless a handler stops it first
    (e.g. :class:`~medden.engines.TimeBudget`).
    """
    return SupervisedTrainer(
        device=device, max_epochs=1, train_data_loader=batches, epoch_length=iterations, network=network,
        optimizer=torch.optim.Adam(network.parameters(), lr=learning_rate), loss_function=MaskedMSELoss(),
        iteration_update=make_train_step(mask_key=None), decollate=False,
    )


def fit_network(network: torch.nn.Module, slices: Sequence[np.ndarray], minutes: float, alpha: float = 0.5,
                learning_rate: float = 2e-4, batch_size: int = 8, patch: int = 96, seed: int = 0,
                device: torch.device | str | None = None,
                on_minute: tuple[Sequence[float], Callable[[float, torch.nn.Module], None]] | None = None,
                log_every: int = 25, max_iterations: int | None = None) -> FitResult:
    """Fine-tune ``network`` in place by recorruption (R2R) for ``minutes`` of wall-clock time.

    Args:
        network: a trained denoiser, ``(B, 1, H, W) -> (B, 1, H, W)``; its weights are the
            starting point.
        slices: ``(1, H, W)`` float32 noisy slices scaled to about [0, 1]; the noise level of
            each is estimated once (:func:`~medden.core.noise_estimation.wavelet_noise_sigma`).
        minutes: wall-clock budget; the run stops after the first step past it.
        alpha: recorruption strength (0.5 as in R2R, see :class:`~medden.transforms.R2RPair`).
        patch: side of the square training patches (a multiple of the network's stride).
        seed: seeds the patch positions and the recorruption (never the global generators).
        device: where the batches go; default: the network's device.
        on_minute: ``(times, callback)``: ``callback(t, network)`` once the budget ``t``
            minutes has elapsed, for each ``t`` in ``times`` (:class:`~medden.engines.TimedSnapshots`).
        log_every: iterations between two recorded losses.
        max_iterations: stop after this many iterations if the budget lasts that long (a
            reproducible run, e.g. in tests); None: the budget alone decides.

    Returns:
        :class:`FitResult`. The network is left in eval mode.

    Raises:
        ValueError: ``minutes`` or ``alpha`` not positive, no slices, a non-finite slice, or
            ``patch`` < 2, ``batch_size`` or ``max_iterations`` < 1.
        TypeError: ``patch``, ``batch_size`` or ``max_iterations`` not an int.
    """
    check_positive(minutes, "minutes")
    recorrupt = R2RPair(alpha).set_random_state(seed)
    if len(slices) == 0:
        raise ValueError("no slices to fit on.")
    device = torch.device(device) if device is not None else next(network.parameters()).device
    images = [np.asarray(s, np.float32) for s in slices]
    sigmas = [float(wavelet_noise_sigma(torch.from_numpy(s)[None])[0]) for s in images]
    logger.info("fit: %d slices, estimated noise sigma %.4f (median, scaled units)", len(images), np.median(sigmas))
    batches = r2r_batches(images, sigmas, recorrupt, check_int(patch, "patch", 2), check_int(batch_size, "batch_size"),
                          np.random.default_rng(seed))
    iterations = ENDLESS if max_iterations is None else check_int(max_iterations, "max_iterations")
    trainer = build_fit_trainer(network, batches, learning_rate, device, iterations)
    clock, history = Timer(), LossHistory(log_every)
    snapshots = [TimedSnapshots(on_minute[0], on_minute[1], network, clock)] if on_minute else []
    for handler in (history, *snapshots, TimeBudget(minutes * 60.0, clock)):
        handler.attach(trainer)
    trainer.run()
    network.eval()
    return FitResult(trainer.state.iteration, clock.value(), history.losses)
