"""Factories that assemble MONAI trainers and evaluators with medden's standard handlers.

The step is the only custom piece (:func:`medden.engines.steps.make_train_step`); logging,
TensorBoard, the progress bar, validation, checkpoints and loss schedules are handlers.
:func:`train_recorruption` runs one such trainer with a fixed recipe (benchmarks use it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from ignite.engine import Events
from ignite.handlers import ProgressBar
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import (
    IgniteMetricHandler,
    LrScheduleHandler,
    PeakSignalToNoiseRatio,
    StatsHandler,
    TensorBoardStatsHandler,
    ValidationHandler,
    from_engine,
)
from monai.inferers import Inferer, SimpleInferer
from monai.metrics import SSIMMetric
from monai.utils import CommonKeys

from medden.engines.distributed import is_main_process
from medden.engines.handlers import BEST_MODEL, CheckpointHandler, LossScheduleHandler, ProgressLog, resume_training
from medden.engines.steps import make_prepare_batch, make_train_step
from medden.core.keys import Keys
from medden.core.validation import check_int, check_positive

__all__ = ["LEARNING_RATE", "VAL_PSNR", "VAL_SSIM", "build_evaluator", "build_trainer", "check_fills_a_batch",
           "train_recorruption"]

VAL_PSNR, VAL_SSIM = "val_psnr", "val_ssim"
#: the TensorBoard tag of the learning rate, written once per epoch
LEARNING_RATE = "lr"
_PRED_LABEL = from_engine([CommonKeys.PRED, CommonKeys.LABEL])


def build_evaluator(network: torch.nn.Module, val_loader, device: torch.device | str = "cpu",
                    data_range: float = 1.0, inferer: Inferer | None = None, input_key: str = Keys.INPUT,
                    target_key: str = Keys.CLEAN, spatial_dims: int = 2,
                    network_kwargs: Mapping[str, str] | None = None, metric_prefix: str = "",
                    progress_every: int | None = None) -> SupervisedEvaluator:
    """An evaluator scoring ``network(batch[input_key])`` against ``batch[target_key]``.

    Metrics: ``val_psnr`` (key metric) and ``val_ssim``, both with the explicit
    ``data_range`` (1.0 for images scaled to [0, 1]), named ``metric_prefix + "val_psnr"``
    etc. (a prefix tells apart a second evaluator of the same run, e.g. ``"vae_"``).
    ``inferer`` may be a :class:`~medden.inference.RefinementInferer` to validate the refined
    output, a :class:`~medden.inference.PosteriorMeanInferer` for a VAE, or a sliding window
    for large images. ``network_kwargs`` maps ``forward`` keyword arguments to batch keys
    (see :func:`~medden.engines.make_prepare_batch`). Progress is logged as ``evaluation: i/M
    batches`` every ``progress_every`` batches (default: about ten lines per run;
    :class:`~medden.engines.ProgressLog`), so a long evaluation is not silent.
    """
    data_range = check_positive(data_range, "data_range")
    handlers = [StatsHandler(iteration_log=False)] if is_main_process() else []
    handlers.append(ProgressLog(f"{metric_prefix}evaluation", every=progress_every))
    return SupervisedEvaluator(
        device=torch.device(device), val_data_loader=val_loader, network=network,
        inferer=inferer or SimpleInferer(), prepare_batch=make_prepare_batch(input_key, target_key, network_kwargs),
        key_val_metric={metric_prefix + VAL_PSNR: PeakSignalToNoiseRatio(max_val=data_range,
                                                                         output_transform=_PRED_LABEL)},
        additional_metrics={metric_prefix + VAL_SSIM: IgniteMetricHandler(
            metric_fn=SSIMMetric(spatial_dims=spatial_dims, data_range=data_range), output_transform=_PRED_LABEL)},
        val_handlers=handlers,
    )


def _schedulable(loss) -> list:
    """The loss itself and any weighted terms that follow a training-progress schedule."""
    candidates = [loss, *getattr(loss, "losses", [])]  # WeightedSumLoss keeps its terms in .losses
    return [c for c in candidates if c is not None and hasattr(c, "set_progress")]


def _validate_final_epoch(trainer: SupervisedTrainer, evaluator: SupervisedEvaluator) -> None:
    """Validate the final weights too when ``val_interval`` skipped the last epoch."""
    if evaluator.state.epoch != trainer.state.epoch:
        evaluator.run(trainer.state.epoch)


def build_trainer(network: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_function, train_loader,
                  max_epochs: int, output_dir: str | os.PathLike, device: torch.device | str = "cpu",
                  evaluator: SupervisedEvaluator | None = None, val_interval: int = 1,
                  resume_from: str | os.PathLike | None = None, amp: bool = False, lr_scheduler=None,
                  input_key: str = Keys.INPUT, target_key: str = Keys.TARGET,
                  mask_key: str | None = Keys.TARGET_MASK, progress_bar: bool = True,
                  loss_kwargs: Mapping[str, str] | None = None, iteration_update: Callable | None = None,
                  extra_evaluators: Sequence[SupervisedEvaluator] = (), key_metric: str = VAL_PSNR,
                  key_metric_mode: str = "max", extra_handlers: Sequence = (),
                  epoch_length: int | None = None) -> SupervisedTrainer:
    """A ``SupervisedTrainer`` running medden's step with the standard handlers attached.

    Handlers (on rank 0 where they write): loss to the log (``StatsHandler``); TensorBoard
    (``output_dir/tensorboard``): the step's scalars every iteration, the learning rate
    (``lr``) and every validation metric (``val_psnr``, ``val_ssim``, ...) every epoch; a
    tqdm progress bar, validation every ``val_interval``
    epochs, ``output_dir/last.pt`` after every epoch and ``output_dir/best.pt`` (network
    weights only) whenever ``key_metric`` improves, and loss schedules (annealed L0).

    Args:
        network: already on ``device`` (and wrapped in DDP when distributed).
        loss_function: a medden loss, ``loss(pred, target, mask)``.
        train_loader: batches of dicts with ``input_key``, ``target_key`` and optionally
            ``mask_key``.
        loss_kwargs: further loss arguments read from the batch, see
            :func:`~medden.engines.make_train_step`.
        resume_from: a ``last.pt`` to continue from (network, optimizer, scheduler and epoch).
        lr_scheduler: a ``torch.optim.lr_scheduler`` stepped once per epoch.
        iteration_update: a step other than :func:`~medden.engines.make_train_step` (e.g.
            :func:`~medden.engines.make_vae_direct_step`, whose network computes its own
            losses; ``loss_function`` may then be None). Every scalar the step returns is
            written to TensorBoard.
        extra_evaluators: run with ``evaluator`` every ``val_interval`` epochs; their metrics
            are logged but do not choose ``best.pt`` (give them a ``metric_prefix``).
        key_metric, key_metric_mode: the ``evaluator`` metric choosing ``best.pt`` and
            whether higher (``"max"``) or lower (``"min"``) is better.
        extra_handlers: objects with ``attach(trainer)``, attached last (e.g.
            :class:`~medden.engines.FlowSampleSaver`).
        epoch_length: iterations per epoch; default: one pass over ``train_loader`` (fewer
            make a short run; the loader's iterator then continues across epochs).

    Raises:
        ValueError: ``train_loader`` yields no batch (fewer samples than one batch, with
            ``drop_last``), or ``epoch_length < 1``.
    """
    output_dir = Path(output_dir)
    main = is_main_process()

    def loss_log(output: dict) -> float:
        return float(output[CommonKeys.LOSS])

    def scalars_log(output: dict) -> dict[str, float]:
        return {("train_loss" if key == CommonKeys.LOSS else f"train_{key}"): float(value)
                for key, value in output.items() if isinstance(value, torch.Tensor) and value.ndim == 0}

    check_fills_a_batch(train_loader)
    if epoch_length is not None:
        epoch_length = check_int(epoch_length, "epoch_length", hint="it is how many iterations make one epoch; "
                                                                    "None for one pass over the training data")
    validators = ([evaluator] if evaluator is not None else []) + list(extra_evaluators)
    handlers = []
    if main:
        from torch.utils.tensorboard import SummaryWriter  # as MONAI's TensorBoard handlers, only when used

        writer = SummaryWriter(log_dir=str(output_dir / "tensorboard"))
        handlers += [StatsHandler(tag_name="train_loss", output_transform=loss_log),
                     TensorBoardStatsHandler(summary_writer=writer, output_transform=scalars_log,
                                             epoch_event_writer=_learning_rate_writer(optimizer))]
        for validator in validators:  # their metrics, at the trainer's epoch (ValidationHandler runs them so)
            TensorBoardStatsHandler(summary_writer=writer, iteration_log=False).attach(validator)
    if lr_scheduler is not None:
        handlers.append(LrScheduleHandler(lr_scheduler, print_lr=False))  # after the lr is written for the epoch
    for validator in validators:
        handlers.append(ValidationHandler(validator=validator, interval=val_interval, epoch_level=True))
    trainer = SupervisedTrainer(
        device=torch.device(device), max_epochs=max_epochs, train_data_loader=train_loader, network=network,
        optimizer=optimizer, loss_function=loss_function, inferer=SimpleInferer(), epoch_length=epoch_length,
        iteration_update=iteration_update or make_train_step(input_key, target_key, mask_key, loss_kwargs),
        train_handlers=handlers, amp=amp,
    )
    checkpoints = CheckpointHandler(output_dir, network, optimizer, key_metric if evaluator else None, lr_scheduler,
                                    key_metric_mode)
    checkpoints.attach(trainer, evaluator)
    for validator in validators:
        trainer.add_event_handler(Events.COMPLETED, _validate_final_epoch, validator)
    for schedulable in _schedulable(loss_function):
        LossScheduleHandler(schedulable).attach(trainer)
    for handler in extra_handlers:
        handler.attach(trainer)
    if progress_bar and main:
        ProgressBar(persist=False).attach(trainer, output_transform=lambda out: {"loss": loss_log(out)})
    if main:
        trainer.add_event_handler(Events.COMPLETED, lambda _: writer.close())  # after the final validation
    if resume_from is not None:
        resume_training(resume_from, network, optimizer, trainer, lr_scheduler)
    return trainer


def _learning_rate_writer(optimizer: torch.optim.Optimizer) -> Callable:
    """A ``TensorBoardStatsHandler`` epoch writer of the first parameter group's learning rate, as ``lr``."""

    def write(engine, writer) -> None:
        writer.add_scalar(LEARNING_RATE, optimizer.param_groups[0]["lr"], engine.state.epoch)
        writer.flush()

    return write


def check_fills_a_batch(loader) -> None:
    """Refuse a training loader that yields no batch: fewer samples than one batch, with ``drop_last``.

    Raises:
        ValueError: naming the number of samples, the batch size and what to change.
    """
    try:
        batches = len(loader)
    except TypeError:  # an iterable without a length: it may still yield
        return
    if batches == 0:
        samples = len(loader.dataset) if hasattr(loader, "dataset") else "too few"
        batch_size = getattr(loader, "batch_size", None)
        raise ValueError(
            f"the training data cannot fill one batch: {samples} samples (on this process) for batch_size="
            f"{batch_size}, and incomplete batches are dropped. Lower batch_size (e.g. --batch_size {samples}), "
            "or give more data (more images in dataset_dir, or a larger repeats_per_epoch / patches_per_modality "
            "where the bundle has one).")


def train_recorruption(network: torch.nn.Module, train_loader, val_loader, max_epochs: int,
                       output_dir: str | os.PathLike, device: torch.device | str = "cpu",
                       val_inferer: Inferer | None = None, learning_rate: float = 1e-3,
                       min_learning_rate: float = 1e-5, val_interval: int = 1) -> tuple[Path, float]:
    """Train ``network`` from ``input`` to ``target`` by mean squared error, keeping the best validated weights.

    The recipe of recorruption training (``y' -> y``, every pixel observed): Adam at
    ``learning_rate``, cosine-annealed to ``min_learning_rate`` over ``max_epochs``, validation
    PSNR of ``val_inferer``'s output (e.g. a :class:`~medden.inference.Noisier2NoiseInferer`,
    whose correction makes the ``y' -> y`` network a denoiser) every ``val_interval`` epochs,
    in :func:`build_trainer` without a progress bar.

    Args:
        network: already on ``device``.
        train_loader: batches with ``input`` (``y'``) and ``target`` (``y``), ``(B, C, H, W)``.
        val_loader: batches with ``input`` (noisy) and ``clean``.
        output_dir: where ``last.pt``, ``best.pt`` and TensorBoard logs go.

    Returns:
        ``(output_dir / "best.pt", training seconds)``.
    """
    from medden.losses import MaskedMSELoss

    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs, eta_min=min_learning_rate)
    evaluator = build_evaluator(network, val_loader, device, inferer=val_inferer)
    trainer = build_trainer(network, optimizer, MaskedMSELoss(), train_loader, max_epochs, output_dir, device,
                            evaluator=evaluator, val_interval=val_interval, lr_scheduler=scheduler, mask_key=None,
                            progress_bar=False)
    started = time.perf_counter()
    trainer.run()
    return Path(output_dir) / BEST_MODEL, time.perf_counter() - started
