"""Fine-tuning a trained denoiser on the noisy input itself, within a wall-clock budget, never ending
worse than it started: the training behind ``medden denoise --fit``.

The pieces, each replaceable:

* data: a :class:`~medden.engines.fit_pairs.FitPairs` scheme (neighbour slices for volumes,
  recorruption for single images), endless masked batches and fixed held-out slices;
* step: the supervised step of :func:`~medden.engines.make_train_step` (masked mean squared
  error) in a MONAI ``SupervisedTrainer`` (:func:`build_fit_trainer`);
* handlers: :class:`HeldOutSelection` (the held-out loss curve, the best snapshot, early
  stopping), :class:`~medden.engines.LossHistory`, :class:`~medden.engines.TimedSnapshots` and
  :class:`~medden.engines.TimeBudget`, sharing one ``ignite.handlers.Timer``.

:func:`fit_network` puts them together and ends with the choice: the best snapshot replaces the
base weights only when its held-out loss is lower than the base model's by more than twice the
standard error of the per-tile differences; otherwise the base weights are restored exactly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Timer
from monai.engines import SupervisedTrainer

from medden.core.keys import Keys
from medden.core.validation import check_int, check_positive
from medden.engines.fit_pairs import FitPairs, HeldOutItem, held_out_loss
from medden.engines.handlers import LossHistory, TimeBudget, TimedSnapshots
from medden.engines.steps import make_train_step
from medden.losses import MaskedMSELoss

__all__ = ["CHOICE_STANDARD_ERRORS", "ENDLESS", "MIN_HELD_OUT_TILES", "FitProgress", "FitResult", "HeldOutSelection",
           "build_fit_trainer", "choose_snapshot", "fit_network"]

#: epoch length of a run that only its time budget ends
ENDLESS = 2**31 - 1
#: a snapshot must beat the base by this many standard errors of the per-tile loss differences
CHOICE_STANDARD_ERRORS = 2.0
#: fewest held-out tiles on which a snapshot may be judged better than the base
MIN_HELD_OUT_TILES = 8
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitProgress:
    """A fit's state after a held-out evaluation, sent to ``fit_network``'s ``progress`` callback.

    Attributes:
        seconds: wall-clock seconds since the fit started.
        seconds_left: what is left of the budget (the fit may stop earlier).
        iteration: training steps so far.
        loss: the held-out loss just measured; ``base_loss`` the base model's, ``best_loss`` the lowest yet.
    """

    seconds: float
    seconds_left: float
    iteration: int
    loss: float
    base_loss: float
    best_loss: float


@dataclass
class FitResult:
    """What a fit did and chose.

    Attributes:
        iterations, seconds: training steps run and wall-clock seconds spent (held-out
            evaluations included).
        losses: the training loss every ``log_every`` steps.
        curve: ``(seconds, iteration, held-out loss)`` at every evaluation; the first is the
            base model (iteration 0).
        best_iteration, best_seconds, best_loss: the best snapshot's.
        chosen: ``"fitted"`` (the best snapshot) or ``"base"`` (the weights it started with).
        reason: why, with the numbers.
        stopped: ``"budget"``, ``"no improvement"`` or ``"iterations"``.
        scheme: the self-supervised scheme's description (:meth:`FitPairs.describe`).
    """

    iterations: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    curve: list[tuple[float, int, float]] = field(default_factory=list)
    best_iteration: int = 0
    best_seconds: float = 0.0
    best_loss: float = float("nan")
    chosen: str = "base"
    reason: str = ""
    stopped: str = "budget"
    scheme: dict = field(default_factory=dict)

    def report(self) -> dict:
        """The fit as plain JSON types (the ``fit_report.json`` of a fitted bundle)."""
        return {"chosen": self.chosen, "reason": self.reason, "stopped": self.stopped,
                "iterations": self.iterations, "seconds": round(self.seconds, 2),
                "best_snapshot": {"iteration": self.best_iteration, "seconds": round(self.best_seconds, 2),
                                  "held_out_loss": self.best_loss if math.isfinite(self.best_loss) else None},
                "held_out_curve": [{"seconds": round(s, 2), "iteration": i, "loss": v} for s, i, v in self.curve],
                "scheme": self.scheme}


def choose_snapshot(base_tiles: np.ndarray, best_tiles: np.ndarray,
                    standard_errors: float = CHOICE_STANDARD_ERRORS) -> tuple[bool, str]:
    """Whether the best snapshot's per-tile held-out losses beat the base's, and why.

    The snapshot wins when the mean per-tile difference (snapshot - base) is below minus
    ``standard_errors`` standard errors of that mean (a paired test over the same tiles), and
    there are at least :data:`MIN_HELD_OUT_TILES` tiles.
    """
    diff = np.asarray(best_tiles, np.float64) - np.asarray(base_tiles, np.float64)
    mean = float(diff.mean())
    error = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
    base, best = float(np.mean(base_tiles)), float(np.mean(best_tiles))
    numbers = (f"held-out loss {best:.4g} vs base {base:.4g} ({100 * mean / max(base, 1e-30):+.2f} %, "
               f"{diff.size} tiles, standard error {100 * error / max(base, 1e-30):.2f} %)")
    if diff.size < MIN_HELD_OUT_TILES:
        return False, f"base model kept (fewer than {MIN_HELD_OUT_TILES} held-out tiles to judge by): " + numbers
    if mean < -standard_errors * error and mean < 0:
        return True, "fitted model kept: " + numbers
    return False, f"base model kept (not better by {standard_errors:g} standard errors): " + numbers


class HeldOutSelection:
    """Track the held-out loss every ``every_seconds``, keep the best weights, stop when it stalls.

    Attaches to a trainer: at ``STARTED`` it scores the base weights, then after the first
    iteration past each ``every_seconds`` mark, and once more when the run ends (budget or
    iterations), scores the network again, keeps a copy of its state when the loss is the
    lowest so far, and terminates the run after ``patience`` evaluations without a new best.

    Args:
        network: the module being trained.
        items: the fixed held-out slices (:meth:`FitPairs.held_out_items`).
        every_seconds: time between evaluations, > 0.
        patience: evaluations without improvement before stopping, >= 1.
        clock: the run's shared ``ignite.handlers.Timer``.
        device: where the network runs.
        on_score: called with ``(seconds, iteration, loss, base loss, best loss)`` after each evaluation.
    """

    def __init__(self, network: torch.nn.Module, items: Sequence[HeldOutItem], every_seconds: float, patience: int,
                 clock: Timer, device: torch.device | str = "cpu",
                 on_score: Callable[[float, int, float, float, float], None] | None = None) -> None:
        self.network, self.items, self.clock, self.device = network, list(items), clock, device
        self.on_score = on_score
        self.every = check_positive(every_seconds, "every_seconds")
        self.patience = check_int(patience, "patience")
        self.curve: list[tuple[float, int, float]] = []
        self.base_tiles = self.best_tiles = np.empty(0)
        self.best_state: dict | None = None
        self.best_iteration, self.best_seconds, self.stale, self.stopped_early = 0, 0.0, 0, False
        self._next = self.every

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.STARTED, self.score_base)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self.maybe_score)
        trainer.add_event_handler(Events.TERMINATE, self.score_last)
        trainer.add_event_handler(Events.COMPLETED, self.score_last)

    def _score(self, iteration: int) -> np.ndarray:
        tiles = held_out_loss(self.network, self.items, self.device)
        self.curve.append((self.clock.value(), iteration, float(tiles.mean())))
        return tiles

    def _notify(self) -> None:
        if self.on_score is not None:
            seconds, iteration, loss = self.curve[-1]
            self.on_score(seconds, iteration, loss, float(self.base_tiles.mean()), float(self.best_tiles.mean()))

    def score_base(self, trainer: Engine | None = None) -> None:
        """Score the weights the fit starts from (the base model)."""
        self.base_tiles = self.best_tiles = self._score(0)
        self._next = self.clock.value() + self.every
        self._notify()

    def score_last(self, trainer: Engine) -> None:
        """Score the final weights too, unless they were just scored."""
        if not self.stopped_early and self.curve and self.curve[-1][1] != trainer.state.iteration:
            self._consider(trainer)

    def maybe_score(self, trainer: Engine) -> None:
        """Score the network if an evaluation is due; keep it if best; stop after ``patience`` stale ones."""
        if self.clock.value() < self._next:
            return
        self._next = self.clock.value() + self.every
        self._consider(trainer)

    def _consider(self, trainer: Engine) -> None:
        tiles = self._score(trainer.state.iteration)
        if tiles.mean() < self.best_tiles.mean():
            self.best_tiles, self.stale = tiles, 0
            self.best_state = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
            self.best_iteration, self.best_seconds = trainer.state.iteration, self.curve[-1][0]
        else:
            self.stale += 1
            if self.stale >= self.patience:
                self.stopped_early = True
                trainer.terminate()
        self._notify()


def build_fit_trainer(network: torch.nn.Module, batches, learning_rate: float, device: torch.device,
                      iterations: int = ENDLESS, warmup: int = 0) -> SupervisedTrainer:
    """A ``SupervisedTrainer`` over an endless stream of ``{"input", "target", "target_mask"}`` batches.

    Adam at ``learning_rate`` (rising linearly from ``learning_rate / warmup`` over the first
    ``warmup`` iterations: Adam's first steps move every weight by about the learning rate,
    which knocks a trained network off its optimum), :class:`~medden.losses.MaskedMSELoss`
    over the target mask, the step of :func:`~medden.engines.make_train_step`, no decollation.
    It stops after ``iterations`` (one epoch of that length; by default practically never)
    unless a handler stops it first.
    """
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    trainer = SupervisedTrainer(
        device=device, max_epochs=1, train_data_loader=batches, epoch_length=iterations, network=network,
        optimizer=optimizer, loss_function=MaskedMSELoss(), iteration_update=make_train_step(mask_key=Keys.TARGET_MASK),
        decollate=False,
    )
    if warmup > 0:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda engine: scheduler.step())
    return trainer


def fit_network(network: torch.nn.Module, pairs: FitPairs, minutes: float, learning_rate: float = 2e-4,
                batch_size: int = 8, patch: int = 96, seed: int = 0, device: torch.device | str | None = None,
                evaluations: int = 20, patience: int = 100, warmup: int = 100,
                on_minute: tuple[Sequence[float], Callable[[float, torch.nn.Module], None]] | None = None,
                log_every: int = 25, max_iterations: int | None = None, skip_reason: str | None = None,
                progress: Callable[[FitProgress], None] | None = None) -> FitResult:
    """Fine-tune ``network`` on ``pairs`` for at most ``minutes``; keep the result only if it is better.

    The held-out loss is measured on the base weights first, then about ``evaluations`` times
    over the budget (never more often than every 3 s: each costs a few whole-slice passes, and
    a budget under 3 s keeps the base model); the run stops at
    the budget, after ``patience`` evaluations without a new best, or after ``max_iterations``.
    The network ends with the best snapshot's weights if :func:`choose_snapshot` says it beats
    the base, else with the base weights, restored exactly.

    Args:
        network: a trained denoiser taking ``pairs``' inputs; its weights are the starting point.
        pairs: the scheme (:func:`~medden.engines.fit_pairs.choose_fit_pairs`).
        minutes: wall-clock budget, evaluations included.
        learning_rate: Adam's, after a linear ``warmup`` over that many iterations, then constant.
        patch: side of the square training patches.
        seed: seeds the patch positions and draws (never the global generators).
        device: where it runs; default: the network's device.
        on_minute: ``(times, callback)``: ``callback(t, network)`` at ``t`` minutes (the weights
            being trained, not the choice), for benchmarks.
        log_every: iterations between two recorded training losses.
        max_iterations: stop after this many iterations (a reproducible run, e.g. in tests).
        skip_reason: why the held-out loss cannot be trusted on this input
            (:func:`~medden.engines.fit_pairs.untrusted_noise`); given, nothing is trained and
            the base model is kept with that reason.
        progress: called with a :class:`FitProgress` after every held-out evaluation (the
            first is the base model's).

    Returns:
        :class:`FitResult`. The network is left in eval mode.
    """
    check_positive(minutes, "minutes")
    if skip_reason:
        logger.info("fit: base model kept without fitting: %s", skip_reason)
        network.eval()
        return FitResult(0, 0.0, chosen="base", reason=f"base model kept without fitting: {skip_reason}",
                         stopped="not fitted", scheme=pairs.describe())
    clock = Timer()
    device = torch.device(device) if device is not None else next(network.parameters()).device
    base_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    iterations = ENDLESS if max_iterations is None else check_int(max_iterations, "max_iterations")
    batches = pairs.batches(check_int(patch, "patch", 2), check_int(batch_size, "batch_size"),
                            np.random.default_rng(seed))
    trainer = build_fit_trainer(network, batches, learning_rate, device, iterations, warmup)
    budget = minutes * 60.0
    on_score = None if progress is None else (
        lambda seconds, iteration, loss, base, best: progress(FitProgress(seconds, budget - seconds, iteration, loss,
                                                                          base, best)))
    selection = HeldOutSelection(network, pairs.held_out_items(), max(3.0, budget / evaluations), patience,
                                 clock, device, on_score)
    history = LossHistory(log_every)
    snapshots = [TimedSnapshots(on_minute[0], on_minute[1], network, clock)] if on_minute else []
    for handler in (selection, history, *snapshots, TimeBudget(budget, clock)):
        handler.attach(trainer)
    trainer.run()
    scheme = pairs.describe()
    keep, reason = (choose_snapshot(selection.base_tiles, selection.best_tiles) if selection.best_state is not None
                    else (False, "base model kept: no snapshot improved the held-out loss"))
    network.load_state_dict(selection.best_state if keep else base_state)
    network.eval()
    stopped = ("no improvement" if selection.stopped_early else
               "iterations" if trainer.state.iteration >= iterations else "budget")
    logger.info("fit: %s; %d iterations, %.0f s, stopped by %s", reason, trainer.state.iteration, clock.value(),
                stopped)
    return FitResult(trainer.state.iteration, clock.value(), history.losses, selection.curve,
                     selection.best_iteration, selection.best_seconds, float(selection.best_tiles.mean()),
                     "fitted" if keep else "base", reason, stopped, scheme)
