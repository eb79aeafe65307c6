"""What the viewer keeps of a denoised upload: display slices and downloads, in memory only.

A :class:`Job` holds the three views as 8-bit display volumes (noisy and denoised share one
grey window; the difference ``noisy - denoised`` has its own window, symmetric about 0 so
mid-grey means no change) and the downloads as bytes. Slices are encoded as PNG on request.
:class:`JobStore` keeps the most recent jobs, up to a count and a byte budget; nothing a job
holds is ever on disk, so a request's temporary folder can go as soon as it returns.

Display volumes are uint8 ``(D, W, H)`` (grey) or ``(D, W, H, 3)`` (RGB): slice ``k`` as a
viewer shows it, rows down the image.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medden.apps.serve.errors import UploadError
from medden.core.validation import check_int

if TYPE_CHECKING:
    from medden.io import DicomSeries

__all__ = ["VIEWS", "Download", "Job", "JobStore", "dicom_zip", "display_volumes", "nifti_bytes", "png_bytes",
           "slice_png"]

VIEWS = ("noisy", "denoised", "difference")
#: The grey window of noisy and denoised: these percentiles of the noisy volume.
WINDOW_PERCENTILES = (1.0, 99.0)
#: The difference window is +-(this percentile of |noisy - denoised|).
DIFFERENCE_PERCENTILE = 99.5


@dataclass(frozen=True)
class Download:
    """One file to download: its name, media type and bytes."""

    filename: str
    media_type: str
    content: bytes


@dataclass
class Job:
    """One denoised upload, as the page sees it.

    Attributes:
        id: random, unguessable key of the job.
        summary: the JSON answer of the upload (kind, bundle, shape, slices, URLs, notes, timing).
        views: ``VIEWS`` name -> uint8 display volume (see the module docstring).
        downloads: ``"dicom"`` / ``"nifti"`` / ``"png"`` -> :class:`Download`.
    """

    id: str
    summary: dict
    views: dict[str, np.ndarray]
    downloads: dict[str, Download] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.views.values()) + sum(len(d.content) for d in self.downloads.values())


class JobStore:
    """The most recent jobs, oldest dropped first once there are more than ``max_jobs`` or
    they hold more than ``max_bytes`` (the newest job is always kept). Thread-safe.

    Example:
        >>> store = JobStore(max_jobs=1)
        >>> store.add(Job("a", {}, {})); store.add(Job("b", {}, {}))
        >>> store.get("a") is None, store.get("b").id
        (True, 'b')
    """

    def __init__(self, max_jobs: int = 8, max_bytes: int = 1 << 30) -> None:
        self.max_jobs, self.max_bytes = check_int(max_jobs, "max_jobs"), check_int(max_bytes, "max_bytes")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > 1 and (len(self._jobs) > self.max_jobs
                                           or sum(j.nbytes for j in self._jobs.values()) > self.max_bytes):
                self._jobs.popitem(last=False)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def __len__(self) -> int:
        return len(self._jobs)


def _to_display(volume: np.ndarray) -> np.ndarray:
    """``(C, H, W, D)`` -> ``(D, W, H)`` for one channel, ``(D, W, H, 3)`` for three; other channel
    counts are averaged to grey."""
    if volume.shape[0] == 3:
        return volume.transpose(3, 2, 1, 0)
    grey = volume[0] if volume.shape[0] == 1 else volume.mean(axis=0)
    return grey.transpose(2, 1, 0)


def _window(values: np.ndarray, low: float, high: float) -> np.ndarray:
    scale = max(high - low, 1e-12)
    return np.ascontiguousarray(np.round(np.clip((values - low) / scale, 0.0, 1.0) * 255.0).astype(np.uint8))


def display_volumes(noisy: np.ndarray, denoised: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    """The three views of a job as uint8 display volumes, and the windows used.

    Args:
        noisy: the input, float ``(C, H, W, D)``.
        denoised: the result, same shape and units.

    Returns:
        ``(views, windows)``: ``views`` maps each of :data:`VIEWS` to a uint8 volume (module
        docstring); ``windows`` is ``{"image": [low, high], "difference": [-half, half]}`` in
        the image's units (low maps to black, high to white).
    """
    noisy, denoised = np.asarray(noisy, np.float32), np.asarray(denoised, np.float32)
    low, high = (float(v) for v in np.percentile(noisy, WINDOW_PERCENTILES))
    if high <= low:
        low, high = float(noisy.min()), float(noisy.max()) + 1e-6
    difference = noisy - denoised
    half = float(np.percentile(np.abs(difference), DIFFERENCE_PERCENTILE)) or float(np.abs(difference).max()) or 1.0
    views = {"noisy": _window(_to_display(noisy), low, high),
             "denoised": _window(_to_display(denoised), low, high),
             "difference": _window(_to_display(difference), -half, half)}
    return views, {"image": [low, high], "difference": [-half, half]}


def slice_png(view: np.ndarray, k: int) -> bytes:
    """Slice ``k`` of a uint8 display volume as PNG bytes (grey ``L`` or ``RGB``).

    Raises:
        UploadError: 404, ``k`` outside ``[0, N)``.
    """
    from PIL import Image

    if not 0 <= k < view.shape[0]:
        raise UploadError(404, f"slice {k} does not exist; this image has slices 0 to {view.shape[0] - 1}.")
    out = io.BytesIO()
    Image.fromarray(view[k]).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def dicom_zip(series: DicomSeries, denoised: np.ndarray, folder: Path, model: str, parameters: dict) -> bytes:
    """The derived DICOM series of ``denoised`` (:func:`medden.io.write_derived_series`), zipped.

    Args:
        series: the source :class:`~medden.io.DicomSeries`.
        denoised: ``(C, H, W, D)`` in modality units, the shape of ``series.volume``.
        folder: an empty folder of the request, outside the source files' folder; the
            series is written there, then read into the zip.
        model: the bundle name recorded in the derivation.
        parameters: the bundle's parameters (they also enter the new UIDs).

    Returns:
        A zip holding ``<new SeriesInstanceUID>/<index:04d>.dcm``.
    """
    from medden.io import write_derived_series

    paths = write_derived_series(series, denoised, folder, method="medden serve", model=model,
                                 parameters=parameters, overwrite=True)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in paths:
            archive.write(path, arcname=path.relative_to(folder).as_posix())
    return out.getvalue()


def nifti_bytes(denoised: np.ndarray, affine: np.ndarray, flat: bool, path: Path) -> bytes:
    """``denoised`` (``(C, H, W, D)``) as ``.nii.gz`` bytes with ``affine``; a 2D image when
    ``flat`` (N is 1). ``path`` is a scratch file in the request's folder."""
    from medden.io import write_nifti

    write_nifti(denoised[..., 0] if flat else denoised, path, affine, overwrite=True)
    return path.read_bytes()


def png_bytes(denoised: np.ndarray, bits: int) -> bytes:
    """A one-slice ``(C, H, W, 1)`` image as a PNG of ``bits`` (8 or 16) per sample, rounded and
    clipped to ``[0, 2**bits - 1]``: grey for one channel, RGB for three."""
    from PIL import Image

    dtype = np.uint16 if bits == 16 else np.uint8
    pixels = np.clip(np.round(_to_display(np.asarray(denoised))[0]), 0, np.iinfo(dtype).max).astype(dtype)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()
