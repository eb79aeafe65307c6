"""What the viewer keeps of a denoised upload: display volumes and downloads, in memory only.

A :class:`Job` holds the noisy and denoised display volumes in the image's own units
(:mod:`medden.apps.serve.display`) and the downloads as bytes. :class:`JobStore` keeps the most
recent jobs, up to a count and a byte budget; nothing a job holds is ever on disk, so a
request's temporary folder can go as soon as it returns.
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

from medden.apps.serve.display import display_volume
from medden.core.validation import check_int

if TYPE_CHECKING:
    from medden.io import DicomSeries

__all__ = ["Download", "Job", "JobStore", "dicom_zip", "nifti_bytes", "png_bytes"]


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
        views: ``"noisy"`` and ``"denoised"`` -> float32 display volume
            (:func:`medden.apps.serve.display.display_volume`); the difference is made on request.
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
    pixels = np.clip(np.round(display_volume(np.asarray(denoised))[0]), 0, np.iinfo(dtype).max).astype(dtype)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()
