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

Training starts from the bundle's weights (not from scratch) and runs on random patches of
the input's slices for a wall-clock budget (:func:`medden.engines.fit_network`: the
recorruption is :class:`medden.transforms.R2RPair`, the step and handlers come from
:mod:`medden.engines`). This module only arranges it: read the input, scale it as the
bundle's inference does, fit, and save the result as a bundle (the base bundle's configs and
docs, the fitted ``models/model.pt``) that ``medden denoise --bundle`` can reuse.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from medden.io.files import atomic_write
from medden.io.checkpoint import save_checkpoint
from medden.core.noise_estimation import evenly_spaced
from medden.core.validation import check_positive
from medden.engines.recorruption_fit import FitResult, fit_network

__all__ = ["FITTED_BUNDLE", "fit_on_input", "fit_slices", "read_input_volumes", "save_fitted_bundle"]

#: where ``medden denoise --fit`` saves the fitted bundle, under OUTPUT
FITTED_BUNDLE = "fitted_bundle"

logger = logging.getLogger(__name__)


def fit_slices(volumes: Sequence[np.ndarray], percentiles: tuple[float, float], max_slices: int = 64,
               smoothing: int = 0) -> list[np.ndarray]:
    """2D training slices from ``(C, H, W[, D])`` volumes, each volume scaled as at inference.

    Every volume maps its ``percentiles`` (measured after ``smoothing``) to [0, 1], not
    clipped, exactly as :func:`medden.inference.denoise_image` does, so the network is fitted
    to what it will see; channels are averaged to grey. At most ``max_slices`` slices, evenly spaced over all
    volumes.

    Returns:
        ``(1, H, W)`` float32 arrays.

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


def save_fitted_bundle(base_bundle_dir: str | os.PathLike, output_bundle_dir: str | os.PathLike,
                       network: torch.nn.Module, fit: FitResult, minutes: float) -> Path:
    """Write a bundle: ``base_bundle_dir``'s configs, docs and licence with the fitted weights.

    ``configs/metadata.json`` gets a ``+fit`` version and a changelog line (iterations,
    seconds, budget; nothing about the images or the patient). Files are written atomically;
    an existing fitted bundle at ``output_bundle_dir`` is replaced.

    Returns:
        ``output_bundle_dir`` as a Path.
    """
    from medden.bundle.layout import CONFIGS, METADATA, MODELS, WEIGHTS

    base, out = Path(base_bundle_dir), Path(output_bundle_dir)
    (out / MODELS).mkdir(parents=True, exist_ok=True)
    for name in (CONFIGS, "docs"):
        if (base / name).is_dir():
            shutil.copytree(base / name, out / name, dirs_exist_ok=True)
    if (base / "LICENSE").is_file():
        shutil.copy2(base / "LICENSE", out / "LICENSE")
    meta_path = out / METADATA
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
    save_checkpoint({k: v.detach().cpu() for k, v in network.state_dict().items()}, out / WEIGHTS)
    return out


def read_input_volumes(input_path: str | os.PathLike, max_slices: int = 64) -> list[np.ndarray]:
    """The images ``medden denoise`` would denoise, as ``(C, H, W[, D])`` arrays, for fitting.

    A DICOM file or folder, a NIfTI file, or a folder of NIfTI files or of both (every image
    that decodes; unreadable ones are left out, as the denoising run reports them). Reading stops
    once ``max_slices`` slices are in hand, so a huge study is not read twice whole.

    Raises:
        FileNotFoundError: ``input_path`` does not exist.
        ValueError: nothing readable in ``input_path``, or not one of those inputs
            (:func:`medden.io.inputs.identify_input`).
    """
    from medden.io.inputs import VOLUME_INPUTS, identify_input

    path = Path(input_path)
    volumes: list[np.ndarray] = []
    source = identify_input(path, VOLUME_INPUTS)

    def enough() -> bool:
        return sum(v.shape[-1] if v.ndim == 4 else 1 for v in volumes) >= max_slices

    if source.kind.is_nifti:
        from medden.io.nifti import read_nifti

        for file in source.files:
            try:
                volumes.append(read_nifti(file).numpy())
            except Exception as err:  # a broken file is left out here; the denoising run reports it
                logger.info("fit: a NIfTI file was left out (%s)", type(err).__name__)
            if enough():
                break
    if source.kind.is_dicom and not enough():
        from medden.io import load_dicom_series, plan_dicom_series

        plans, _ = plan_dicom_series(path if path.is_dir() else path.parent, source.dicom_files)
        for plan in plans:
            series, _ = load_dicom_series(plan)
            if series is not None:
                volumes.append(np.asarray(series.volume))
            if enough():
                break
    if not volumes:
        raise ValueError(f"nothing in {str(path)!r} could be read to fit on.")
    return volumes


def fit_on_input(input_path: str | os.PathLike, output_dir: str | os.PathLike, base_bundle: str | os.PathLike,
                 minutes: float, device: str | torch.device | None = None, max_slices: int = 64,
                 trust: bool = False) -> Path:
    """``medden denoise --fit``: fine-tune ``base_bundle`` on the input, save it under OUTPUT.

    Reads up to ``max_slices`` slices of the input (:func:`read_input_volumes`), scales them
    as the bundle's inference does, fine-tunes the bundle's network by recorruption for
    ``minutes`` (:func:`medden.engines.fit_network`) and writes ``output_dir/fitted_bundle``
    (reuse it with ``--bundle OUTPUT/fitted_bundle --trust-bundle``). ``trust`` lets
    ``base_bundle`` be a folder medden does not ship (see :mod:`medden.bundle.resolve`).
    Single process: under torchrun, fit first, then denoise with the saved bundle.

    Returns:
        The fitted bundle's folder.

    Raises:
        ValueError: output inside input, nothing readable, a bad budget, or a run under torchrun.
    """
    from medden.io.files import check_output_dir
    from medden.bundle import load_bundle
    from medden.engines.distributed import is_distributed

    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("--fit runs in one process: fit first (medden denoise --fit), then denoise under torchrun "
                         f"with --bundle OUTPUT/{FITTED_BUNDLE}.")
    check_positive(minutes, "fit minutes")
    input_path, output_dir = Path(input_path), Path(output_dir)
    check_output_dir(input_path, output_dir)
    bundle = load_bundle(base_bundle, device, trust=trust)
    slices = fit_slices(read_input_volumes(input_path, max_slices), bundle.percentiles, max_slices, bundle.smoothing)
    result = fit_network(bundle.network, slices, minutes)
    logger.info("fit: %d iterations in %.0f s", result.iterations, result.seconds)
    return save_fitted_bundle(bundle.root, output_dir / FITTED_BUNDLE, bundle.network, result, minutes)
