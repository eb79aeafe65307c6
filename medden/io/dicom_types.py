"""Data types shared by the DICOM folder reader and the derived-series writer.

The reader (:mod:`medden.io.dicom_folder`) turns a folder into :class:`DicomSeries`; the
writer (:mod:`medden.io.derived_series`) turns a :class:`DicomSeries` plus a denoised volume
into a new derived series. Neither imports the other: both depend only on these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

__all__ = ["DicomSeries", "SkippedFile"]


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not processed, and why.

    Attributes:
        path: the file, relative to the input folder when possible.
        reason: a short human-readable reason, never containing patient identifiers.
        failed: True for a file that should have been read and could not be (truncated,
            corrupt, undecodable, unusable header values, a file named ``.dcm`` that is not
            DICOM, an empty file): a run with such files did not do everything it was given.
            False for a file that is not an image to denoise (a text file, a structured
            report, a DICOMDIR, a duplicate copy).
        series_uid: the series the file belongs to, when it was left out because its whole
            series could not be arranged into a volume; else None.
    """

    path: Path
    reason: str
    failed: bool = True
    series_uid: str | None = None


@dataclass
class DicomSeries:
    """One image series, read, ordered and checked, ready to denoise.

    Attributes:
        series_uid: SeriesInstanceUID (or a derived key when one series is split, e.g.
            ``"<uid>#2"`` for the second group of a series with mixed image sizes).
        volume: float32 ``(1, H, W, D)`` in modality units (modality LUT applied,
            MONOCHROME1 inverted to MONOCHROME2 sense), axes as in :mod:`medden`: H runs along
            a DICOM row (columns), W down the columns (rows), D over slices/frames ordered by
            position along the slice normal. RGB series are ``(3, H, W, D)``.
        affine: 4x4 float64 RAS voxel-to-world matrix for ``volume``.
        headers: for single-frame series, one dataset per slice in ``volume`` order, read
            with ``stop_before_pixels`` semantics (no PixelData); for an enhanced multi-frame
            object, a single dataset and ``frame_order`` gives the frame index of each slice.
        paths: the source file of each header.
        frame_order: for multi-frame objects, the source frame index (0-based) of each
            slice of ``volume``; None for single-frame series.
        inverted_monochrome1: True if the stored pixels were MONOCHROME1 and were inverted.
        notes: warnings found while reading (e.g. "slice spacing varies by 3%").
    """

    series_uid: str
    volume: np.ndarray
    affine: np.ndarray
    headers: list[Dataset]
    paths: list[Path]
    frame_order: list[int] | None = None
    inverted_monochrome1: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def is_multiframe(self) -> bool:
        return self.frame_order is not None

    @property
    def n_slices(self) -> int:
        return int(self.volume.shape[-1])
