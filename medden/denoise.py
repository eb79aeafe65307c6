"""Batch denoising of DICOM folders and NIfTI files with a trained medden bundle.

This is the library behind ``medden denoise INPUT OUTPUT``: anything the command does, a call
to :func:`denoise_path` does. It sits on top of the other layers (``io`` reads and writes,
``inference`` runs the network).

Guarantees:

* Inputs are only read; OUTPUT may not lie inside INPUT (nor INPUT inside OUTPUT).
* Every file is written atomically. A manifest (``OUTPUT/medden_manifest.json``) records
  finished series, so a run that was killed and started again skips them (``resume=True``).
* A bad file or series is skipped with a reason; the run goes on.
* Reports hold UIDs, counts, timings and reasons, never patient names or IDs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medden.io._files import atomic_write

__all__ = ["LoadedBundle", "denoise_path", "load_bundle", "noise_sigma", "write_preview"]

MANIFEST = "medden_manifest.json"
REPORT = "medden_report.json"
logger = logging.getLogger(__name__)


@dataclass
class LoadedBundle:
    """A trained bundle ready for inference: network, inferer and what to record about it."""

    name: str
    network: torch.nn.Module
    inferer: Callable
    parameters: dict[str, Any]


def load_bundle(bundle_dir: str | os.PathLike, device: str | torch.device | None = None) -> LoadedBundle:
    """Load ``bundle_dir/configs/inference.json``'s ``network`` and ``inferer``.

    The config is evaluated with ``bundle_root`` set to ``bundle_dir`` (so its
    ``models/model.pt`` is used) and ``device`` overridden when given.

    Raises:
        FileNotFoundError: not a bundle folder (no ``configs/inference.json``).
        ValueError / CheckpointError: the config or weights do not load.
    """
    from monai.bundle import ConfigParser

    root = Path(bundle_dir)
    config = root / "configs" / "inference.json"
    if not config.is_file():
        raise FileNotFoundError(f"{str(root)!r} is not a medden bundle: {str(config)!r} does not exist.")
    parser = ConfigParser()
    parser.read_config(str(config))
    parser["bundle_root"] = str(root)
    if device is not None:
        parser["device"] = f"$torch.device('{torch.device(device)}')"
    network = parser.get_parsed_content("network").eval()
    inferer = parser.get_parsed_content("inferer")
    meta_file = root / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    parameters = {key: parser[key] for key in ("refine_eta", "refine_steps", "keep_observed") if key in parser}
    name = f"{root.resolve().name} {meta.get('version', '')}".strip()
    return LoadedBundle(name=name, network=network, inferer=inferer, parameters=parameters)


def noise_sigma(volume: np.ndarray, max_slices: int = 16) -> float:
    """Robust noise standard deviation (wavelet-detail MAD, scikit-image), averaged over slices.

    ``volume`` is ``(C, X, Y[, N])`` in its own units; returns the same units. At most
    ``max_slices`` evenly spaced slices are used: enough for a stable estimate, and it keeps
    the report from costing more than the denoising.
    """
    from skimage.restoration import estimate_sigma

    arr = np.asarray(volume)
    if arr.ndim == 3:
        arr = arr[..., None]
    picks = np.unique(np.linspace(0, arr.shape[-1] - 1, min(max_slices, arr.shape[-1])).round().astype(int))
    return float(np.mean([estimate_sigma(arr[0, ..., k].astype(np.float64)) for k in picks]))


def write_preview(path: Path, before: np.ndarray, after: np.ndarray) -> Path:
    """Save the middle slice of ``before`` | ``after`` side by side as a grey PNG, atomically.

    Both are ``(C, X, Y[, N])`` in the same units; the grey window is the 1-99th percentile of
    ``before``'s slice, shared by both halves so they compare directly. Rows run down the
    DICOM columns (the image as a viewer shows it).
    """
    from PIL import Image

    def middle(volume: np.ndarray) -> np.ndarray:
        arr = np.asarray(volume, dtype=np.float32)
        arr = arr[..., arr.shape[-1] // 2] if arr.ndim == 4 else arr
        return arr.mean(axis=0).T  # channels averaged; (Y, X) for display

    left, right = middle(before), middle(after)
    low, high = np.percentile(left, [1, 99])
    scale = max(float(high - low), 1e-6)
    pair = np.concatenate([left, right], axis=1)
    pixels = (np.clip((pair - low) / scale, 0, 1) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"), overwrite=True)


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in text)[:120]


def _check_paths(input_path: Path, output_dir: Path) -> None:
    src, dst = input_path.resolve(), output_dir.resolve()
    if not input_path.exists():
        raise FileNotFoundError(f"input {str(input_path)!r} does not exist.")
    base = src if src.is_dir() else src.parent
    if dst == base or base in dst.parents:
        raise ValueError(
            f"output {str(output_dir)!r} lies inside the input folder {str(base)!r}; choose a folder outside "
            "it, so the originals and the derived files cannot mix."
        )
    if dst in src.parents:
        raise ValueError(f"input {str(input_path)!r} lies inside output {str(output_dir)!r}; choose another output.")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _shard() -> tuple[int, int]:
    """``(rank, world_size)``: under torchrun each process takes every world_size-th series."""
    import torch.distributed as dist

    from medden.engines.distributed import init_distributed

    if not init_distributed():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def _manifest_path(output_dir: Path, rank: int, world: int) -> Path:
    return output_dir / (MANIFEST if world == 1 else MANIFEST.replace(".json", f".rank{rank}.json"))


def _finished(output_dir: Path) -> dict:
    """Finished series from every manifest in ``output_dir`` (single-process and per-rank ones)."""
    done: dict = {}
    for path in sorted(output_dir.glob(MANIFEST.replace(".json", "*.json"))):
        done.update(_read_json(path))
    return done


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2, default=str) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text), overwrite=True)


def _denoise_dicom(input_dir: Path, output_dir: Path, bundle: LoadedBundle, resume: bool) -> dict:
    from medden.inference import denoise_image
    from medden.io import load_dicom_series, plan_dicom_series, write_derived_series

    from tqdm.auto import tqdm

    rank, world = _shard()
    manifest_path = _manifest_path(output_dir, rank, world)
    finished = _finished(output_dir) if resume else {}
    manifest = _read_json(manifest_path) if resume else {}
    plans, skipped = plan_dicom_series(input_dir)
    plans = plans[rank::world]  # plans come sorted by series UID, so every rank splits them alike
    if rank != 0:
        skipped = []  # rank 0 reports the skipped files once
    series_rows = []
    for plan in tqdm(plans, desc="series", unit="series", disable=None):
        row: dict[str, Any] = {"series_uid": plan.series_uid, "slices": int(plan.shape[-1])}
        if resume and finished.get(plan.series_uid, {}).get("status") == "done":
            series_rows.append({**finished[plan.series_uid], "status": "done (resumed, skipped)"})
            continue
        started = time.perf_counter()
        try:
            series, problems = load_dicom_series(plan)
            skipped.extend(problems)
            if series is None:
                raise ValueError("no slice of this series could be decoded")
            denoised = denoise_image(series.volume, bundle.network, bundle.inferer)
            paths = write_derived_series(series, denoised, output_dir / "dicom", method="medden denoise",
                                         model=bundle.name, parameters=bundle.parameters, overwrite=True)
            preview = write_preview(output_dir / "previews" / f"{_safe_name(plan.series_uid)}.png",
                                    series.volume, np.asarray(denoised))
            row.update(status="done", files=len(paths), output=str(paths[0].parent.relative_to(output_dir)),
                       preview=str(preview.relative_to(output_dir)), noise_sigma_before=noise_sigma(series.volume),
                       noise_sigma_after=noise_sigma(denoised), notes=series.notes)
        except (ValueError, RuntimeError, OSError) as err:
            row.update(status="failed", reason=f"{type(err).__name__}: {err}")
        row["seconds"] = round(time.perf_counter() - started, 3)
        series_rows.append(row)
        if row["status"] == "done":
            manifest[plan.series_uid] = row
            _write_json(manifest_path, manifest)
        logger.info("series %s: %s (%.1f s)", plan.series_uid, row["status"], row["seconds"])
    return {"series": series_rows, "skipped": [{"path": str(s.path), "reason": s.reason} for s in skipped]}


def _denoise_nifti(input_path: Path, output_dir: Path, bundle: LoadedBundle) -> dict:
    from medden.inference.volumes import denoise_nifti_file, list_nifti_files, nifti_stem

    rank, world = _shard()
    files = ([input_path] if input_path.is_file() else list_nifti_files(input_path))[rank::world]
    (output_dir / "nifti").mkdir(parents=True, exist_ok=True)
    rows = []
    for path in files:
        started = time.perf_counter()
        row: dict[str, Any] = {"file": path.name}
        try:
            out_path = output_dir / "nifti" / f"{nifti_stem(path)}_denoised.nii.gz"
            volume, denoised = denoise_nifti_file(path, out_path, bundle.network, bundle.inferer, overwrite=True)
            row.update(status="done", output=str(out_path.relative_to(output_dir)),
                       noise_sigma_before=noise_sigma(volume.numpy()), noise_sigma_after=noise_sigma(denoised.numpy()))
        except (ValueError, RuntimeError, OSError) as err:
            row.update(status="failed", reason=f"{type(err).__name__}: {err}")
        row["seconds"] = round(time.perf_counter() - started, 3)
        rows.append(row)
    return {"series": rows, "skipped": []}


def denoise_path(input_path: str | os.PathLike, output_dir: str | os.PathLike, bundle: LoadedBundle,
                 resume: bool = True) -> dict:
    """Denoise a DICOM folder, a NIfTI file or a folder of NIfTI files into ``output_dir``.

    Under ``torchrun --nproc_per_node N`` each process denoises every N-th series (no series
    twice, each rank keeps its own manifest) and rank 0 writes the merged report.

    DICOM series become derived series under ``output_dir/dicom/<new series UID>/``, each with
    a before | after PNG of its middle slice in ``output_dir/previews/``; NIfTI
    files become ``output_dir/nifti/<name>_denoised.nii.gz`` with their affine. The report is
    also written to ``output_dir/medden_report.json``.

    Returns:
        The report: ``{"input_kind", "bundle", "series": [...], "skipped": [...],
        "processed": int, "failed": int}``; each series row has its status, timing and the
        noise estimate (:func:`noise_sigma`) before and after.

    Raises:
        FileNotFoundError: the input does not exist.
        ValueError: output inside input (or the reverse), or an input with nothing to read.
    """
    input_path, output_dir = Path(input_path), Path(output_dir)
    _check_paths(input_path, output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    is_nifti = input_path.is_file() or any(p.name.endswith((".nii", ".nii.gz")) for p in input_path.iterdir())
    body = _denoise_nifti(input_path, output_dir, bundle) if is_nifti else _denoise_dicom(
        input_path, output_dir, bundle, resume)
    body = _gather(body)
    report = {"input_kind": "nifti" if is_nifti else "dicom", "bundle": bundle.name, **body,
              "processed": sum(r["status"].startswith("done") for r in body["series"]),
              "failed": sum(r["status"] == "failed" for r in body["series"])}
    from medden.engines.distributed import is_main_process

    if is_main_process():
        _write_json(output_dir / REPORT, report)
    return report


def _gather(body: dict) -> dict:
    """Merge every rank's series rows and skipped files (a no-op in a single process)."""
    import torch.distributed as dist

    from medden.engines.distributed import is_distributed

    if not is_distributed():
        return body
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, body)
    rows = sorted((row for part in parts for row in part["series"]), key=lambda r: str(r.get("series_uid")))
    return {"series": rows, "skipped": [s for part in parts for s in part["skipped"]]}
