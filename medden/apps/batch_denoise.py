"""Batch denoising of DICOM folders and NIfTI files with a trained medden bundle.

This is the library behind ``medden denoise INPUT OUTPUT``: anything the command does, a call
to :func:`denoise_path` does. It sits on top of the other layers (``io`` reads and writes,
``inference`` runs the network), which it imports only when called, so that importing this
module (as ``medden --help`` does) stays fast.

A bundle is a folder (``configs/inference.json``, ``models/model.pt``) or the name of one
shipped in the source checkout's ``bundles/`` folder (:func:`resolve_bundle`); the command's
default is :data:`DEFAULT_BUNDLE`. Its ``inference.json`` may declare
``intensity_percentiles`` (two numbers in [0, 100]): the intensities mapped to [0, 1]
before the network, as in training (default: the image's minimum and maximum), and
``intensity_smoothing`` (pixels): measure those percentiles on a box-smoothed copy, so noise
does not move them (see :func:`medden.inference.volumes.intensity_range`).

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_BUNDLE", "LoadedBundle", "bundle_config", "bundle_network", "check_paths", "denoise_path", "load_bundle",
           "noise_figures",
           "resolve_bundle", "shipped_bundles", "shipped_bundles_dir", "write_preview"]

DEFAULT_BUNDLE = "general_denoiser"
MANIFEST = "medden_manifest.json"
REPORT = "medden_report.json"
PERCENTILES_KEY = "intensity_percentiles"
SMOOTHING_KEY = "intensity_smoothing"
CHANNELS_KEY = "image_channels"
BUNDLE_CONFIG = Path("configs") / "inference.json"
# atomic_write's temporary files: "." + stem + "." + 8 random characters (tempfile.mkstemp) + ".tmp" + suffixes
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\..+)?")
logger = logging.getLogger(__name__)


@dataclass
class LoadedBundle:
    """A trained bundle ready for inference: network, inferer and what to record about it.

    ``percentiles`` are the intensity percentiles that :func:`~medden.inference.denoise_image`
    maps to [0, 1] for this network (the bundle's ``intensity_percentiles``), measured after a
    ``smoothing`` x ``smoothing`` box mean (``intensity_smoothing``; 0 = on the image itself).
    ``image_channels`` is how many channels one image has for the network (the bundle's
    ``image_channels``; 1 = grey, 3 = RGB). ``backend`` is what runs the network (one of
    :data:`medden.bundle.exports.BACKENDS`); ``network`` is then the PyTorch network or its
    exported stand-in, called alike.
    """

    name: str
    network: torch.nn.Module
    inferer: Callable
    parameters: dict[str, Any]
    percentiles: tuple[float, float] = (0.0, 100.0)
    smoothing: int = 0
    image_channels: int = 1
    backend: str = "torch"


def shipped_bundles_dir() -> Path:
    """The ``bundles/`` folder of the source checkout medden runs from (``<repo>/bundles``).

    It exists only for an install from the repository (``pip install -e .``); callers check.
    """
    return Path(__file__).resolve().parents[2] / "bundles"


def shipped_bundles() -> list[str]:
    """Names of the bundles in :func:`shipped_bundles_dir` (folders with ``configs/inference.json``), sorted."""
    folder = shipped_bundles_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / BUNDLE_CONFIG).is_file())


def resolve_bundle(name_or_dir: str | os.PathLike) -> Path:
    """The folder of a bundle given as a folder or as the name of a shipped bundle.

    An existing path is taken as the bundle folder; otherwise a plain name (no ``/``) is
    looked up in :func:`shipped_bundles_dir`.

    Raises:
        FileNotFoundError: an existing folder without ``configs/inference.json``, a missing
            folder, or an unknown name (the message lists the shipped names).
    """
    path = Path(name_or_dir)
    if path.exists():
        if not (path / BUNDLE_CONFIG).is_file():
            raise FileNotFoundError(
                f"{str(path)!r} is not a medden bundle: {str(path / BUNDLE_CONFIG)!r} does not exist.")
        return path
    name = os.fspath(name_or_dir)
    if path.name != name or name in ("", ".", ".."):
        raise FileNotFoundError(f"bundle folder {name!r} does not exist.")
    if name in shipped_bundles():
        return shipped_bundles_dir() / name
    names = ", ".join(shipped_bundles()) or f"none, there is no bundle in {str(shipped_bundles_dir())!r}"
    raise FileNotFoundError(
        f"unknown bundle {name!r}: it is neither a folder nor a shipped bundle (shipped: {names}); pass a "
        "bundle folder or one of the shipped names.")


def bundle_config(root: Path):
    """The ``monai.bundle.ConfigParser`` of the bundle folder ``root``'s ``configs/inference.json``,
    with ``bundle_root`` set to ``root`` (so ``model_path`` is its ``models/model.pt``)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(root / BUNDLE_CONFIG))
    parser["bundle_root"] = str(root)
    return parser


def load_bundle(bundle_dir: str | os.PathLike, device: str | torch.device | None = None,
                batch_size: int | None = None, overrides: dict[str, Any] | None = None,
                backend: str = "torch") -> LoadedBundle:
    """Load a bundle's ``configs/inference.json`` ``network`` and ``inferer``.

    The config is evaluated with ``bundle_root`` set to the bundle folder (so its
    ``models/model.pt`` is used) and ``device`` overridden when given. With an exported
    ``backend`` the network comes from ``models/model.ts`` / ``model.onnx`` /
    ``model_int8.onnx`` instead (written by ``medden export``), and the inferer is the same.

    Args:
        bundle_dir: a bundle folder, or the name of a shipped one (:func:`resolve_bundle`).
        device: where the network runs; default: the bundle's own choice.
        batch_size: slices or windows per network call, set as the ``sw_batch_size`` of
            the inferer and of every ``base_inferer`` it wraps; default: the bundle's.
        overrides: further config ids and values, e.g. ``{"model_path": "other.pt",
            "noise": "poisson"}`` (as ``--key value`` on the bundle command line).
        backend: one of :data:`medden.bundle.exports.BACKENDS`, or ``"auto"``: the fastest one
            the bundle has a current export of that loses under 0.1 dB
            (:func:`medden.bundle.exports.choose_backend`).

    Raises:
        FileNotFoundError: no such bundle (see :func:`resolve_bundle`), or an exported
            ``backend`` the bundle has no export of.
        TypeError: ``batch_size`` is not an int.
        ValueError: ``batch_size < 1``, or given for an inferer without ``sw_batch_size``;
            bad ``intensity_percentiles``; a config that does not evaluate; an unknown
            ``backend``, a stale export, or an exported one with an overridden ``model_path``
            (exports are of ``models/model.pt``).
        CheckpointError: the weights do not load.
    """
    import torch

    from medden.bundle.exports import choose_backend
    from medden.bundle.backends import load_exported_network

    root = resolve_bundle(bundle_dir)
    parser = bundle_config(root)
    if device is not None:
        parser["device"] = f"$torch.device('{torch.device(device)}')"
    for key, value in (overrides or {}).items():
        parser[key] = value
    other_weights = "model_path" in (overrides or {})
    if other_weights and backend not in ("torch", "auto"):
        raise ValueError(f"backend {backend!r} runs the bundle's export of models/model.pt; it cannot run the "
                         f"overridden model_path {overrides['model_path']!r} (use backend='torch').")
    backend = "torch" if other_weights else choose_backend(root, backend)
    if backend == "torch":
        network = parser.get_parsed_content("network").eval()
    else:
        network = load_exported_network(root, backend, parser.get_parsed_content("device"))
    inferer = parser.get_parsed_content("inferer")
    if batch_size is not None:
        _set_batch_size(inferer, batch_size)
    meta_file = root / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    parameters = {key: parser[key] for key in ("refine_eta", "refine_steps", "keep_observed") if key in parser}
    percentiles = (0.0, 100.0)
    if PERCENTILES_KEY in parser:
        percentiles = _check_percentiles(parser.get_parsed_content(PERCENTILES_KEY), root)
        parameters[PERCENTILES_KEY] = list(percentiles)  # they change the pixels, so they belong in the UIDs
    smoothing = parser.get_parsed_content(SMOOTHING_KEY) if SMOOTHING_KEY in parser else 0
    if isinstance(smoothing, bool) or not isinstance(smoothing, int) or smoothing < 0:
        raise ValueError(f"{SMOOTHING_KEY} in {str(root / BUNDLE_CONFIG)!r} must be a whole number of pixels >= 0; "
                         f"got {smoothing!r}.")
    if smoothing:
        parameters[SMOOTHING_KEY] = smoothing
    image_channels = parser.get_parsed_content(CHANNELS_KEY) if CHANNELS_KEY in parser else 1
    if isinstance(image_channels, bool) or not isinstance(image_channels, int) or image_channels < 1:
        raise ValueError(f"{CHANNELS_KEY} in {str(root / BUNDLE_CONFIG)!r} must be a whole number >= 1 (1 grey, "
                         f"3 RGB); got {image_channels!r}.")
    if backend != "torch":
        parameters["backend"] = backend  # int8 changes the pixels, so it belongs in the UIDs
    name = f"{root.resolve().name} {meta.get('version', '')}".strip()
    logger.info("bundle %s runs on the %s backend", name, backend)
    return LoadedBundle(name=name, network=network, inferer=inferer, parameters=parameters, percentiles=percentiles,
                        smoothing=smoothing, image_channels=image_channels, backend=backend)


def bundle_network(bundle_dir: str | os.PathLike, weights: str | os.PathLike) -> torch.nn.Module:
    """A bundle's ``network_def`` (from ``configs/inference.json``) with ``weights`` loaded, in eval
    mode on the CPU: for scoring checkpoints other than the bundle's own ``models/model.pt``.

    Raises:
        FileNotFoundError: no such bundle (see :func:`resolve_bundle`) or weights file.
        CheckpointError: the weights do not fit the network.
    """
    from medden.io import load_network_weights

    parser = bundle_config(resolve_bundle(bundle_dir))
    return load_network_weights(parser.get_parsed_content("network_def"), weights).eval()


def _set_batch_size(inferer: Callable, batch_size: int) -> None:
    """Set ``sw_batch_size`` on ``inferer`` and on each ``base_inferer`` it wraps."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}; it is how many slices or windows go "
                         "through the network at once.")
    found = False
    node = inferer
    while node is not None:
        if hasattr(node, "sw_batch_size"):
            node.sw_batch_size = batch_size
            found = True
        node = getattr(node, "base_inferer", None)
    if not found:
        raise ValueError(f"batch_size={batch_size} was given, but the bundle's inferer {type(inferer).__name__} "
                         "(and any base_inferer it wraps) has no sw_batch_size to set; leave batch_size out for "
                         "this bundle.")


def _check_percentiles(value: Any, root: Path) -> tuple[float, float]:
    where = f"{PERCENTILES_KEY} in {str(root / BUNDLE_CONFIG)!r}"
    if (isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{where} must be two numbers [low, high], e.g. [0.5, 99.5]; got {value!r}.")
    low, high = float(value[0]), float(value[1])
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"{where} must satisfy 0 <= low < high <= 100; got {value!r}.")
    return low, high


def noise_figures(before: np.ndarray, after: np.ndarray, max_slices: int = 16) -> dict[str, Any]:
    """The report's noise estimates for one series, before and after denoising.

    * ``noise_sigma_before/after``: wavelet-detail MAD averaged over at most ``max_slices``
      slices (:func:`medden.core.noise_estimation.estimate_noise_sigma`), in the series' units.
    * ``background_sigma_before/after``: for magnitude MR, the noise of the background air
      with the Rician (Rayleigh) correction (:func:`medden.core.noise_estimation.rician_background_sigma`,
      the air found once, on ``before``); None with ``background_note`` saying why when the
      image has no usable air (CT, radiographs, zero-filled or multi-coil backgrounds).

    ``before`` and ``after`` are ``(C, X, Y[, N])`` in the same units; volumes are measured on
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

    Both are ``(C, X, Y[, N])`` in the same units; the grey window is the 1-99th percentile of
    ``before``'s slice, shared by both halves so they compare directly. Rows run down the
    DICOM columns (the image as a viewer shows it).
    """
    from PIL import Image

    from medden.io.files import atomic_write

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


def check_paths(input_path: Path, output_dir: Path) -> None:
    """Refuse a missing input, OUTPUT inside INPUT (or its folder) and INPUT inside OUTPUT."""
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


def _denoise_series(plan: Any, loading: Future, output_dir: Path, bundle: LoadedBundle, skipped: list) -> dict:
    """Denoise and write the series ``loading`` reads; return its report row (status done or failed)."""
    from medden.inference import denoise_image
    from medden.io import write_derived_series

    row: dict[str, Any] = {"series_uid": plan.series_uid, "slices": int(plan.shape[-1])}
    started = time.perf_counter()
    try:
        series, problems = loading.result()
        skipped.extend(problems)
        if series is None:
            raise ValueError("no slice of this series could be decoded")
        denoised = denoise_image(series.volume, bundle.network, bundle.inferer, percentiles=bundle.percentiles,
                                 smoothing=bundle.smoothing)
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


def _denoise_dicom(input_dir: Path, output_dir: Path, bundle: LoadedBundle, resume: bool,
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


def _denoise_nifti(input_path: Path, output_dir: Path, bundle: LoadedBundle, rank: int, world: int) -> dict:
    from medden.inference.volumes import denoise_nifti_file, nifti_stem
    from medden.io.nifti import list_nifti_files

    files = ([input_path] if input_path.is_file() else list_nifti_files(input_path))[rank::world]
    (output_dir / "nifti").mkdir(parents=True, exist_ok=True)
    rows = []
    for path in files:
        started = time.perf_counter()
        row: dict[str, Any] = {"file": path.name}
        try:
            out_path = output_dir / "nifti" / f"{nifti_stem(path)}_denoised.nii.gz"
            volume, denoised = denoise_nifti_file(path, out_path, bundle.network, bundle.inferer,
                                                  percentiles=bundle.percentiles, overwrite=True,
                                                  smoothing=bundle.smoothing)
            row.update(status="done", output=str(out_path.relative_to(output_dir)),
                       **noise_figures(volume.numpy(), denoised.numpy()))
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
    files become ``output_dir/nifti/<name>_denoised.nii.gz`` with their affine. Every image is
    scaled by ``bundle.percentiles`` (after ``bundle.smoothing``) before the network. The report is also written to
    ``output_dir/medden_report.json``. One run at a time may write to ``output_dir``: a new
    run first deletes temporary files left there by a killed one.

    Returns:
        The report: ``{"input_kind", "bundle", "series": [...], "skipped": [...],
        "processed": int, "failed": int}``; each series row has its status (``"done"``,
        ``"done (resumed, skipped)"`` or ``"failed"`` with a ``reason``), timing and the
        noise estimates (:func:`noise_figures`) before and after.

    Raises:
        FileNotFoundError: the input does not exist.
        ValueError: output inside input (or the reverse), or an input with nothing to read.
    """
    input_path, output_dir = Path(input_path), Path(output_dir)
    check_paths(input_path, output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rank, world = _shard()
    if rank == 0:
        _remove_stale_temp_files(output_dir)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # no rank writes before rank 0 has cleaned up
    is_nifti = input_path.is_file() or any(p.name.endswith((".nii", ".nii.gz")) for p in input_path.iterdir())
    body = _denoise_nifti(input_path, output_dir, bundle, rank, world) if is_nifti else _denoise_dicom(
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
