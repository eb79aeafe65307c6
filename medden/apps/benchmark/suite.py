"""The whole benchmark behind ``medden benchmark``: train (or reuse) the supervised networks,
score everything, write the page.

Full mode trains, with bundle ``supervised_baseline`` and clean targets, every network of the
supervised zoo on Gaussian noise (the seed's comparison, one budget for all) and the
clean-target upper bound (:data:`UPPER_BOUND`, the residual U-Net medden's own bundles use)
on each of the other noises; runs are cached under ``runs_dir`` and reused. Quick mode scores
every modality and noise too, but one brain MR slice instead of three, skips the training and
uses the shipped ``supervised_baseline`` model (Gaussian noise only) for the supervised rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from medden.apps.benchmark.report import write_results
from medden.apps.benchmark.runner import BenchmarkSettings, run_benchmark, supervised_method, train_supervised

__all__ = ["UPPER_BOUND", "UPPER_BOUND_TRAINING", "ZOO", "ZOO_TRAINING", "run_suite", "supervised_runs"]

#: the network of the clean-target upper bound on every noise (that of medden's own bundles)
UPPER_BOUND = ("fast_resunet", {"channels": [16, 32, 64, 128]})
#: the upper bound's training: 20 epochs x 200 patches per modality (1,250 steps)
UPPER_BOUND_TRAINING = {"max_epochs": 20, "patches_per_modality": 200, "val_interval": 5}
#: the supervised zoo compared on Gaussian noise: name -> constructor arguments (CPU-sized)
ZOO = {
    "autoencoder": {"features": [32, 64, 128]},
    "dncnn": {"depth": 12, "features": 48},
    "ridnet": {"features": 32, "n_blocks": 2},
    "cbdnet": {"features": [32, 64, 128], "convs": [2, 2, 3]},
    "pridnet": {"features": 8, "level_channels": [16, 32, 64]},
    "fast_resunet": {"channels": [16, 32, 64, 128]},
}
#: one budget for every zoo network: 16 epochs x 96 patches per modality (480 steps)
ZOO_TRAINING = {"max_epochs": 16, "patches_per_modality": 96, "val_interval": 4}


def supervised_runs(noises: tuple[str, ...]) -> list[tuple[str, str, str, dict, dict]]:
    """The supervised runs full mode needs: ``(run name, label, noise, network kwargs override,
    training override)``; the network is ``override["network_name"]``."""
    runs = []
    if "gaussian" in noises:
        for network, kwargs in ZOO.items():
            runs.append((f"zoo_{network}_gaussian", f"supervised {network}", "gaussian",
                         {"network_name": network, "network_kwargs": kwargs}, ZOO_TRAINING))
    network, kwargs = UPPER_BOUND
    for noise in noises:
        runs.append((f"upper_bound_{noise}", f"supervised upper bound ({network})", noise,
                     {"network_name": network, "network_kwargs": kwargs}, UPPER_BOUND_TRAINING))
    return runs


def run_suite(output_dir: str | os.PathLike, quick: bool = False, runs_dir: str | os.PathLike = "runs/benchmark",
              train: bool = True, settings: BenchmarkSettings | None = None, log=print,
              progress: Callable[[int, int], None] | None = None) -> dict:
    """Run the benchmark and write ``output_dir/README.md``, ``benchmark.json`` and figures.

    Args:
        output_dir: where the page goes (``docs/results`` for the published one).
        quick: no training: the shipped supervised model (Gaussian noise only) stands in for the
            trained ones; with default ``settings``, one brain MR slice instead of three.
        runs_dir: cache of the supervised training runs.
        train: in full mode, train missing supervised runs (False: use only cached ones).
        settings: override the scored images/noises/methods (tests).
        log: receives each status line (training runs, ``case N/M: ...``, one per method scored).
        progress: ``progress(cases done, cases)`` after each (image, noise) case.

    Returns:
        The results (see :func:`~medden.apps.benchmark.runner.run_benchmark`) with ``training``:
        seconds and settings of each supervised run.
    """
    from medden.apps.benchmark.methods import bundle_method

    settings = settings or BenchmarkSettings(brain_slices=1 if quick else 3)
    settings.extra = {**settings.extra, "quick": quick}
    noises = tuple(settings.noises)
    extra, training = [], {}
    if quick:
        if "gaussian" in noises:
            extra.append(bundle_method("supervised_baseline", "supervised (shipped model)", ("gaussian",),
                                       kind="supervised"))
    else:
        for run_name, label, noise, network, budget in supervised_runs(noises):
            weights, seconds = _trained(Path(runs_dir) / run_name, noise, {**network, **budget}, train, log)
            if weights is not None:
                training[run_name] = {"seconds": seconds, **network, **budget}
                extra.append(supervised_method(label, (noise,), weights, {**network, "noise": noise}))
        settings.extra["notes"] = [
            "Supervised rows: bundle `supervised_baseline` trained with clean targets on the same mixed-modality "
            "training images as `general_denoiser` (64 x 64 patches, batch 16, Adam 1e-3, cosine schedule), on this "
            "CPU; training seconds are in benchmark.json. The zoo (`supervised <network>`) is compared on Gaussian "
            f"noise with one budget, {ZOO_TRAINING['max_epochs']} epochs x {ZOO_TRAINING['patches_per_modality']} "
            "patches per modality; the upper bound (`supervised upper bound`, the residual U-Net of medden's own "
            f"bundles) is trained on every noise for {UPPER_BOUND_TRAINING['max_epochs']} epochs x "
            f"{UPPER_BOUND_TRAINING['patches_per_modality']} patches per modality.",
        ]
    results = run_benchmark(settings, extra_methods=extra, log=log, progress=progress)
    results["training"] = training
    write_results(results, output_dir)
    return results


def _trained(run_dir: Path, noise: str, overrides: dict, train: bool, log):
    if (run_dir / "model.pt").is_file() or train:
        log(f"{run_dir.name}: {'cached' if (run_dir / 'model.pt').is_file() else 'training'} ...")
        return train_supervised(noise, run_dir, overrides, reuse=True)
    log(f"no cached run {run_dir}; skipped")
    return None, None
