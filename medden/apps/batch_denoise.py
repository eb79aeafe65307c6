"""Batch denoising of DICOM folders and NIfTI files with a trained medden bundle.

This is the library behind ``medden denoise INPUT OUTPUT``: anything the command does, a call
to :func:`denoise_path` does. It sits on top of the other layers (``io`` reads and writes,
``inference`` runs the network), which it imports only when called, so that importing this
module (as ``medden --help`` does) stays fast.

The bundle comes loaded (:func:`medden.bundle.load_bundle`); every image goes through its
``bundle.denoise`` (its network, inferer and intensity handling, see :mod:`medden.bundle.config`).

Guarantees:

* Inputs are only read; OUTPUT may not lie inside INPUT (nor INPUT inside OUTPUT).
* Every file is written atomically. A manifest (``OUTPUT/medden_manifest.json``, see
  :mod:`medden.apps.run_record`) records what each finished series was made from and by
  which model, so a run that was killed and started again skips them (``resume=True``),
  never even reading them, and redoes a series whose sources changed or whose outputs are
  gone. Derived UIDs come from the source UIDs and the exact model, so a series redone by
  the same model lands on the same files. Temporary files a killed run left in OUTPUT are
  removed when the next run starts.
* The next DICOM series is read in a background thread while the current one is denoised
  and written; at most two series are in memory at once.
* Every file and series fails alone, with a reason in the report, and the run goes on; an
  error about OUTPUT as a whole (a full disk) stops it with the report written.
* Reports hold UIDs, counts, timings, input-relative file names and reasons, never patient
  names or IDs, and never the full input path.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medden.apps.naming import DEFAULT_NAME_TEMPLATE, safe_filename
from medden.apps.run_record import MANIFEST

if TYPE_CHECKING:
    from medden.apps.run_record import RunManifest
    from medden.bundle import Bundle
    from medden.io.inputs import InputSource

__all__ = ["REPORT", "ItemProgress", "denoise_path", "nifti_sidecar", "noise_figures", "outcome", "run_ending_cause",
           "series_label_of", "write_preview"]

REPORT = "medden_report.json"
# errors about OUTPUT as a whole: every further series would fail alike
_RUN_ENDING_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
# atomic_write's temporary files: "." + stem + "." + 8 random characters (tempfile.mkstemp) + ".tmp" + suffixes
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\..+)?")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemProgress:
    """Where a run stands, sent to ``denoise_path``'s ``progress`` callback while it denoises.

    Sent when a series or file starts (``done`` 0), after slices are denoised, and once when it
    ends (``status`` set); a series an earlier run finished is sent once, ended.

    Attributes:
        index: the series or file's number in this run, from 1.
        count: how many series and files this run (this process, under torchrun) has.
        label: its name for people (:func:`medden.apps.naming.series_label`, or the
            input-relative file name): no patient fields, printable.
        done: slices denoised so far.
        total: its slices (0 until known).
        status: None while it runs; then its report row's status (``"done"``, ``"failed"``,
            ``"done (resumed, skipped)"``).
        reason: why it failed, with ``status`` ``"failed"``.
    """

    index: int
    count: int
    label: str
    done: int = 0
    total: int = 0
    status: str | None = None
    reason: str | None = None


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


def _shard() -> tuple[int, int]:
    """``(rank, world_size)``: under torchrun each process takes every world_size-th series."""
    import torch.distributed as dist

    from medden.engines.distributed import init_distributed

    if not init_distributed():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def _write_json(path: Path, data: dict) -> None:
    from medden.io.files import atomic_write

    text = json.dumps(data, indent=2, default=str) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text), overwrite=True)


def _remove_stale_temp_files(output_dir: Path) -> list[Path]:
    """Delete the temporary files a killed run's atomic writes left in medden's output folders."""
    folders = [output_dir, output_dir / "previews", *sorted(output_dir.glob("dicom/*"))]
    folders += [p for p in (output_dir / "nifti").rglob("*") if p.is_dir()] + [output_dir / "nifti"]
    stale = [p for folder in folders if folder.is_dir() for p in folder.iterdir()
             if p.is_file() and _TEMP_NAME.fullmatch(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        logger.info("removed %d temporary file(s) left by an interrupted run", len(stale))
    return stale


def run_ending_cause(err: BaseException) -> OSError | None:
    """The error behind ``err`` that is about OUTPUT as a whole (full disk, quota, read-only),
    so every further series would fail the same way and the run stops, keeping what it
    finished; None for any other error.

    The errors ``err`` was raised from count too: pydicom re-raises a full disk met while
    writing a data element as a plain ``OSError`` without its errno.
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno in _RUN_ENDING_ERRNOS:
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


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


def _failure(err: BaseException, path: Path | None = None, name: str = "<file>") -> str:
    """A failed row's reason (:func:`medden.io.files.describe_error`, up to 300 characters)."""
    from medden.io.files import describe_error

    return describe_error(err, path, name, limit=300)


def _checked(figures: dict[str, Any], before: np.ndarray, after: np.ndarray) -> dict[str, Any]:
    """``figures`` with the no-reference harm checks (:func:`medden.metrics.harm.harm_flags`):
    ``harm_checks`` (each check's value and threshold) and ``warnings`` (a message per check
    that says the output is worse than the input: noisier, with a periodic pattern, or a seam)."""
    from medden.metrics.harm import harm_flags

    checks = harm_flags(before, after, include_passed=True)
    return {**figures, "harm_checks": {c.name: {"value": round(c.value, 4), "threshold": c.threshold}
                                       for c in checks},
            "warnings": [c.message for c in checks if c.raised]}


def _dicom_sources(plan: Any) -> dict[str, Any]:
    """The fingerprint of a plan's source files: SOP Instance UID and size of each."""
    from medden.apps.run_record import source_fingerprint

    return source_fingerprint((str(h.get("SOPInstanceUID", "")), p.stat().st_size)
                              for h, p in zip(plan.headers, plan.paths, strict=True))


def _series_row(plan: Any, run: _Run) -> dict[str, Any]:
    """The first fields of a series' report row: its UID, slices, and what names it for people
    (modality, series number and description as read once into ``run.fields``, input folder;
    never patient fields)."""
    return {"series_uid": plan.series_uid, "slices": int(plan.shape[-1]), **run.fields[plan.series_uid],
            "input_folder": _relative(plan.paths[0].parent, run.root) or "."}


def series_label_of(row: Mapping[str, Any]) -> str:
    """A report row's name for people: modality, series description and input folder
    (:func:`medden.apps.naming.series_label`), or its input-relative file name; the series UID
    only when the row has nothing else. No patient fields, safe to print."""
    from medden.apps.naming import printable, series_label

    if "file" in row:
        return printable(row["file"], 60)
    if row.get("modality") or row.get("series_description"):
        return series_label(row, row.get("input_folder"))
    return printable(row.get("series_uid", "series"), 64)


def _denoise_series(plan: Any, loading: Future, run: _Run, sources: dict[str, Any] | None) -> dict:
    """Denoise and write the series ``loading`` reads; record it with its ``sources``
    (:func:`_dicom_sources`, None if a file could not be read then); return its report row."""
    from medden.io import write_derived_series

    row = _series_row(plan, run)
    slices = run.start(series_label_of(row), row["slices"])
    started = time.perf_counter()
    try:
        sources = sources or _dicom_sources(plan)  # again, so a vanished file fails this series with its reason
        redone = run.manifest.why_redone(plan.series_uid, sources)
        series, problems = loading.result()
        run.skipped.extend(problems)
        if series is None:
            raise ValueError("no slice of this series could be decoded")
        denoised = run.bundle.denoise(series.volume, progress=slices)
        paths = write_derived_series(series, denoised, run.output_dir / "dicom", method="medden denoise",
                                     model=run.bundle.name, parameters=run.bundle.parameters, overwrite=True,
                                     folder_name=lambda uid, _: run.series_folder(plan.series_uid, uid))
        preview_name = safe_filename(plan.series_uid, 120) or "series"
        preview = write_preview(run.output_dir / "previews" / f"{preview_name}.png", series.volume,
                                np.asarray(denoised))
        row.update(status="done", files=len(paths), output=str(paths[0].parent.relative_to(run.output_dir)),
                   preview=str(preview.relative_to(run.output_dir)),
                   **_checked(noise_figures(series.volume, denoised), series.volume, denoised), notes=series.notes)
        if redone:
            row["redone"] = redone
        row["seconds"] = round(time.perf_counter() - started, 3)
        run.manifest.record(plan.series_uid, row, sources, [*paths, preview])
    except Exception as err:  # one series fails alone, unless OUTPUT itself is the problem
        if run_ending_cause(err) is not None:
            raise
        reason = _failure(err, run.root, "INPUT")
        row.update(status="failed", reason=reason, seconds=round(time.perf_counter() - started, 3))
    run.end(series_label_of(row), row)
    return row


def _resumed(earlier: Mapping[str, Any]) -> dict[str, Any]:
    """The report row of a series or file an earlier run finished (its manifest row, less the bookkeeping)."""
    return {**{k: v for k, v in earlier.items() if k not in ("model", "sources", "outputs")},
            "status": "done (resumed, skipped)"}


def _sources_or_none(plan: Any) -> dict[str, Any] | None:
    """:func:`_dicom_sources` of ``plan``, or None when a file vanished since planning (the
    series then fails with its reason when it is denoised)."""
    try:
        return _dicom_sources(plan)
    except OSError:
        return None


def _denoise_dicom(source: InputSource, run: _Run) -> None:
    from medden.apps.naming import series_fields, series_folder_names
    from medden.io import load_dicom_series, plan_dicom_series

    plans, skipped = plan_dicom_series(run.root, source.dicom_files)
    run.fields = {p.series_uid: series_fields(p.headers[0]) for p in plans}
    run.folder_names = series_folder_names(run.template, run.fields)  # from every plan: each rank names alike
    plans = plans[run.rank::run.world]  # plans come sorted by series UID, so every rank splits them alike
    run.count += len(plans)
    if run.rank == 0:  # rank 0 reports what was left out, once
        unplaceable: dict[str, list] = {}
        for item in skipped:
            if item.series_uid is None:
                run.skipped.append(item)
            else:
                unplaceable.setdefault(item.series_uid, []).append(item)
        run.rows.extend({"series_uid": uid, "status": "failed", "files": len(items), "reason": items[0].reason}
                        for uid, items in sorted(unplaceable.items()))
    sources = {p.series_uid: _sources_or_none(p) for p in plans}  # every file's size read once
    finished = {uid: run.manifest.finished(uid, found) if found else None for uid, found in sources.items()}
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medden-read")
    try:
        reads = _read_ahead(pool, [p for p in plans if finished[p.series_uid] is None], load_dicom_series)
        for plan in plans:
            earlier = finished[plan.series_uid]
            if earlier is not None:  # never read again
                row = {**_series_row(plan, run), **_resumed(earlier)}
                run.rows.append(row)
                run.start(series_label_of(row), announce=False)
                run.end(series_label_of(row), row)
                continue
            _, loading = next(reads)
            row = _denoise_series(plan, loading, run, sources[plan.series_uid])
            run.rows.append(row)
            logger.info("series %s: %s (%.1f s)", plan.series_uid, row["status"], row["seconds"])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an error, skip the queued read


def _denoise_nifti(files: Sequence[Path], run: _Run) -> None:
    from medden.apps.folders import denoised_nifti_path
    from medden.apps.run_record import source_fingerprint
    from medden.io.nifti import map_nifti_file
    from medden.io.sidecar import write_sidecar

    for path in list(files)[run.rank::run.world]:
        started = time.perf_counter()
        name = _relative(path, run.root)
        key, row = f"nifti:{name}", {"file": name}
        run.start(series_label_of(row), announce=False)
        try:
            stat = path.stat()
            sources = source_fingerprint([(name, stat.st_size, stat.st_mtime_ns)])
            earlier = run.manifest.finished(key, sources)
            if earlier is not None:
                row = _resumed(earlier)
                run.rows.append(row)
                run.end(series_label_of(row), row)
                continue
            redone = run.manifest.why_redone(key, sources)
            slices = run.announce(series_label_of(row))
            out_dir = run.output_dir / "nifti" / Path(name).parent
            out_dir.mkdir(parents=True, exist_ok=True)
            out_path = denoised_nifti_path(out_dir, path)
            volume, (denoised,) = map_nifti_file(path, [out_path],
                                                 lambda image: (run.bundle.denoise(image, progress=slices),),
                                                 overwrite=True)
            before = volume.numpy()
            figures = noise_figures(before, denoised)
            sidecar = write_sidecar(out_path, nifti_sidecar(name, run.bundle, figures, int(before.shape[-1])))
            row.update(status="done", slices=int(before.shape[-1]), output=str(out_path.relative_to(run.output_dir)),
                       sidecar=str(sidecar.relative_to(run.output_dir)), **_checked(figures, before, denoised))
            if redone:
                row["redone"] = redone
            row["seconds"] = round(time.perf_counter() - started, 3)
            run.manifest.record(key, row, sources, [out_path, sidecar])
        except Exception as err:  # one file fails alone (nibabel raises many types), unless OUTPUT is the problem
            if run_ending_cause(err) is not None:
                raise
            reason = _failure(err, path, name)
            row.update(status="failed", reason=reason, seconds=round(time.perf_counter() - started, 3))
        run.rows.append(row)
        run.end(series_label_of(row), row)


def nifti_sidecar(source: str, bundle: Bundle, figures: Mapping[str, Any], slices: int) -> dict[str, Any]:
    """The JSON sidecar of a denoised NIfTI file (:func:`medden.io.sidecar.write_sidecar`), in the
    dcm2niix / BIDS style: the source file relative to INPUT, the bundle's name and version, the
    SHA-256 of the weights file that ran and its backend (for a single image, the bundle's 2D
    network's PyTorch weights when it has one), medden's version, the noise sigma before and after
    (:func:`noise_figures`, in the image's units) and the date (UTC). Nothing from the image
    header, so no patient field."""
    from datetime import datetime, timezone

    from medden import __version__
    from medden.bundle.config import read_metadata

    folder = Path(bundle.root).resolve().name
    version = str(read_metadata(Path(bundle.root)).get("version", ""))
    weights, backend = bundle.weights_that_run(slices)
    return {"Sources": [source], "SourcesRelativeTo": "INPUT",
            "GeneratedBy": [{"Name": "medden", "Version": __version__, "Description": "medden denoise"}],
            "Bundle": {"Name": folder, "Version": version, "WeightsSHA256": weights, "Backend": backend},
            "NoiseSigmaBefore": figures.get("noise_sigma_before"), "NoiseSigmaAfter": figures.get("noise_sigma_after"),
            "NoiseSigmaUnits": "the image's own units (wavelet-detail MAD estimate)",
            "DateCreated": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to the input's folder, as the report names files (never the full path)."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name


@dataclass
class _Run:
    """One process's state of one run: where, with what, and what it has done so far."""

    root: Path  # the input folder (a single file's folder); report paths are relative to it
    output_dir: Path
    bundle: Bundle
    manifest: RunManifest
    rank: int = 0
    world: int = 1
    rows: list[dict] = field(default_factory=list)
    skipped: list = field(default_factory=list)
    progress: Callable[[ItemProgress], None] | None = None
    count: int = 0  # series and files this process denoises
    index: int = 0  # the one being denoised, from 1
    template: list = field(default_factory=list)  # the parsed --name-template
    folder_names: dict[str, str] = field(default_factory=dict)  # source series UID -> template name, unique
    fields: dict[str, dict] = field(default_factory=dict)  # source series UID -> naming fields
    used: dict[str, str] = field(default_factory=dict)  # folder name (lower case) -> source series UID, this run

    def series_folder(self, key: str, new_uid: str) -> str:
        """The folder name of series ``key`` (its derived UID ``new_uid``) under OUTPUT/dicom: its template
        name, or with :func:`~medden.apps.naming.collision_suffix` when that folder holds another series
        (of this run, of an earlier one, or files medden did not write), or its new UID as a last resort."""
        from medden.apps.naming import collision_suffix, render_name

        first = render_name(self.template, self.fields[key], new_uid) if any(
            f == "u" for _, f in self.template) else self.folder_names[key]
        for name in (first, first + collision_suffix(key), new_uid):
            if self.used.get(name.lower(), key) == key and self._free(self.output_dir / "dicom" / name, key, new_uid):
                self.used[name.lower()] = key
                return name
        raise ValueError(f"no free folder for series {new_uid} under {self.output_dir / 'dicom'}.")

    def _free(self, folder: Path, key: str, new_uid: str) -> bool:
        """Whether ``folder`` may receive series ``key``: it does not exist, is empty, is recorded as this
        series' in the manifest, or holds this very derived series (a killed run's files)."""
        if not folder.exists():
            return True
        if not folder.is_dir():
            return False
        owner = self.manifest.owner(folder)
        if owner is not None:
            return owner == key
        files = sorted(folder.iterdir())
        if not files:
            return True
        import pydicom

        try:
            found = pydicom.dcmread(files[0], stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        except Exception:  # not a DICOM file medden wrote: leave it alone
            return False
        return str(found.get("SeriesInstanceUID", "")) == new_uid

    def start(self, label: str, total: int = 0, announce: bool = True) -> Callable[[int, int], None] | None:
        """Go to the next series or file and :meth:`announce` it (unless not ``announce``)."""
        self.index += 1
        return self.announce(label, total) if announce else None

    def announce(self, label: str, total: int = 0) -> Callable[[int, int], None] | None:
        """Say the current series or file starts; return the slice callback for ``bundle.denoise`` (None if no
        one listens)."""
        if self.progress is None:
            return None
        index, count, progress = self.index, self.count, self.progress
        progress(ItemProgress(index, count, label, 0, total))
        return lambda done, slices: progress(ItemProgress(index, count, label, done, slices))

    def end(self, label: str, row: Mapping[str, Any]) -> None:
        """Announce that the current series or file ended, as ``row`` says."""
        if self.progress is not None:
            slices = int(row.get("slices") or 0)
            self.progress(ItemProgress(self.index, self.count, label, slices, slices, row["status"], row.get("reason")))


def outcome(report: Mapping[str, Any]) -> str:
    """How a run ended, from its report: ``"complete"`` (everything given was denoised or was
    already), ``"partial"`` (some series or files failed), ``"nothing denoised"`` or
    ``"stopped"`` (an error about OUTPUT, e.g. a full disk, ended it; what was done is kept)."""
    if report.get("stopped"):
        return "stopped"
    if not report["processed"]:
        return "nothing denoised"
    return "partial" if report["failed"] or report["failed_files"] else "complete"


def denoise_path(input_path: str | os.PathLike, output_dir: str | os.PathLike, bundle: Bundle,
                 resume: bool = True, overwrite: bool = False,
                 progress: Callable[[ItemProgress], None] | None = None,
                 name_template: str = DEFAULT_NAME_TEMPLATE) -> dict:
    """Denoise a DICOM folder or file, a NIfTI file, a folder of NIfTI files, or a folder of
    both, into ``output_dir``.

    Under ``torchrun --nproc_per_node N`` each process denoises every N-th series (no series
    twice, each rank keeps its own manifest) and rank 0 writes the merged report.

    DICOM series become derived series under ``output_dir/dicom/<name>/``, ``<name>`` made by
    ``name_template`` (:func:`medden.apps.naming.render_name`: by default modality, source series
    number and description, e.g. ``MR_3_T1_axial``; made filesystem-safe; series with the same
    name, or a folder already holding something else, get a suffix from their UID), each with
    a before | after PNG of its middle slice in ``output_dir/previews/``; NIfTI files become
    ``output_dir/nifti/<path>_denoised.nii.gz`` (their subfolders kept) with their affine, each
    with a JSON sidecar ``<path>_denoised.json`` (:func:`nifti_sidecar`).
    Every image is denoised by ``bundle.denoise``. One run at a time may write to
    ``output_dir``: a new run first deletes temporary files left there by a killed one.

    Every file and series fails alone: a file that cannot be read, a series that cannot be
    placed, decoded, denoised or written is recorded with its reason and the run goes on. An
    error about OUTPUT as a whole (:func:`run_ending_cause`: a full disk) stops the run, after the
    report and the manifest of what was finished are written; run again once it is fixed.

    Resuming (:mod:`medden.apps.run_record`): a series or file is skipped when the manifest
    says this model finished it from the same sources and its outputs are all there; else it
    is done again, and the files of its earlier result that were not replaced are deleted.

    Args:
        input_path: the input (see :func:`medden.io.inputs.identify_input`); only read.
        output_dir: where results go; must lie apart from the input.
        bundle: the loaded bundle.
        resume: skip what earlier runs finished (when still valid); else redo everything.
        overwrite: replace results of another model in ``output_dir`` (else refused).
        progress: called with an :class:`ItemProgress` as each series or file starts, as its
            slices are denoised and when it ends (from the calling thread); None: nothing is reported.
        name_template: how DICOM output folders are named (:data:`medden.apps.naming.NAME_FIELDS`);
            a series an earlier run finished keeps its folder (``resume=False`` renames it).

    Returns:
        The report, also written to ``output_dir/medden_report.json``: ``{"input_kind",
        "bundle", "model", "outcome", "series": [...], "skipped": [...], "processed",
        "failed", "failed_files", "warnings"}`` (and ``"stopped"`` with the reason when the
        run was stopped). Each series row has its status (``"done"``, ``"done (resumed,
        skipped)"`` or ``"failed"`` with a ``reason``), timing, the noise estimates before and
        after (:func:`noise_figures`) and any ``warnings`` that denoising did harm. Skipped
        files are named relative to the input folder, with ``failed`` False for files that are
        not images to denoise. ``outcome`` is :func:`outcome`.

    Raises:
        FileNotFoundError: the input does not exist.
        NotADirectoryError: ``output_dir`` is an existing file.
        ValueError: a bad ``name_template`` (:func:`medden.apps.naming.parse_name_template`),
            output inside input (or the reverse, see :func:`medden.io.files.check_output_dir`),
            an input medden does not read (see :func:`medden.io.inputs.identify_input`: an
            empty folder, a PNG), or results of another model in ``output_dir``
            (:class:`~medden.apps.run_record.ModelMismatchError`) without ``overwrite``.
        OSError: an error that ends the run (:func:`run_ending_cause`), after the report is written.
    """
    from medden.apps.naming import parse_name_template
    from medden.apps.run_record import RunManifest, model_identity
    from medden.io.files import check_output_dir
    from medden.io.inputs import VOLUME_INPUTS, identify_input

    template = parse_name_template(name_template)
    input_path, output_dir = Path(input_path), Path(output_dir)
    check_output_dir(input_path, output_dir)
    source = identify_input(input_path, VOLUME_INPUTS)
    output_dir.mkdir(parents=True, exist_ok=True)
    rank, world = _shard()
    model = model_identity(bundle)
    run = _Run(input_path if input_path.is_dir() else input_path.parent, output_dir, bundle,
               RunManifest(output_dir, model, resume, overwrite, rank, world), rank, world, progress=progress,
               template=template)
    run.count = len(list(source.files)[rank::world]) if source.kind.is_nifti else 0
    if rank == 0:
        _remove_stale_temp_files(output_dir)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # no rank writes before rank 0 has cleaned up
    kind = "mixed" if source.kind.is_nifti and source.kind.is_dicom else "nifti" if source.kind.is_nifti else "dicom"
    stopped = None
    try:
        if source.kind.is_dicom:
            _denoise_dicom(source, run)
        if source.kind.is_nifti:
            _denoise_nifti(source.files, run)
    except OSError as err:
        stopped = run_ending_cause(err)
        if stopped is None:
            raise
    reason = None if stopped is None else (
        f"{_failure(stopped, output_dir, 'OUTPUT')}; the series finished before are kept in {MANIFEST}: free the "
        "space (or fix OUTPUT) and run the same command again to go on")
    body = _gather({"series": run.rows, "skipped": [{"path": _relative(run.root / s.path, run.root),
                                                     "reason": s.reason, "failed": s.failed} for s in run.skipped],
                    "stopped": reason})
    stopped_reason = body.pop("stopped")
    report = {"input_kind": kind, "bundle": bundle.name, "model": model, **body,
              "processed": sum(r["status"].startswith("done") for r in body["series"]),
              "failed": sum(r["status"] == "failed" for r in body["series"]),
              "failed_files": sum(s["failed"] for s in body["skipped"]),
              "warnings": sum(bool(r.get("warnings")) for r in body["series"])}
    if stopped_reason is not None:  # this process's, or under torchrun another's: every rank reaches the gather
        report["stopped"] = stopped_reason
    report["outcome"] = outcome(report)
    if rank == 0:
        _write_json(output_dir / REPORT, report)
    if stopped is not None:
        raise stopped
    return report


def _gather(body: dict) -> dict:
    """Merge every rank's series rows, skipped files and stop reason (a no-op in a single process)."""
    import torch.distributed as dist

    from medden.engines.distributed import is_distributed

    if not is_distributed():
        return body
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, body)
    rows = sorted((row for part in parts for row in part["series"]), key=lambda r: str(r.get("series_uid")))
    reasons = [part["stopped"] for part in parts if part["stopped"]]
    return {"series": rows, "skipped": [s for part in parts for s in part["skipped"]],
            "stopped": reasons[0] if reasons else None}
