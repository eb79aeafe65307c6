"""Run the benchmark: every method on every (modality, noise) case, scored and timed.

:func:`run_benchmark` returns plain data (JSON-ready); :mod:`medden.apps.benchmark.report` turns
it into tables and figures. :func:`train_supervised` trains (or reuses) the clean-target
upper bounds with bundle ``supervised_baseline``.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from medden.apps.benchmark.cases import NOISES, make_case
from medden.apps.benchmark.methods import Method, anchor_methods, bundle_method, shipped_methods
from medden.data.modalities import BENCHMARK_MODALITIES, centre_window

__all__ = ["SLICE_PIXELS", "BenchmarkSettings", "run_benchmark", "supervised_method", "train_supervised"]

#: timings are reported per 256 x 256 slice: seconds scaled by this over the image's pixel count
SLICE_PIXELS = 256 * 256
SUPERVISED_BUNDLE = "supervised_baseline"


@dataclass
class BenchmarkSettings:
    """What to run.

    Attributes:
        modalities: a subset of :data:`~medden.data.modalities.BENCHMARK_MODALITIES`.
        noises: a subset of :data:`~medden.apps.benchmark.cases.NOISES`.
        brain_slices: MNI test slices scored for brain MR (1 in quick mode).
        seed: base seed of the noise draws (each case derives its own from it).
        include_bm3d: BM3D costs seconds per slice; quick runs may skip it.
        shipped: score the shipped medden bundles.
        crop: score only the central ``crop`` x ``crop`` window of each image (tests).
        figure_images: keep outputs of the first image of each modality for figures.
    """

    modalities: Sequence[str] = BENCHMARK_MODALITIES
    noises: Sequence[str] = tuple(NOISES)
    brain_slices: int = 3
    seed: int = 0
    include_bm3d: bool = True
    shipped: bool = True
    crop: int | None = None
    figure_images: bool = True
    extra: dict = field(default_factory=dict)


def train_supervised(noise: str, run_dir: str | os.PathLike, overrides: dict | None = None,
                     reuse: bool = True) -> tuple[Path, float | None]:
    """Train bundle ``supervised_baseline`` with clean targets on ``noise`` (or reuse a run).

    Args:
        noise: a key of :data:`~medden.apps.benchmark.cases.NOISES`.
        run_dir: the run's output folder; the weights go to ``run_dir/model.pt``.
        overrides: further config values (``network_name``, ``network_kwargs``, ``max_epochs``, ...).
        reuse: return an earlier run's ``model.pt`` if it exists.

    Returns:
        ``(weights, training seconds)`` (see :func:`~medden.apps.benchmark.helpers.train_bundle`).
    """
    from medden.apps.benchmark.helpers import train_bundle
    from medden.bundle import resolve_bundle

    return train_bundle(resolve_bundle(SUPERVISED_BUNDLE), run_dir, {"noise": noise, **(overrides or {})}, reuse=reuse)


def supervised_method(label: str, noises: Sequence[str], weights: str | os.PathLike,
                      overrides: dict | None = None) -> Method:
    """A trained ``supervised_baseline`` network as a benchmark row (kind ``"supervised"``)."""
    return bundle_method(SUPERVISED_BUNDLE, label, tuple(noises), kind="supervised",
                         overrides={"model_path": str(weights), **(overrides or {})})


def _noisy_method(noises: Sequence[str]) -> Method:
    return Method("noisy input", "input", lambda case: case.noisy, tuple(noises))


def _crop(image: np.ndarray, size: int | None) -> np.ndarray:
    return image if size is None else centre_window(image, size)


def _model_size(network) -> tuple[int | None, int | None]:
    if network is None:
        return None, None
    from medden.networks import count_parameters, model_size_bytes

    return count_parameters(network), model_size_bytes(network)


def _score(method: Method, case, structures) -> tuple[dict, np.ndarray]:
    from medden.apps.benchmark.helpers import image_scores
    from medden.metrics.fidelity import contrast_to_noise, method_noise_correlation

    started = time.perf_counter()
    output = np.asarray(method.run(case), np.float32)
    seconds = time.perf_counter() - started
    if output.shape != case.clean.shape:
        raise ValueError(f"{method.name} returned shape {output.shape} for a {case.clean.shape} image.")
    psnr_db, ssim_value = image_scores(output, case.clean)
    pixels = case.clean.shape[1] * case.clean.shape[2]
    record = {"modality": case.modality, "image": case.image_name, "noise": case.noise.key, "method": method.name,
              "kind": method.kind, "psnr": psnr_db, "ssim": ssim_value,
              "seconds_per_slice": seconds * SLICE_PIXELS / pixels,
              "method_noise_corr": method_noise_correlation(case.noisy, output, case.clean),
              **contrast_to_noise(output, case.clean, structures)}
    return record, output


def run_benchmark(settings: BenchmarkSettings, methods: Sequence[Method] | None = None,
                  extra_methods: Sequence[Method] = (), log=print,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Score ``methods`` (default: noisy input, the classical anchors and, if
    ``settings.shipped``, the shipped bundles) plus ``extra_methods`` on every case.

    A case is one (image, noise); ``log`` gets a ``case N/M: <modality> <noise>`` line as each
    starts and a line per method scored, and ``progress(cases done, cases)`` is called after each.

    Returns:
        ``{"settings", "environment", "records": [...], "references": [...], "figures":
        {modality: {noise: [(label, image), ...]}}, "methods": {name: {kind, parameters,
        size_bytes}}}``: one record per (image, noise, method) with PSNR (dB), SSIM, seconds
        per 256 x 256 slice, method-noise correlation and the CNR measures
        (:mod:`medden.metrics.fidelity`); ``references`` hold each case's ideal-output fidelity
        (``corr(noisy - clean, clean)``) and the wavelet noise estimate of the clean image
        itself (real images carry their own acquisition noise).
    """
    import torch

    from medden.data.modalities import benchmark_images
    from medden.anchors.base import wavelet_sigma
    from medden.metrics.fidelity import find_small_structures, method_noise_correlation

    unknown = sorted(set(settings.modalities) - set(BENCHMARK_MODALITIES)) + sorted(set(settings.noises) - set(NOISES))
    if unknown:
        raise ValueError(f"unknown modalities or noises {unknown}; modalities: {BENCHMARK_MODALITIES}, "
                         f"noises: {tuple(NOISES)}.")
    noises = tuple(settings.noises)
    if methods is None:
        methods = [_noisy_method(noises), *anchor_methods(noises, settings.include_bm3d)]
        if settings.shipped:
            methods += shipped_methods(noises)
    methods = [*methods, *extra_methods]
    # an image keeps its index in the full list (the noise seed): a subset run draws what a full run draws
    images = [(index, item) for index, item in enumerate(benchmark_images(settings.brain_slices))
              if item.modality in settings.modalities]
    records, references, figures = [], [], {}
    torch.manual_seed(settings.seed)
    cases, done = len(images) * len(noises), 0
    for index, item in images:
        clean = _crop(item.image, settings.crop)
        structures = find_small_structures(clean, margin=min(12, min(clean.shape[1:]) // 2 - 5))
        keep_figure = settings.figure_images and item.modality not in figures
        reference_noise = wavelet_sigma(clean.mean(axis=0))  # the "clean" image's own acquisition noise
        for noise_index, noise in enumerate(noises):
            log(f"case {done + 1}/{cases}: {item.modality} {item.name} {noise}")
            case = make_case(item.modality, item.name, clean, noise, settings.seed + 100 * index + noise_index)
            references.append({"modality": item.modality, "image": item.name, "noise": noise,
                               "ideal_method_noise_corr": method_noise_correlation(case.noisy, clean, clean),
                               "clean_noise_sigma": reference_noise})
            tiles = [("clean", clean), ("noisy", case.noisy)]
            for method in methods:
                if not method.applies_to(case):
                    continue
                record, output = _score(method, case, structures)
                records.append(record)
                if method.kind != "input":
                    tiles.append((method.name, np.clip(output, 0, 1)))
                log(f"{item.modality:12s} {noise:9s} {method.name:34s} {record['psnr']:6.2f} dB "
                    f"{record['ssim']:.3f} {record['seconds_per_slice']:.3f} s")
            if keep_figure:
                figures.setdefault(item.modality, {})[noise] = tiles
            done += 1
            if progress is not None:
                progress(done, cases)
    method_info = {}
    for method in methods:
        parameters, size = _model_size(method.network)
        method_info[method.name] = {"kind": method.kind, "parameters": parameters, "size_bytes": size}
    environment = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                   "machine": platform.machine(), "processor": platform.processor() or None,
                   "cpu_count": os.cpu_count()}
    return {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()},
            "environment": environment, "records": records, "references": references, "figures": figures,
            "methods": method_info}
