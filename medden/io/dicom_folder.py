"""Read a folder of DICOM files (e.g. a PACS export) into ordered, checked image series.

Three steps, each usable on its own:

1. :func:`discover_dicom_files` walks the folder and reads headers only.
2. :func:`plan_dicom_series` groups image headers by SeriesInstanceUID, splits series that
   cannot form one volume (mixed sizes, several orientations, repeats at one position),
   orders slices along the slice normal and builds each part's affine. Still no pixels.
3. :func:`load_dicom_series` decodes one plan's pixels, file by file, into a preallocated
   float32 volume in modality units.

:func:`read_dicom_folder` runs all three. For large folders, plan once and load one series
at a time (or shard plans across processes), so only one volume is in memory.

Nothing stops on a bad file: files that are not DICOM, non-image objects (SR, RT plans,
segmentations, PDFs, presentation states), truncated or corrupt files and transfer syntaxes
that cannot be decoded come back as :class:`~medden.io.dicom_types.SkippedFile` with a
reason. Reasons and notes never quote free-text tags, so they carry no patient identifiers;
pydicom's own warnings and log records, which can quote tag values, are silenced while
reading (this uses :func:`warnings.catch_warnings`, so read from one thread at a time).

Volumes are ``(C, H, W, D)`` in the package's axis order (:mod:`medden`: H along a DICOM row,
W down the columns, D over slices); affines are RAS.
"""

from __future__ import annotations

import logging
import os
import struct
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder, iter_pixels, pixel_array
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from medden.io.dicom_slices import Slice, make_slices, number_vector, order_slices, split_slices
from medden.io.dicom_series import first_value, modality_dataset, modality_frame
from medden.io.dicom_types import DicomSeries, SkippedFile
from medden.io.files import describe_error, files_below

__all__ = [
    "DicomSeriesPlan",
    "discover_dicom_files",
    "load_dicom_series",
    "plan_dicom_series",
    "read_dicom_folder",
]

INSTALL_DICOM_EXTRA = 'pip install "medden[dicom]"'
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
# SOP classes whose pixel data are labels or doses, not images to denoise
_NOT_IMAGES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.8": "Height Map Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.481.2": "RT Dose Storage",
}
_NO_PIXEL_DATA = "no pixel data (not an image)"
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
_GEOMETRY = (("ImagePositionPatient", ("PlanePositionSequence",), 3),
             ("ImageOrientationPatient", ("PlaneOrientationSequence",), 6),
             ("PixelSpacing", ("PixelMeasuresSequence",), 2))
_FLOAT_PIXEL_TAGS = {0x7FE00008, 0x7FE00009}
_PIXEL_DATA_TAG = 0x7FE00010
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_VRS = {b"OB", b"OW", b"UN"}
_DEFER_SIZE = "16 KB"  # larger values (private blobs) are read from the file when accessed
_QUIET_LOGGERS = ("pydicom", "pydicom.pixels.decoders.base", "pydicom.pixels.utils")


@dataclass(frozen=True)
class _Header:
    path: Path
    rel: Path
    ds: Dataset
    pixel_problem: str | None


@dataclass
class DicomSeriesPlan:
    """One series (or one part of a split series), checked and ordered, before decoding.

    Attributes:
        series_uid: as :attr:`DicomSeries.series_uid` (``"<uid>#2"`` for a second part).
        headers: as :attr:`DicomSeries.headers`, in slice order (no pixel data).
        paths: the source file of each header.
        frame_order: for multi-frame objects, the source frame of each slice; else None.
        affine: 4x4 float64 RAS affine of the volume.
        shape: the volume's shape ``(C, H, W, D)``.
        notes: splits and geometry warnings, as :attr:`DicomSeries.notes`.
        root: the folder the files were found in (skip reasons give paths relative to it).
    """

    series_uid: str
    headers: list[Dataset]
    paths: list[Path]
    frame_order: list[int] | None
    affine: np.ndarray
    shape: tuple[int, int, int, int]
    notes: list[str]
    root: Path
    _slices: list[Slice] = field(repr=False, default_factory=list)
    _split_notes: list[str] = field(repr=False, default_factory=list)

    @property
    def inverted_monochrome1(self) -> bool:
        ds = self.headers[0]
        return self.shape[0] == 1 and ds.get("PhotometricInterpretation") == "MONOCHROME1"


# ----------------------------------------------------------------------------- discovery


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's warnings and log records: they can quote tag values."""
    drop = _DropAll()
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


def _check_folder(folder: str | os.PathLike) -> Path:
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path (str or os.PathLike), got {type(folder).__name__}.")
    path = Path(folder)
    if not path.is_dir():
        state = "is a file" if path.exists() else "does not exist"
        raise NotADirectoryError(
            f"folder must be an existing folder of DICOM files, but {str(path)!r} {state}; "
            "pass the folder that holds the export."
        )
    return path


def _pixel_data_problem(f: BinaryIO, ds: Dataset, size: int) -> str | None:
    """Why the pixel data that follows the header in ``f`` is unusable, or None.

    ``f`` must sit where ``dcmread(stop_before_pixels=True)`` left it: at the pixel data
    element, or at the end of a file that has none. Reads only the element's header.
    """
    if ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return None  # a compressed stream: positions in it are not file offsets
    implicit, little = ds.original_encoding
    start = f.tell()
    head = f.read(12)
    if len(head) < 8:
        return _NO_PIXEL_DATA
    group, element = struct.unpack("<HH" if little else ">HH", head[:4])
    tag = group << 16 | element
    if tag in _FLOAT_PIXEL_TAGS:
        return "float or double pixel data (e.g. a parametric map) is not supported"
    if tag != _PIXEL_DATA_TAG:
        return None
    fmt = "<I" if little else ">I"
    if not implicit and head[4:6] in _PIXEL_VRS:
        length, header_size = struct.unpack(fmt, head[8:12])[0], 12
    else:  # implicit VR (some files say explicit but are not: pydicom copes, so do we)
        length, header_size = struct.unpack(fmt, head[4:8])[0], 8
    if length != _UNDEFINED_LENGTH and start + header_size + length > size:
        present = max(size - start - header_size, 0)
        return f"pixel data is truncated: {present} of {length} bytes present"
    return None


def _read_header(path: Path, rel: Path) -> _Header | SkippedFile | None:
    """The header of ``path``; a SkippedFile if it is not usable DICOM; None for DICOMDIR."""
    if path.name.upper() == "DICOMDIR":
        return None
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            preamble = f.read(132)
            if len(preamble) < 132 or preamble[128:] != b"DICM":
                return _not_dicom(rel, size)
            f.seek(0)
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=False, defer_size=_DEFER_SIZE)
            problem = _pixel_data_problem(f, ds, size)
    except OSError as exc:
        return SkippedFile(rel, f"could not be read ({type(exc).__name__})")
    except Exception as exc:  # pydicom raises many types on malformed headers
        return SkippedFile(rel, f"DICOM header is truncated or corrupt ({describe_error(exc, path)})")
    if ds.file_meta.get("MediaStorageSOPClassUID") == _DICOMDIR_SOP_CLASS:
        return None
    return _Header(path, rel, ds, problem)


def _not_dicom(rel: Path, size: int) -> SkippedFile:
    """A file without the DICOM marker: a failure when it is empty or named as DICOM, else not for us."""
    if size == 0:
        return SkippedFile(rel, "empty file (0 bytes), probably an interrupted copy")
    claims = rel.suffix.lower() in _DICOM_SUFFIXES
    reason = "not a DICOM file (no 'DICM' marker after the preamble)"
    return SkippedFile(rel, reason + ("; its name says DICOM, so it is probably corrupt" if claims else ""),
                       failed=claims)


def _scan(folder: str | os.PathLike,
          files: Iterable[str | os.PathLike] | None = None) -> tuple[Path, list[_Header], list[SkippedFile]]:
    """Headers of ``files`` (default: every file under ``folder``), paths made relative to ``folder``."""
    root = _check_folder(folder)
    headers: list[_Header] = []
    skipped: list[SkippedFile] = []
    with _quiet_pydicom():
        for path in (files_below(root) if files is None else sorted(Path(p) for p in files)):
            found = _read_header(path, _relative(path, root))
            if isinstance(found, _Header):
                headers.append(found)
            elif found is not None:
                skipped.append(found)
    return root, headers, skipped


def discover_dicom_files(folder: str | os.PathLike) -> tuple[list[Path], list[SkippedFile]]:
    """Find the DICOM files under ``folder``, reading headers only.

    Walks nested folders (not following folder links); file names need no ``.dcm``. A file
    is DICOM if it has the Part 10 ``DICM`` marker and its header parses
    (``stop_before_pixels=True``, ``force=False``; values over 16 KB, such as private
    vendor blobs, stay on disk until accessed). DICOMDIR index files are ignored.

    Args:
        folder: the folder to search.

    Returns:
        ``(files, skipped)``: the DICOM files in sorted path order (images or not), and the
        other files with the reason, paths relative to ``folder``.

    Raises:
        TypeError: ``folder`` is not a path.
        NotADirectoryError: ``folder`` is not an existing folder.
    """
    _, headers, skipped = _scan(folder)
    return [h.path for h in headers], skipped


# ----------------------------------------------------------------------------- planning


def _decoder_problem(transfer_syntax: UID) -> str | None:
    """Why pixel data in ``transfer_syntax`` cannot be decoded here, or None."""
    try:
        decoder = get_decoder(transfer_syntax)
    except NotImplementedError:
        return (
            f"transfer syntax {transfer_syntax.name!r} ({transfer_syntax}) cannot be decoded "
            "by pydicom; convert the file to an uncompressed or JPEG/RLE syntax first"
        )
    if not decoder.is_available:
        return _missing_plugin(transfer_syntax)
    return None


def _missing_plugin(transfer_syntax: UID) -> str:
    return (
        f"decoding {transfer_syntax.name!r} pixel data needs a plugin that is not installed; "
        f"install the DICOM extra: {INSTALL_DICOM_EXTRA}"
    )


def _image_problem(header: _Header) -> SkippedFile | None:
    """Why ``header`` is not an image medden can read (as a :class:`SkippedFile`), or None."""
    ds = header.ds
    sop = UID(str(ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID", "")))
    if sop in _NOT_IMAGES:
        return SkippedFile(header.rel, f"{_NOT_IMAGES[sop]} object: its pixel data are not an image to denoise",
                           failed=False)
    looks_like_image = "Rows" in ds or "SOPClassUID" not in ds or "Image Storage" in sop.name
    if header.pixel_problem == _NO_PIXEL_DATA and not looks_like_image:
        return SkippedFile(header.rel, f"{sop.name or 'unknown SOP class'}: {_NO_PIXEL_DATA}", failed=False)
    problem = _image_header_problem(header, sop)
    return None if problem is None else SkippedFile(header.rel, problem)


def _image_header_problem(header: _Header, sop: UID) -> str | None:
    """Why an image's header cannot be used, or None."""
    ds = header.ds
    if header.pixel_problem == _NO_PIXEL_DATA:
        return (
            f"{sop.name or 'unknown SOP class'}: the header stops before any pixel data; the "
            "file is probably truncated"
        )
    if header.pixel_problem:
        return f"{sop.name or 'unknown SOP class'}: {header.pixel_problem}"
    if not ds.get("SOPClassUID") or not ds.get("SOPInstanceUID"):
        return ("no SOPClassUID or SOPInstanceUID, so the file does not say what it is and no derived image can "
                "refer to it")
    if not ds.get("SeriesInstanceUID"):
        return "no SeriesInstanceUID, so the file cannot be grouped into a series"
    if not (ds.get("Rows") and ds.get("Columns") and ds.get("BitsAllocated")):
        return f"{sop.name or 'unknown SOP class'}: no image pixel description (Rows/Columns)"
    if str(ds.get("PhotometricInterpretation", "")).startswith("PALETTE"):
        return "PALETTE COLOR images hold colour indices, not intensities; not supported"
    try:
        int(ds.Rows), int(ds.Columns), int(ds.get("SamplesPerPixel", 1)), int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        return "Rows, Columns, SamplesPerPixel or NumberOfFrames is not a whole number"
    geometry = _geometry_problem(ds)
    if geometry:
        return geometry
    transfer_syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    return _decoder_problem(transfer_syntax)


def _geometry_problem(ds: Dataset) -> str | None:
    """Why the (first frame's) position, orientation or pixel spacing present in ``ds`` is unusable, or None."""
    for keyword, groups, size in _GEOMETRY:
        value = first_value(ds, keyword, groups)
        if value is None or value == "":
            continue
        if number_vector(value if isinstance(value, (list, MultiValue)) else [value], size) is None:
            return (f"{keyword} is not {size} finite numbers (a value that is not a number, or too few or many), so "
                    "the image cannot be placed in space")
    return None


def _plan(root: Path, uid: str, slices: list[Slice], split_notes: list[str]) -> DicomSeriesPlan:
    ordered, affine, geometry_notes = order_slices(slices)
    ds = ordered[0].header
    shape = (
        int(ds.get("SamplesPerPixel", 1)),
        int(ds.Columns),
        int(ds.Rows),
        len(ordered),
    )
    multiframe = ordered[0].multiframe
    return DicomSeriesPlan(
        series_uid=uid,
        headers=[ds] if multiframe else [s.header for s in ordered],
        paths=[ordered[0].path] if multiframe else [s.path for s in ordered],
        frame_order=[s.frame for s in ordered] if multiframe else None,
        affine=affine,
        shape=shape,
        notes=split_notes + geometry_notes,
        root=root,
        _slices=ordered,
        _split_notes=split_notes,
    )


def plan_dicom_series(
    folder: str | os.PathLike, files: Iterable[str | os.PathLike] | None = None,
) -> tuple[list[DicomSeriesPlan], list[SkippedFile]]:
    """Group, check and order the image series under ``folder``, without decoding pixels.

    Image files are grouped by SeriesInstanceUID. Single-frame files of a series form one
    volume; each multi-frame object forms its own. A group is split into parts (``uid``,
    ``uid#2``, ...) when it mixes image layouts (size, samples, pixel spacing), holds
    several orientations (beyond a 0.001 tolerance on the direction cosines) or several
    slices at one position (split by echo, temporal position, ... else by repeat). Each part
    is ordered along the slice normal (ImagePositionPatient, or for enhanced objects the
    per-frame PlanePositionSequence); without positions, by InstanceNumber or frame number.
    Non-uniform spacing, gantry tilt, splits and fallbacks are recorded in ``notes``.

    Nothing here raises on a bad file or series: a file with unusable header values (a
    position that is not a number, no SOPClassUID) is skipped alone, and a series that
    cannot be arranged into a volume is skipped whole (its files come back with its
    ``series_uid`` and the reason), so the other series are planned as usual.

    Args:
        folder: the folder to read (nested folders included); skipped files are named
            relative to it.
        files: read only these files (e.g. from :func:`medden.io.inputs.identify_input`);
            default: every file under ``folder``.

    Returns:
        ``(plans, skipped)``: plans sorted by series UID, and every file that was left out
        with the reason (not DICOM, not an image, truncated, undecodable transfer syntax,
        duplicate SOPInstanceUID, unusable header values, an unplaceable series).

    Raises:
        TypeError: ``folder`` is not a path.
        NotADirectoryError: ``folder`` is not an existing folder.
    """
    root, headers, skipped = _scan(folder, files)
    by_series: dict[str, list[Slice]] = defaultdict(list)
    seen: set[str] = set()
    with _quiet_pydicom():
        for header in headers:
            try:
                problem = _image_problem(header)
            except Exception as exc:  # header values of any malformed kind
                problem = SkippedFile(header.rel, f"unusable header ({describe_error(exc, header.path)})")
            sop_instance = str(header.ds.get("SOPInstanceUID", ""))
            if problem is None and sop_instance in seen:
                problem = SkippedFile(header.rel, "same SOPInstanceUID as another file already read (a duplicate copy)",
                                      failed=False)
            if problem is not None:
                skipped.append(problem)
                continue
            seen.add(sop_instance)
            by_series[str(header.ds.SeriesInstanceUID)].extend(make_slices(header.ds, header.path))
        plans = []
        for uid in sorted(by_series):
            try:
                plans.extend(_plan_series(root, uid, by_series[uid]))
            except Exception as exc:  # geometry of any malformed kind: this series only
                reason = f"its series could not be arranged into a volume ({describe_error(exc)})"
                files_of_series = sorted({s.path for s in by_series[uid]})
                skipped.extend(SkippedFile(_relative(p, root), reason, series_uid=uid) for p in files_of_series)
    return plans, skipped


def _plan_series(root: Path, uid: str, slices: list[Slice]) -> list[DicomSeriesPlan]:
    """The plans of one series' slices: one per consistent part."""
    units: dict[Path | None, list[Slice]] = defaultdict(list)
    for s in slices:  # each multi-frame object is a unit; single frames share one
        units[s.path if s.multiframe else None].append(s)
    parts = [part for unit in units.values() for part in split_slices(unit)]
    parts.sort(key=lambda p: min(s.fallback_key() for s in p[0]))
    return [_plan(root, uid if index == 0 else f"{uid}#{index + 1}", part, notes)
            for index, (part, notes) in enumerate(parts)]


# ----------------------------------------------------------------------------- loading


def _decode_problem(exc: Exception, ds: Dataset, path: Path) -> str:
    transfer_syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    if isinstance(exc, RuntimeError) and "missing dependencies" in str(exc):
        return _missing_plugin(transfer_syntax)
    if isinstance(exc, NotImplementedError):
        return _decoder_problem(transfer_syntax) or f"cannot be decoded ({describe_error(exc, path)})"
    return (
        f"{transfer_syntax.name} pixel data could not be decoded; the file may be truncated "
        f"or corrupt ({describe_error(exc, path)})"
    )


def _decode_file(path: Path) -> np.ndarray:
    """All frames of ``path``, decoded; reads only the pixel data unless that fails."""
    try:
        return pixel_array(path)
    except Exception:  # e.g. deflated or mislabelled files: a full read copes with more
        return pydicom.dcmread(path).pixel_array


def _load_frames(plan: DicomSeriesPlan, volume: np.ndarray) -> None:
    """Decode a multi-frame plan's frames into ``volume`` (raises on any failure)."""
    ds, path = plan.headers[0], plan.paths[0]
    slot = {frame: k for k, frame in enumerate(plan.frame_order)}

    def place(frames: Iterable[np.ndarray]) -> None:
        for frame, pixels in enumerate(frames):
            if frame in slot:
                volume[..., slot[frame]] = modality_frame(pixels, modality_dataset(ds, frame))

    try:
        place(iter_pixels(path))  # one frame in memory at a time
    except Exception:  # e.g. deflated files: decode the whole object from a full read
        place(pydicom.dcmread(path).pixel_array)


def load_dicom_series(plan: DicomSeriesPlan) -> tuple[DicomSeries | None, list[SkippedFile]]:
    """Decode a plan's pixel data into a :class:`~medden.io.dicom_types.DicomSeries`.

    Files are decoded one at a time through pydicom's pixel handlers (compressed syntaxes
    need the ``dicom`` extra: pylibjpeg, openjpeg, libjpeg, RLE, GDCM) straight into a
    preallocated float32 volume: the modality LUT (per-frame Pixel Value Transformation
    for enhanced objects) is applied and MONOCHROME1 is inverted. A single-frame file
    that fails to decode is left out, with the rest re-ordered and re-checked (a note
    says so); a multi-frame object that fails is skipped whole.

    Args:
        plan: one plan from :func:`plan_dicom_series`.

    Returns:
        ``(series, skipped)``: ``series`` is None if nothing could be decoded.
    """
    volume = np.empty(plan.shape, dtype=np.float32)
    skipped: list[SkippedFile] = []
    kept: list[Slice] = []
    with _quiet_pydicom():
        if plan.frame_order is not None:
            try:
                _load_frames(plan, volume)
                kept = plan._slices
            except Exception as exc:  # decoders raise many types
                path = plan.paths[0]
                reason = _decode_problem(exc, plan.headers[0], path)
                return None, [SkippedFile(_relative(path, plan.root), reason)]
        else:
            for s in plan._slices:
                try:
                    volume[..., len(kept)] = modality_frame(_decode_file(s.path), s.header)
                except Exception as exc:  # decoders raise many types
                    reason = _decode_problem(exc, s.header, s.path)
                    skipped.append(SkippedFile(_relative(s.path, plan.root), reason))
                    continue
                kept.append(s)
    if not kept:
        return None, skipped
    if len(kept) < len(plan._slices):
        volume = np.ascontiguousarray(volume[..., : len(kept)])
        lost = len(plan._slices) - len(kept)
        plan = _plan(plan.root, plan.series_uid, kept, plan._split_notes)
        plan.notes.append(f"{lost} slice(s) could not be decoded and were left out")
    series = DicomSeries(
        series_uid=plan.series_uid,
        volume=volume,
        affine=plan.affine,
        headers=plan.headers,
        paths=plan.paths,
        frame_order=plan.frame_order,
        inverted_monochrome1=plan.inverted_monochrome1,
        notes=list(plan.notes),
    )
    return series, skipped


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path


def read_dicom_folder(
    folder: str | os.PathLike,
) -> tuple[list[DicomSeries], list[SkippedFile]]:
    """Read every image series under ``folder`` (see the module docstring).

    Runs :func:`plan_dicom_series`, then :func:`load_dicom_series` on each plan. All
    volumes are held at once: for large folders, load plans one at a time instead.

    Args:
        folder: the folder to read (nested folders included).

    Returns:
        ``(series, skipped)``: the series sorted by ``series_uid``, each a float32
        ``(C, H, W, D)`` volume in modality units with its RAS affine, and every file left
        out with the reason.

    Raises:
        TypeError: ``folder`` is not a path.
        NotADirectoryError: ``folder`` is not an existing folder.
    """
    plans, skipped = plan_dicom_series(folder)
    series = []
    for plan in plans:
        loaded, failed = load_dicom_series(plan)
        skipped.extend(failed)
        if loaded is not None:
            series.append(loaded)
    return series, skipped
