"""``medden denoise --fit``: fine-tune a trained bundle on the very images to be denoised.

No clean image exists for a user's scan, so the fine-tuning is self-supervised, by
recorruption (Recorrupted-to-Recorrupted, Pang et al. 2021): for a noisy slice ``y`` with
noise level ``sigma`` (estimated from ``y`` itself) and a fresh ``z ~ N(0, 1)``,

    input = y + alpha * sigma * z,        target = y - sigma * z / alpha.

For Gaussian noise the noise in ``input`` and ``target`` is independent, so the mean squared
error between ``f(input)`` and ``target`` has the same minimiser as against the clean image:
the network stays a direct denoiser (no correction at inference). Signal-dependent noise
(Poisson, Rician) is approximated by its average level, which is what a blind user gets.

Measured (docs/results/general_denoiser.md, Gaussian noise): fitting to one noisy image (or
three slices) gained 0.5-1.8 dB over the general model within 1-3 minutes on brain MR and
CT, nothing on a radiograph, and by 10 minutes every case was 1.2-3.4 dB worse than at 1
minute. With a single, fixed noisy image the network can learn that image's own noise (given
``y``, the recorruption ``z`` is recoverable from ``input``, and then ``target`` is
predictable), so short budgets, or more slices to fit on, are the working regime; there is
no clean image to stop early on.

Training starts from the bundle's weights (not from scratch), runs on random patches of the
input's slices for a wall-clock budget in an ignite ``Engine``, and the result is saved as a
bundle (the base bundle's configs and docs, the fitted ``models/model.pt``) that
``medden denoise --bundle`` can reuse.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medden.io.files import atomic_write
from medden.io.checkpoint import save_checkpoint
from medden.core.noise_estimation import evenly_spaced, wavelet_noise_sigma
from medden.core.validation import check_positive

__all__ = ["FITTED_BUNDLE", "FitResult", "fit_network", "fit_on_input", "fit_slices", "read_input_volumes",
           "save_fitted_bundle"]

#: where ``medden denoise --fit`` saves the fitted bundle, under OUTPUT
FITTED_BUNDLE = "fitted_bundle"

logger = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What a fit did: iterations run, seconds spent, and the loss every ``log_every`` steps."""

    iterations: int
    seconds: float
    losses: list[float] = field(default_factory=list)


def fit_slices(volumes: Sequence[np.ndarray], percentiles: tuple[float, float], max_slices: int = 64,
               smoothing: int = 0) -> list[np.ndarray]:
    """2D training slices from ``(C, X, Y[, N])`` volumes, each volume scaled as at inference.

    Every volume maps its ``percentiles`` (measured after ``smoothing``) to [0, 1], not
    clipped, exactly as :func:`medden.inference.denoise_image` does, so the network is fitted
    to what it will see; channels are averaged to grey. At most ``max_slices`` slices, evenly spaced over all
    volumes.

    Returns:
        ``(1, X, Y)`` float32 arrays.

    Raises:
        ValueError: no volumes, a non-finite volume, or a constant one.
    """
    if not volumes:
        raise ValueError("no images to fit on.")
    from medden.inference.volumes import intensity_range

    slices = []
    for volume in volumes:
        arr = np.asarray(volume, np.float32)
        if not np.isfinite(arr).all():
            raise ValueError("an image to fit on has non-finite values (NaN or inf).")
        arr = arr[..., None] if arr.ndim == 3 else arr
        if arr.min() == arr.max():
            continue
        low, high = intensity_range(arr, percentiles, smoothing)
        grey = (arr.mean(axis=0) - low) / (high - low)
        slices.extend(grey[None, ..., k] for k in range(grey.shape[-1]))
    if not slices:
        raise ValueError("every image to fit on is constant; there is nothing to learn.")
    picks = evenly_spaced(len(slices), max_slices)
    return [np.ascontiguousarray(slices[i]) for i in picks]


def _patches(slices: list[np.ndarray], sigmas: np.ndarray, patch: int, batch_size: int,
             rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches ``(y, sigma)``: random crops (mirror-padded up to ``patch``), flips."""
    padded = []
    for image in slices:
        pad = [(0, 0)] + [(0, max(patch - n, 0)) for n in image.shape[1:]]
        padded.append(np.pad(image, pad, mode="reflect") if any(p[1] for p in pad) else image)
    while True:
        crops, levels = [], []
        for index in rng.integers(0, len(padded), batch_size):
            image = padded[index]
            x0 = rng.integers(0, image.shape[1] - patch + 1)
            y0 = rng.integers(0, image.shape[2] - patch + 1)
            crop = image[:, x0 : x0 + patch, y0 : y0 + patch]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            if rng.random() < 0.5:
                crop = crop[:, :, ::-1]
            crops.append(np.ascontiguousarray(crop))
            levels.append(sigmas[index])
        yield torch.from_numpy(np.stack(crops)), torch.tensor(levels, dtype=torch.float32)


def fit_network(network: torch.nn.Module, slices: Sequence[np.ndarray], minutes: float, alpha: float = 0.5,
                learning_rate: float = 2e-4, batch_size: int = 8, patch: int = 96, seed: int = 0,
                device: torch.device | str | None = None,
                on_minute: tuple[Sequence[float], Callable[[float, torch.nn.Module], None]] | None = None,
                log_every: int = 25) -> FitResult:
    """Fine-tune ``network`` in place by recorruption (see the module docstring) for ``minutes``.

    Args:
        network: a trained denoiser, ``(B, 1, H, W) -> (B, 1, H, W)``; its weights are the
            starting point.
        slices: ``(1, X, Y)`` float32 noisy slices scaled to about [0, 1] (:func:`fit_slices`).
        minutes: wall-clock budget; the run stops after the first step past it.
        alpha: recorruption strength (0.5 as in R2R).
        patch: side of the square training patches (a multiple of the network's stride).
        on_minute: ``(times, callback)``: ``callback(t, network)`` once the budget ``t``
            minutes has elapsed, for each ``t`` in ``times`` (benchmarks score snapshots).

    Returns:
        :class:`FitResult`. The network is left in eval mode.

    Raises:
        ValueError: ``minutes`` or ``alpha`` not positive, or no slices.
    """
    from ignite.engine import Engine, Events

    check_positive(minutes, "minutes")
    check_positive(alpha, "alpha")
    if len(slices) == 0:
        raise ValueError("no slices to fit on.")
    device = torch.device(device) if device is not None else next(network.parameters()).device
    images = [np.asarray(s, np.float32) for s in slices]
    with torch.no_grad():
        sigmas = np.array([float(wavelet_noise_sigma(torch.from_numpy(s)[None])[0]) for s in images])
    logger.info("fit: %d slices, estimated noise sigma %.4f (median, scaled units)", len(images), np.median(sigmas))
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    result = FitResult(iterations=0, seconds=0.0)
    budget_s = minutes * 60.0
    started = time.perf_counter()
    pending = sorted(on_minute[0]) if on_minute else []

    def step(engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        noisy, sigma = (t.to(device) for t in batch)
        z = torch.randn_like(noisy) * sigma.view(-1, 1, 1, 1)
        network.train()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(network(noisy + alpha * z), noisy - z / alpha)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    engine = Engine(step)

    @engine.on(Events.ITERATION_COMPLETED)
    def _watch(engine: Engine) -> None:
        elapsed = time.perf_counter() - started
        if engine.state.iteration % log_every == 0:
            result.losses.append(engine.state.output)
        while pending and elapsed >= pending[0] * 60.0:
            network.eval()
            on_minute[1](pending.pop(0), network)
        if elapsed >= budget_s:
            engine.terminate()

    engine.run(_patches(images, sigmas, patch, batch_size, rng), max_epochs=1, epoch_length=2**31 - 1)
    network.eval()
    for remaining in pending:  # budgets the loop never reached (it ran out of time first)
        on_minute[1](remaining, network)
    result.iterations = engine.state.iteration
    result.seconds = time.perf_counter() - started
    return result


def save_fitted_bundle(base_bundle_dir: str | os.PathLike, output_bundle_dir: str | os.PathLike,
                       network: torch.nn.Module, fit: FitResult, minutes: float) -> Path:
    """Write a bundle: ``base_bundle_dir``'s configs, docs and licence with the fitted weights.

    ``configs/metadata.json`` gets a ``+fit`` version and a changelog line (iterations,
    seconds, budget; nothing about the images or the patient). Files are written atomically;
    an existing fitted bundle at ``output_bundle_dir`` is replaced.

    Returns:
        ``output_bundle_dir`` as a Path.
    """
    base, out = Path(base_bundle_dir), Path(output_bundle_dir)
    (out / "models").mkdir(parents=True, exist_ok=True)
    for name in ("configs", "docs"):
        if (base / name).is_dir():
            shutil.copytree(base / name, out / name, dirs_exist_ok=True)
    if (base / "LICENSE").is_file():
        shutil.copy2(base / "LICENSE", out / "LICENSE")
    meta_path = out / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    version = f"{meta.get('version', '0')}+fit"
    meta["version"] = version
    meta.setdefault("changelog", {})[version] = (
        f"fine-tuned by medden denoise --fit (recorruption, {fit.iterations} iterations, {fit.seconds:.0f} s, "
        f"budget {minutes:g} min) on the images it was run on"
    )
    meta.pop("schema", None)  # the relative schema path of the shipped bundle does not resolve here
    text = json.dumps(meta, indent=4) + "\n"
    atomic_write(meta_path, lambda tmp: tmp.write_text(text), overwrite=True)
    save_checkpoint({k: v.detach().cpu() for k, v in network.state_dict().items()}, out / "models" / "model.pt")
    return out


def read_input_volumes(input_path: str | os.PathLike, max_slices: int = 64) -> list[np.ndarray]:
    """The images ``medden denoise`` would denoise, as ``(C, X, Y[, N])`` arrays, for fitting.

    A NIfTI file, a folder of NIfTI files or a DICOM folder (every image series that
    decodes; unreadable ones are left out, as the denoising run reports them). Reading stops
    once ``max_slices`` slices are in hand, so a huge study is not read twice whole.

    Raises:
        ValueError: nothing readable in ``input_path``.
    """
    from medden.io.nifti import NIFTI_SUFFIXES, list_nifti_files

    path = Path(input_path)
    volumes: list[np.ndarray] = []
    is_nifti = path.is_file() or any(p.name.endswith(NIFTI_SUFFIXES) for p in path.iterdir())
    if is_nifti:
        from medden.io.nifti import read_nifti

        for file in [path] if path.is_file() else list_nifti_files(path):
            volumes.append(read_nifti(file).numpy())
            if sum(v.shape[-1] if v.ndim == 4 else 1 for v in volumes) >= max_slices:
                break
    else:
        from medden.io import load_dicom_series, plan_dicom_series

        plans, _ = plan_dicom_series(path)
        for plan in plans:
            series, _ = load_dicom_series(plan)
            if series is not None:
                volumes.append(np.asarray(series.volume))
            if sum(v.shape[-1] for v in volumes) >= max_slices:
                break
    if not volumes:
        raise ValueError(f"nothing in {str(path)!r} could be read to fit on.")
    return volumes


def fit_on_input(input_path: str | os.PathLike, output_dir: str | os.PathLike, base_bundle: str | os.PathLike,
                 minutes: float, device: str | torch.device | None = None, max_slices: int = 64) -> Path:
    """``medden denoise --fit``: fine-tune ``base_bundle`` on the input, save it under OUTPUT.

    Reads up to ``max_slices`` slices of the input (:func:`read_input_volumes`), scales them
    as the bundle's inference does, fine-tunes the bundle's network by recorruption for
    ``minutes`` (:func:`fit_network`) and writes ``output_dir/fitted_bundle`` (reuse it with
    ``--bundle``). Single process: under torchrun, fit first, then denoise with the saved bundle.

    Returns:
        The fitted bundle's folder.

    Raises:
        ValueError: output inside input, nothing readable, a bad budget, or a run under torchrun.
    """
    from medden.apps.batch_denoise import check_paths, load_bundle, resolve_bundle
    from medden.engines.distributed import is_distributed

    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("--fit runs in one process: fit first (medden denoise --fit), then denoise under torchrun "
                         f"with --bundle OUTPUT/{FITTED_BUNDLE}.")
    check_positive(minutes, "fit minutes")
    input_path, output_dir = Path(input_path), Path(output_dir)
    check_paths(input_path, output_dir)
    base_dir = resolve_bundle(base_bundle)
    bundle = load_bundle(base_dir, device)
    slices = fit_slices(read_input_volumes(input_path, max_slices), bundle.percentiles, max_slices, bundle.smoothing)
    result = fit_network(bundle.network, slices, minutes)
    logger.info("fit: %d iterations in %.0f s", result.iterations, result.seconds)
    return save_fitted_bundle(base_dir, output_dir / FITTED_BUNDLE, bundle.network, result, minutes)
