"""ignite/MONAI engines: the training steps, trainer/evaluator factories, handlers, distributed helpers,
and the self-supervised fine-tuning of ``medden denoise --fit`` on its own input (fit_pairs, input_fit)."""

from medden.engines.distributed import (
    cleanup,
    default_device,
    init_distributed,
    is_distributed,
    is_main_process,
    make_loader,
    wrap_ddp,
)
from medden.engines.flow import VAL_BITS_PER_DIM, FlowSampleSaver, build_flow_evaluator, make_flow_step
from medden.engines.handlers import (
    CheckpointHandler,
    LossHistory,
    LossScheduleHandler,
    TimeBudget,
    TimedSnapshots,
    resume_training,
    save_metrics,
)
from medden.engines.fit_pairs import (
    FitPairs,
    NeighbourSlicePairs,
    RecorruptionPairs,
    choose_fit_pairs,
    held_out_loss,
    held_out_tiles,
)
from medden.engines.input_fit import FitResult, HeldOutSelection, build_fit_trainer, choose_snapshot, fit_network
from medden.engines.steps import make_noise_map_step, make_prepare_batch, make_train_step, make_vae_direct_step
from medden.engines.workflows import (
    LEARNING_RATE,
    VAL_PSNR,
    VAL_SSIM,
    build_evaluator,
    build_trainer,
    check_fills_a_batch,
    train_recorruption,
)

__all__ = [
    "CheckpointHandler",
    "FitResult",
    "FlowSampleSaver",
    "LossHistory",
    "TimeBudget",
    "TimedSnapshots",
    "build_fit_trainer",
    "fit_network",
    "FitPairs",
    "NeighbourSlicePairs",
    "RecorruptionPairs",
    "HeldOutSelection",
    "choose_fit_pairs",
    "choose_snapshot",
    "held_out_loss",
    "held_out_tiles",
    "VAL_BITS_PER_DIM",
    "build_flow_evaluator",
    "make_flow_step",
    "LossScheduleHandler",
    "LEARNING_RATE",
    "check_fills_a_batch",
    "VAL_PSNR",
    "VAL_SSIM",
    "build_evaluator",
    "build_trainer",
    "cleanup",
    "default_device",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "make_loader",
    "make_noise_map_step",
    "make_prepare_batch",
    "make_train_step",
    "make_vae_direct_step",
    "resume_training",
    "save_metrics",
    "train_recorruption",
    "wrap_ddp",
]
