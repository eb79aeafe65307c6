"""ignite event handlers: atomic checkpoints (last and best) and loss schedules."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ignite.engine import Engine, Events

from medden.engines.distributed import is_main_process
from medden.io.files import atomic_write
from medden.io.checkpoint import CheckpointError, load_checkpoint, load_network_weights, save_checkpoint

__all__ = ["CheckpointHandler", "LossScheduleHandler", "resume_training", "save_metrics"]

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
