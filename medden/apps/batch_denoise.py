"""Batch denoising of DICOM folders and NIfTI files with a trained medden bundle.

This is the library behind ``medden denoise INPUT OUTPUT``: anything the command does, a call
to :func:`denoise_path` does. It sits on top of the other layers (``io`` reads and writes,
``inference`` runs the network), which it imports only when called, so that importing this
module (as ``medden --help`` does) stays fast.

The bundle comes loaded (:func:`medden.bundle.load_bundle`); every image goes through its
``bundle.denoise`` (its network, inferer and intensity handling, see :mod:`medden.bundle.config`).

Guarantees:

* Inputs are only read; OUTPUT may not lie inside INPUT (nor INPUT inside OUTPUT).
* Every file is written atomically. A manifest (``OUTPUT/medden_manifest.json``) records
  finished series, so a run that was killed and started again skips them (``resume=True``),
  never even reading them, and rewrites a series it was killed in the middle of into the
  same folder (derived UIDs are deterministic). Temporary files a killed run left in
  OUTPUT are removed when the next run starts.
* The next DICOM series is read in a background thread while the current one is denoised
  and written; at most two series are in memory at once.
* A bad file or series is skipped with a reason; the run goes on.
* Reports hold UIDs, counts, timings and reasons, never patient names or IDs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from medden.bundle import Bundle

__all__ = ["denoise_path", "noise_figures", "write_preview"]

MANIFEST = "medden_manifest.json"
REPORT = "medden_report.json"
# atomic_write's temporary files: "." + stem + "." + 8 random characters (tempfile.mkstemp) + ".tmp" + suffixes
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\..+)?")
logger = logging.getLogger(__name__)


def noise_figures(before: np.ndarray, after: np.ndarray, max_slices: int = 16) -> dict[str, Any]:
    """The report's noise estimates for one series, before and after denoising.

    * ``noise_sigma_before/after``: wavelet-detail MAD averaged over at most ``max_slices``
      slices (:func:`medden.core.noise_estimation.estimate_noise_sigma`), in the series' units.
    * ``background_sigma_before/after``: for magnitude MR, the noise of the background air
      with the Rician (Rayleigh) correction (:func:`medden.core.noise_estimation.rician_background_sigma`,
      the air found once, on ``before``); None with ``background_note`` saying why when the
      image has no usable air (CT, radiographs, zero-filled or multi-coil backgrounds).

    ``before`` and ``after`` are ``(C, H, W[, D])`` in the same units; volumes are measured on
    at most ``max_slices`` evenly spaced slices, so the report costs little next to denoising.
    """
    from medden.core.noise_estimation import estimate_noise_sigma, evenly_spaced, find_background, rician_background_sigma

    before, after = np.asarray(before), np.asarray(after)
    if before.ndim == 4:  # the same evenly spaced slices for every figure, as few as give a stable one
        picks = evenly_spaced(before.shape[-1], max_slices)
        before, after = before[..., picks], after[..., picks]
    figures: dict[str, Any] = {"noise_sigma_before": estimate_noise_sigma(before, max_slices),
                               "noise_sigma_after": estimate_noise_sigma(after, max_slices)}
    try:
        air = find_background(before)
        figures.update(background_sigma_before=rician_background_sigma(before, air),
                       background_sigma_after=rician_background_sigma(after, air))
    except ValueError as err:
        figures.update(background_sigma_before=None, background_sigma_after=None, background_note=str(err))
    return figures


def write_preview(path: Path, before: np.ndarray, after: np.ndarray) -> Path:
    """Save the middle slice of ``before`` | ``after`` side by side as a grey PNG, atomically.

    Both are ``(C, H, W[, D])`` in the same units; the grey window is the 1-99th percentile of
    ``before``'s slice, shared by both halves so they compare directly. Rows run down the
    DICOM columns (the image as a viewer shows it).
    """
    from PIL import Image

    from medden.io.files import atomic_write

    def middle(volume: np.ndarray) -> np.ndarray:
        arr = np.asarray(volume, dtype=np.float32)
        arr = arr[..., arr.shape[-1] // 2] if arr.ndim == 4 else arr
        return arr.mean(axis=0).T  # channels averaged; (W, H) for display

    left, right = middle(before), middle(after)
    low, high = np.percentile(left, [1, 99])
    scale = max(float(high - low), 1e-6)
    pair = np.concatenate([left, right], axis=1)
    pixels = (np.clip((pair - low) / scale, 0, 1) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"), overwrite=True)


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in text)[:120]


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
    from medden.io.files import atomic_write

    text = json.dumps(data, indent=2, default=str) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text), overwrite=True)


def _remove_stale_temp_files(output_dir: Path) -> list[Path]:
    """Delete the temporary files a killed run's atomic writes left in medden's output folders."""
    folders = [output_dir, output_dir / "previews", output_dir / "nifti", *sorted(output_dir.glob("dicom/*"))]
    stale = [p for folder in folders if folder.is_dir() for p in folder.iterdir()
             if p.is_file() and _TEMP_NAME.fullmatch(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        logger.info("removed %d temporary file(s) left by an interrupted run", len(stale))
    return stale


def _read_ahead(pool: ThreadPoolExecutor, items: Sequence, read: Callable) -> Iterator[tuple[Any, Future]]:
    """Yield ``(item, future of read(item))`` in order, reading item k+1 in ``pool`` while the caller uses item k.

    With a one-worker pool at most two results are alive: the one the caller holds and the next.
    """
    future = pool.submit(read, items[0]) if items else None
    for k, item in enumerate(items):
        current = future
        if k + 1 < len(items):
            future = pool.submit(read, items[k + 1])
        yield item, current


def _denoise_series(plan: Any, loading: Future, output_dir: Path, bundle: Bundle, skipped: list) -> dict:
    """Denoise and write the series ``loading`` reads; return its report row (status done or failed)."""
    from medden.io import write_derived_series

    row: dict[str, Any] = {"series_uid": plan.series_uid, "slices": int(plan.shape[-1])}
    started = time.perf_counter()
    try:
        series, problems = loading.result()
        skipped.extend(problems)
        if series is None:
            raise ValueError("no slice of this series could be decoded")
        denoised = bundle.denoise(series.volume)
        paths = write_derived_series(series, denoised, output_dir / "dicom", method="medden denoise",
                                     model=bundle.name, parameters=bundle.parameters, overwrite=True)
        preview = write_preview(output_dir / "previews" / f"{_safe_name(plan.series_uid)}.png",
                                series.volume, np.asarray(denoised))
        row.update(status="done", files=len(paths), output=str(paths[0].parent.relative_to(output_dir)),
                   preview=str(preview.relative_to(output_dir)), **noise_figures(series.volume, denoised),
                   notes=series.notes)
    except (ValueError, RuntimeError, OSError) as err:
        row.update(status="failed", reason=f"{type(err).__name__}: {err}")
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def _denoise_dicom(input_dir: Path, output_dir: Path, bundle: Bundle, resume: bool,
                   rank: int, world: int) -> dict:
    from medden.io import load_dicom_series, plan_dicom_series

    from tqdm.auto import tqdm

    manifest_path = _manifest_path(output_dir, rank, world)
    finished = _finished(output_dir) if resume else {}
    manifest = _read_json(manifest_path) if resume else {}
    plans, skipped = plan_dicom_series(input_dir)
    plans = plans[rank::world]  # plans come sorted by series UID, so every rank splits them alike
    if rank != 0:
        skipped = []  # rank 0 reports the skipped files once
    resumed = {uid for uid, row in finished.items() if row.get("status") == "done"}
    series_rows = []
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medden-read")
    try:
        reads = _read_ahead(pool, [p for p in plans if p.series_uid not in resumed], load_dicom_series)
        for plan in tqdm(plans, desc="series", unit="series", disable=None):
            if plan.series_uid in resumed:  # never read again
                series_rows.append({**finished[plan.series_uid], "status": "done (resumed, skipped)"})
                continue
            _, loading = next(reads)
            row = _denoise_series(plan, loading, output_dir, bundle, skipped)
            series_rows.append(row)
            if row["status"] == "done":
                manifest[plan.series_uid] = row
                _write_json(manifest_path, manifest)
            logger.info("series %s: %s (%.1f s)", plan.series_uid, row["status"], row["seconds"])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an error, skip the queued read
    return {"series": series_rows, "skipped": [{"path": str(s.path), "reason": s.reason} for s in skipped]}


def _denoise_nifti(files: Sequence[Path], output_dir: Path, bundle: Bundle, rank: int, world: int) -> dict:
    from medden.apps.folders import denoised_nifti_path
    from medden.io.nifti import map_nifti_file

    files = list(files)[rank::world]
    (output_dir / "nifti").mkdir(parents=True, exist_ok=True)
    rows = []
    for path in files:
        started = time.perf_counter()
        row: dict[str, Any] = {"file": path.name}
        try:
            out_path = denoised_nifti_path(output_dir / "nifti", path)
            volume, (denoised,) = map_nifti_file(path, [out_path], lambda image: (bundle.denoise(image),),
                                                 overwrite=True)
            row.update(status="done", output=str(out_path.relative_to(output_dir)),
                       **noise_figures(volume.numpy(), denoised))
        except (ValueError, RuntimeError, OSError) as err:
            row.update(status="failed", reason=f"{type(err).__name__}: {err}")
        row["seconds"] = round(time.perf_counter() - started, 3)
        rows.append(row)
    return {"series": rows, "skipped": []}


def denoise_path(input_path: str | os.PathLike, output_dir: str | os.PathLike, bundle: Bundle,
                 resume: bool = True) -> dict:
    """Denoise a DICOM folder, a NIfTI file or a folder of NIfTI files into ``output_dir``.

    Under ``torchrun --nproc_per_node N`` each process denoises every N-th series (no series
    twice, each rank keeps its own manifest) and rank 0 writes the merged report.

    DICOM series become derived series under ``output_dir/dicom/<new series UID>/``, each with
    a before | after PNG of its middle slice in ``output_dir/previews/``; NIfTI
    files become ``output_dir/nifti/<name>_denoised.nii.gz`` with their affine. Every image is
    denoised by ``bundle.denoise`` (its intensity percentiles and smoothing apply). The report is also written to
    ``output_dir/medden_report.json``. One run at a time may write to ``output_dir``: a new
    run first deletes temporary files left there by a killed one.

    Returns:
        The report: ``{"input_kind", "bundle", "series": [...], "skipped": [...],
        "processed": int, "failed": int}``; each series row has its status (``"done"``,
        ``"done (resumed, skipped)"`` or ``"failed"`` with a ``reason``), timing and the
        noise estimates (:func:`noise_figures`) before and after.

    Raises:
        FileNotFoundError: the input does not exist.
        ValueError: output inside input (or the reverse, see :func:`medden.io.files.check_output_dir`),
            or an input that is not a DICOM folder or NIfTI file(s) (see
            :func:`medden.io.inputs.identify_input`: an empty folder, one mixing kinds, a PNG).
    """
    from medden.io.files import check_output_dir
    from medden.io.inputs import VOLUME_INPUTS, identify_input

    input_path, output_dir = Path(input_path), Path(output_dir)
    check_output_dir(input_path, output_dir)
    source = identify_input(input_path, VOLUME_INPUTS)
    output_dir.mkdir(parents=True, exist_ok=True)
    rank, world = _shard()
    if rank == 0:
        _remove_stale_temp_files(output_dir)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # no rank writes before rank 0 has cleaned up
    is_nifti = source.kind.is_nifti
    body = _denoise_nifti(source.files, output_dir, bundle, rank, world) if is_nifti else _denoise_dicom(
        input_path, output_dir, bundle, resume, rank, world)
    body = _gather(body)
    report = {"input_kind": "nifti" if is_nifti else "dicom", "bundle": bundle.name, **body,
              "processed": sum(r["status"].startswith("done") for r in body["series"]),
              "failed": sum(r["status"] == "failed" for r in body["series"])}
    if rank == 0:
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
