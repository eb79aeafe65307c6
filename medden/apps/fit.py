"""``medden denoise --fit``: fine-tune a trained bundle on the very images to be denoised.

No clean image exists for a user's scan, so the fit is self-supervised, with the scheme the
input offers (:func:`medden.engines.choose_fit_pairs`): neighbouring slices of a series or
volume as Noise2Noise pairs (their noise is independent, their anatomy nearly the same), or
recorruption with the image's own noise spectrum for single images. Pixels of a fixed set of
tiles are held out of training; their loss, which needs no clean image, is tracked, the best
snapshot is kept, the run stops when it stops improving, and the fitted weights replace the
base model's only if they beat them on that loss (:func:`medden.engines.fit_network`). So
``--fit`` returns the base model unchanged rather than a worse one.

This module only arranges it: read the input, scale it as the bundle's inference does, fit
within the budget (reading included), and save the result as a bundle (the base bundle's
configs and docs, the chosen ``models/model.pt``, and ``fit_report.json`` with the held-out
loss curve, the chosen snapshot and why) that ``medden denoise --bundle`` can reuse.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from medden.io.files import atomic_write
from medden.io.checkpoint import save_checkpoint
from medden.core.validation import check_int, check_positive
from medden.engines.input_fit import FitProgress, FitResult, fit_network
from medden.engines.fit_pairs import choose_fit_pairs, has_magnitude_floor, untrusted_noise

__all__ = ["FITTED_BUNDLE", "FIT_REPORT", "fit_on_input", "fit_volumes", "fitted_network", "read_input_volumes",
           "save_fitted_bundle"]

#: where ``medden denoise --fit`` saves the fitted bundle, under OUTPUT, and its report in there
FITTED_BUNDLE, FIT_REPORT = "fitted_bundle", "fit_report.json"

logger = logging.getLogger(__name__)


def fit_volumes(volumes: Sequence[np.ndarray], percentiles: tuple[float, float], max_slices: int = 64,
                smoothing: int = 0) -> list[np.ndarray]:
    """``(D, H, W)`` arrays to fit on, from ``(C, H, W[, D])`` volumes, each scaled as at inference.

    Every volume maps its ``percentiles`` (measured after ``smoothing``) to [0, 1], not
    clipped, exactly as :func:`medden.inference.denoise_image` does, so the network is fitted
    to what it will see; channels are averaged to grey. Slices stay contiguous (neighbour-slice
    pairs need them): a volume deeper than what is left of ``max_slices`` keeps its central
    slices. Constant volumes are skipped.

    Returns:
        ``(D, H, W)`` float32 arrays (``D = 1`` for a 2D image).

    Raises:
        ValueError: no volumes, a non-finite volume, or only constant ones.
    """
    if not volumes:
        raise ValueError("no images to fit on.")
    from medden.inference.volumes import intensity_range

    out, left = [], check_int(max_slices, "max_slices")
    for volume in volumes:
        arr = np.asarray(volume, np.float32)
        if not np.isfinite(arr).all():
            raise ValueError("an image to fit on has non-finite values (NaN or inf).")
        arr = arr[..., None] if arr.ndim == 3 else arr
        if arr.min() == arr.max() or left < 1:
            continue
        low, high = intensity_range(arr, percentiles, smoothing)
        grey = ((arr.mean(axis=0) - low) / (high - low)).transpose(2, 0, 1)
        start = max((grey.shape[0] - left) // 2, 0)
        grey = grey[start : start + left]
        out.append(np.ascontiguousarray(grey, np.float32))
        left -= grey.shape[0]
    if not out:
        raise ValueError("every image to fit on is constant; there is nothing to learn.")
    return out


def save_fitted_bundle(base_bundle_dir: str | os.PathLike, output_bundle_dir: str | os.PathLike,
                       network: torch.nn.Module, fit: FitResult, minutes: float, single_image: bool = False) -> Path:
    """Write a bundle: ``base_bundle_dir``'s configs, docs, licence and weights, with the chosen weights.

    The chosen weights replace ``models/model.pt``, or with ``single_image`` the bundle's 2D
    network for single images (``models/model_2d.pt``); exports are not copied (they would run
    the base weights). ``configs/metadata.json`` gets a ``+fit`` version and a changelog line (scheme, iterations,
    seconds, budget, which weights were kept; nothing about the images or the patient), and
    :data:`FIT_REPORT` holds :meth:`FitResult.report`. Files are written atomically;
    an existing fitted bundle at ``output_bundle_dir`` is replaced.

    Returns:
        ``output_bundle_dir`` as a Path.
    """
    from medden.bundle.layout import CONFIGS, METADATA, MODELS, SINGLE_IMAGE_WEIGHTS, WEIGHTS

    base, out = Path(base_bundle_dir), Path(output_bundle_dir)
    (out / MODELS).mkdir(parents=True, exist_ok=True)
    for weights in (WEIGHTS, SINGLE_IMAGE_WEIGHTS):
        if (base / weights).is_file():
            shutil.copy2(base / weights, out / weights)
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
        f"medden denoise --fit ({fit.scheme.get('scheme', 'self-supervised')}, {fit.iterations} iterations, "
        f"{fit.seconds:.0f} s, budget {minutes:g} min) on the images it was run on: {fit.chosen} weights kept"
    )
    meta.pop("schema", None)  # the relative schema path of the shipped bundle does not resolve here
    text = json.dumps(meta, indent=4) + "\n"
    atomic_write(meta_path, lambda tmp: tmp.write_text(text), overwrite=True)
    save_checkpoint({k: v.detach().cpu() for k, v in network.state_dict().items()},
                    out / (SINGLE_IMAGE_WEIGHTS if single_image else WEIGHTS))
    report = json.dumps({"budget_minutes": minutes, **fit.report()}, indent=2) + "\n"
    atomic_write(out / FIT_REPORT, lambda tmp: tmp.write_text(report), overwrite=True)
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
                 trust: bool = False, progress: Callable[[FitProgress], None] | None = None) -> Path:
    """``medden denoise --fit``: fine-tune ``base_bundle`` on the input, save it under OUTPUT.

    Reads up to ``max_slices`` slices of the input (:func:`read_input_volumes`), scales them
    as the bundle's inference does (:func:`fit_volumes`), fits the bundle's network with the
    scheme the input offers (:func:`medden.engines.choose_fit_pairs`) in what is left of
    ``minutes`` after reading, and writes ``output_dir/fitted_bundle`` with its
    :data:`FIT_REPORT` (reuse it with ``--bundle OUTPUT/fitted_bundle --trust-bundle``). The
    bundle holds the base weights unchanged when fitting did not beat them on held-out pixels.
    ``trust`` lets ``base_bundle`` be a folder medden does not ship (see
    :mod:`medden.bundle.resolve`). Single process: under torchrun, fit first, then denoise with
    the saved bundle. ``progress`` gets the held-out loss and the time left after every
    held-out evaluation (:class:`~medden.engines.input_fit.FitProgress`).

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
    started = time.monotonic()
    input_path, output_dir = Path(input_path), Path(output_dir)
    check_output_dir(input_path, output_dir)
    bundle = load_bundle(base_bundle, device, trust=trust)
    raw = read_input_volumes(input_path, max_slices)
    volumes = fit_volumes(raw, bundle.percentiles, max_slices, bundle.smoothing)
    network, single_image = fitted_network(bundle, volumes)
    pairs = choose_fit_pairs(volumes, getattr(network, "neighbours", 0))
    skip_reason = untrusted_noise(pairs, has_magnitude_floor(raw))
    left = minutes - (time.monotonic() - started) / 60.0
    if left <= 0:
        raise ValueError(f"reading the input took the whole fit budget of {minutes:g} min; give --fit-minutes more.")
    result = fit_network(network, pairs, left, skip_reason=skip_reason, progress=progress)
    logger.info("fit: %s, %d iterations in %.0f s", pairs.name, result.iterations, result.seconds)
    return save_fitted_bundle(bundle.root, output_dir / FITTED_BUNDLE, network, result, minutes, single_image)


def fitted_network(bundle, volumes: Sequence[np.ndarray]) -> tuple[torch.nn.Module, bool]:
    """The network ``--fit`` trains: the bundle's, or, when every input is a single image and the
    bundle runs single images through a 2D network of their own, that one.

    Returns:
        ``(network, single_image)``; ``single_image`` says the 2D network was chosen.
    """
    from medden.bundle.bundle import single_image_network

    lone = single_image_network(bundle.inferer)
    if lone is not None and all(v.shape[0] == 1 for v in volumes):
        return lone, True
    return bundle.network, False
