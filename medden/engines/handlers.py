"""ignite event handlers: atomic checkpoints (last and best), loss schedules, and the handlers of a
wall-clock-budgeted run (loss history, timed snapshots, time budget)."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ignite.engine import Engine, Events
from ignite.handlers import Timer
from monai.utils import CommonKeys

from medden.engines.distributed import is_main_process
from medden.io.files import atomic_write
from medden.core.validation import check_int, check_positive, check_range
from medden.io.checkpoint import CheckpointError, load_checkpoint, load_network_weights, save_checkpoint

__all__ = ["CheckpointHandler", "LossHistory", "LossScheduleHandler", "ProgressLog", "TimeBudget", "TimedSnapshots",
           "resume_training", "save_metrics"]

LAST_CHECKPOINT = "last.pt"
BEST_MODEL = "best.pt"
logger = logging.getLogger(__name__)


class CheckpointHandler:
    """Save ``last.pt`` after every epoch and ``best.pt`` when the key metric improves.

    ``last.pt`` holds ``{"network", "optimizer", "trainer"}`` state dicts for resuming;
    ``best.pt`` holds only the network's state dict (the bundle's ``models/model.pt`` format).
    Writes are atomic and happen on rank 0 only.

    Args:
        output_dir: folder of the two files.
        network, optimizer: what to save (a DDP wrapper is unwrapped).
        lr_scheduler: saved too, when given.
        metric_name: the evaluator metric that decides "best".
        mode: ``"max"`` (higher is better, e.g. PSNR) or ``"min"`` (e.g. bits per dimension).
    """

    def __init__(self, output_dir: str | os.PathLike, network, optimizer, metric_name: str | None = None,
                 lr_scheduler=None, mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}.")
        self.output_dir = Path(output_dir)
        self.lr_scheduler = lr_scheduler
        self.network = getattr(network, "module", network)
        self.optimizer = optimizer
        self.metric_name = metric_name
        self.sign = 1.0 if mode == "max" else -1.0
        self.best = float("-inf")

    def attach(self, trainer: Engine, evaluator: Engine | None = None) -> None:
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self.save_last)
        if evaluator is not None and self.metric_name is not None:
            evaluator.add_event_handler(Events.COMPLETED, self.save_best)

    def save_last(self, trainer: Engine) -> None:
        if is_main_process():
            state = {"network": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "trainer": trainer.state_dict()}
            if self.lr_scheduler is not None:
                state["lr_scheduler"] = self.lr_scheduler.state_dict()
            save_checkpoint(state, self.output_dir / LAST_CHECKPOINT)

    def save_best(self, evaluator: Engine) -> None:
        value = float(evaluator.state.metrics[self.metric_name])
        if self.sign * value > self.best:
            self.best = self.sign * value
            if is_main_process():
                save_checkpoint(self.network.state_dict(), self.output_dir / BEST_MODEL)
                logger.info("new best %s = %.4f, saved %s", self.metric_name, value, self.output_dir / BEST_MODEL)


def resume_training(path: str | os.PathLike, network, optimizer, trainer: Engine, lr_scheduler=None) -> None:
    """Restore network, optimizer, scheduler and trainer progress from a ``last.pt`` checkpoint.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable, lacking an entry, or saved from another network.
    """
    state = load_checkpoint(path)
    missing = [key for key in ("network", "optimizer", "trainer") if key not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot resume training: it lacks {missing}; "
            f"resume from a {LAST_CHECKPOINT} written by medden's training engine."
        )
    max_epochs = trainer.state.max_epochs
    saved = state["trainer"]
    done = int(saved["epoch"]) if "epoch" in saved else int(saved.get("iteration", 0)) // max(int(saved["epoch_length"]), 1)
    if max_epochs is not None and done >= max_epochs:
        raise ValueError(
            f"checkpoint {str(path)!r} has already trained {done} epochs, and max_epochs is {max_epochs}; "
            "raise max_epochs to train further."
        )
    load_network_weights(network, state, key="network")
    optimizer.load_state_dict(state["optimizer"])
    trainer.load_state_dict(state["trainer"])
    if lr_scheduler is not None and "lr_scheduler" in state:
        lr_scheduler.load_state_dict(state["lr_scheduler"])
    trainer.state.max_epochs = max_epochs  # the new run's goal, not the checkpoint's
    logger.info("resumed from %s at epoch %d", path, trainer.state.epoch)


class LossScheduleHandler:
    """Tell a loss how far training has got, every iteration (e.g. annealed L0's gamma 2 -> 0).

    Args:
        loss: any object with ``set_progress(progress)``, progress in [0, 1].
    """

    def __init__(self, loss) -> None:
        if not hasattr(loss, "set_progress"):
            raise TypeError(f"loss must have set_progress(progress), got {type(loss).__name__}.")
        self.loss = loss

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.ITERATION_STARTED, self)

    def __call__(self, trainer: Engine) -> None:
        total = trainer.state.max_epochs * trainer.state.epoch_length
        self.loss.set_progress(min(1.0, (trainer.state.iteration - 1) / max(total - 1, 1)))


def save_metrics(metrics: dict, path: str | os.PathLike) -> Path:
    """Write a (nested) dict of metric values as JSON, atomically (rank 0 only)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_main_process():
        text = json.dumps(metrics, indent=2, default=float)
        atomic_write(path, lambda tmp: tmp.write_text(text + "\n"), overwrite=True)
    return path


class LossHistory:
    """Keep the training loss every ``every`` iterations, in ``losses`` (Python floats).

    Args:
        every: iterations between two records, int >= 1.
        output_transform: reads the loss from ``engine.state.output`` (default: MONAI's
            ``output["loss"]``, as medden's steps return it).
    """

    def __init__(self, every: int = 1, output_transform: Callable | None = None) -> None:
        self.every = check_int(every, "every")
        self.output_transform = output_transform or (lambda output: output[CommonKeys.LOSS])
        self.losses: list[float] = []

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=self.every), self)

    def __call__(self, trainer: Engine) -> None:
        self.losses.append(float(self.output_transform(trainer.state.output)))


class TimeBudget:
    """Stop training after the first iteration that ends ``seconds`` or more after ``clock`` started.

    Unlike ``ignite.handlers.TimeLimit`` the budget may be a fraction of a second, and the clock
    can be shared with other handlers (e.g. :class:`TimedSnapshots`).

    Args:
        seconds: the wall-clock budget, > 0.
        clock: an ``ignite.handlers.Timer``; default: one started now.
    """

    def __init__(self, seconds: float, clock: Timer | None = None) -> None:
        self.seconds = check_positive(seconds, "seconds")
        self.clock = clock or Timer()

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, trainer: Engine) -> None:
        if self.clock.value() >= self.seconds:
            trainer.terminate()


class TimedSnapshots:
    """Call ``callback(minutes, network)`` once ``minutes`` of wall-clock time have passed, for each of ``times``.

    Checked after every iteration, with the network in eval mode (the next step puts it back in
    train mode). Times the run never reached are called when it ends, with the final network,
    so every snapshot is taken. Benchmarks score ``--fit`` this way.

    Args:
        times: minutes since ``clock`` started, each >= 0.
        callback: ``callback(minutes, network)``.
        network: what the callback receives.
        clock: an ``ignite.handlers.Timer``; default: one started now.
    """

    def __init__(self, times: Sequence[float], callback: Callable[[float, object], None], network,
                 clock: Timer | None = None) -> None:
        self.pending = sorted(check_range(t, "snapshot minutes", 0.0)[0] for t in times)
        self.callback = callback
        self.network = network
        self.clock = clock or Timer()

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self.take_due)
        trainer.add_event_handler(Events.COMPLETED, self.take_rest)

    def take_due(self, trainer: Engine | None = None) -> None:
        """Take the snapshots whose time has come."""
        while self.pending and self.clock.value() >= self.pending[0] * 60.0:
            self._take(self.pending.pop(0))

    def take_rest(self, trainer: Engine | None = None) -> None:
        """Take every snapshot not taken yet."""
        while self.pending:
            self._take(self.pending.pop(0))

    def _take(self, minutes: float) -> None:
        self.network.eval()
        self.callback(minutes, self.network)


class ProgressLog:
    """Log ``NAME: i/M batches (p%), elapsed, about T left`` every ``every`` iterations and at the last one.

    For long runs that are otherwise silent until they end (a full evaluation): the lines go to
    this module's logger at INFO, which a bundle's ``logging.conf`` prints, and are readable in a
    log file (unlike a tqdm bar). Only rank 0 logs.

    Args:
        name: what runs, e.g. ``"evaluation"``.
        every: iterations between two lines, int >= 1; default: about ``lines`` lines per run.
        lines: lines per run when ``every`` is None, int >= 1.
    """

    def __init__(self, name: str = "evaluation", every: int | None = None, lines: int = 10) -> None:
        self.name = name
        self.every = None if every is None else check_int(every, "every")
        self.lines = check_int(lines, "lines")
        self.started = 0.0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def start(self, engine: Engine | None = None) -> None:
        self.started = time.perf_counter()

    def __call__(self, engine: Engine) -> None:
        total = engine.state.epoch_length
        done = (engine.state.iteration - 1) % total + 1 if total else engine.state.iteration
        every = self.every or max(1, math.ceil((total or 1) / self.lines))
        if not is_main_process() or (done % every and done != total):
            return
        elapsed = time.perf_counter() - self.started
        left = f", about {_duration(elapsed / done * (total - done))} left" if total else ""
        of = f"/{total} batches ({100 * done / total:.0f}%)" if total else " batches"
        logger.info("%s: %d%s, %s elapsed%s", self.name, done, of, _duration(elapsed), left)


def _duration(seconds: float) -> str:
    """``75.3`` -> ``'1m15s'``; under a minute ``'12.3s'``."""
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}m{int(rest):02d}s" if minutes else f"{rest:.1f}s"
