"""Write a denoised volume as a new derived DICOM series beside its source, never over it.

One call turns one :class:`~medden.io.dicom_types.DicomSeries` and its denoised volume into
one new series in the same study, patient and frame of reference. Every source attribute is
kept (geometry, acquisition, private tags, BurnedInAnnotation, LossyImageCompression, the
pixel encoding and the modality LUT) except those that described the old pixel data or the
old instance, and, in enhanced objects, the MR pulse-sequence and bulk-motion attributes that
PS3.3 requires only of ORIGINAL images and dciodvfy rejects on DERIVED ones. The new objects
are marked as derived as DICOM PS3.3 asks:

* Image Type ``DERIVED\\SECONDARY\\...`` (C.7.6.1.1.2), or ``DERIVED\\PRIMARY\\...`` for
  enhanced multi-frame objects (C.8.16.1), with every Frame Type in the functional groups
  changed the same way.
* Derivation Description and Derivation Code Sequence (DCM 113087 "Smoothing", the CID 7203
  Image Derivation code closest to denoising), and a reference to each source image (Source
  Image Sequence with purpose DCM 121322 "Source image for image processing operation").
  Enhanced objects carry these per frame in the Derivation Image functional group and list
  the source in Source Image Evidence Sequence.
* A Contributing Equipment item (C.7.5.1) for medden and its version, with purpose
  DCM 109103 "Modifying Equipment", added after any the source already lists.

UIDs are new but deterministic: they are hashed from the source UIDs and the derivation
(method, model, parameters, description suffix, series number, medden's version), so running
the same derivation again targets the same files, which are refused unless ``overwrite`` is
given, instead of adding a duplicate series to the study. Anything that changes the pixels
belongs in ``parameters`` so that it also changes the UIDs: a PACS keeps one object per UID
and silently drops another with other pixels. :func:`medden.bundle.load_bundle` puts the
SHA-256 of the weights and of the config there, and the backend, so two models never share
a UID, even in bundle folders of one name.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid

from medden.io.files import atomic_write, check_output_dir, prepare_dir
from medden.io.dicom_series import file_meta_for, invert_monochrome1, modality_dataset
from medden.io.dicom_types import DicomSeries
from medden.core.validation import check_finite, check_int

__all__ = ["DERIVATION_CODE", "SERIES_NUMBER_OFFSET", "TRANSFER_SYNTAXES", "write_derived_series"]

#: Names accepted by ``transfer_syntax``; every one is lossless.
TRANSFER_SYNTAXES = {
    "explicit": ExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg2000-lossless": JPEG2000Lossless,
}
#: The default SeriesNumber is the source's plus this (or this if the source has none).
SERIES_NUMBER_OFFSET = 1000
#: (CodeValue, CodingSchemeDesignator, CodeMeaning) from PS3.16, as in ``pydicom.sr.codedict``.
DERIVATION_CODE = ("113087", "DCM", "Smoothing")  # CID 7203 Image Derivation
SOURCE_PURPOSE_CODE = ("121322", "DCM", "Source image for image processing operation")  # 7202
EQUIPMENT_PURPOSE_CODE = ("109103", "DCM", "Modifying Equipment")  # CID 7005

_LO_MAX, _ST_MAX, _IS_MAX = 64, 1024, 2**31 - 1
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_ENHANCED_GROUPS = ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
# Attributes that described the source's pixel data or instance and would be false in ours.
_STALE = (
    "PixelData",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "PixelDataProviderURL",
    "IconImageSequence",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "HistogramSequence",
    "DigitalSignaturesSequence",
    "MACParametersSequence",
    "DataSetTrailingPadding",
    "InstanceCreatorUID",
    # replaced by this derivation's own
    "SourceImageSequence",
    "SourceImageEvidenceSequence",
    "DerivationDescription",
    "DerivationCodeSequence",
)
# PS3.3 C.8.13.4 MR Pulse Sequence Module (Table C.8-87; the whole module in the Enhanced MR
# IODs, A.36) and C.7.6.18.3 Bulk Motion Synchronization: "Required if Image Type Value 1 is
# ORIGINAL or MIXED. May be present otherwise." dciodvfy reports each one on a DERIVED object
# as present when it may not be, so enhanced derived objects leave them out; the source they
# reference keeps them. Classic MR keeps MR Acquisition Type, Type 2 there (C.8.3.1).
_ORIGINAL_ONLY = (
    "PulseSequenceName",
    "MRAcquisitionType",
    "EchoPulseSequence",
    "MultipleSpinEcho",
    "MultiPlanarExcitation",
    "PhaseContrast",
    "TimeOfFlightContrast",
    "SteadyStatePulseSequence",
    "EchoPlanarPulseSequence",
    "SaturationRecovery",
    "SpectrallySelectedSuppression",
    "OversamplingPhase",
    "GeometryOfKSpaceTraversal",
    "RectilinearPhaseEncodeReordering",
    "SegmentedKSpaceTraversal",
    "CoverageOfKSpace",
    "NumberOfKSpaceTrajectories",
    "BulkMotionCompensationTechnique",
    "BulkMotionSignalSource",
)
_SWAPPED_VRS = {"OW": 2, "US or OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


@dataclass(frozen=True)
class _Derivation:
    """What every instance of one derived series shares."""

    description: str  # DerivationDescription (ST)
    contribution: str  # ContributionDescription (ST)
    suffix: str
    series_number: int
    series_uid: str
    key: str  # hashed into the instance UIDs
    now: datetime.datetime


def write_derived_series(
    series: DicomSeries,
    denoised: np.ndarray | torch.Tensor,
    out_dir: str | os.PathLike,
    *,
    method: str,
    model: str,
    parameters: Mapping[str, object],
    description_suffix: str = " [medden]",
    series_number: int | None = None,
    overwrite: bool = False,
    transfer_syntax: Literal["explicit", "rle", "jpeg2000-lossless"] = "explicit",
    folder_name: Callable[[str, int], str] | None = None,
) -> list[Path]:
    """Write ``denoised`` as a new derived series of ``series``'s study.

    Denoised modality values go back to stored values through each slice's (or frame's)
    own modality LUT, MONOCHROME1 is re-inverted if the reader inverted it, and values are
    rounded and clipped to the range that BitsStored and PixelRepresentation allow; the
    pixel description (bits, signedness, photometric interpretation) stays the source's.
    Colour (RGB) series are rounded and clipped the same way and written as interleaved RGB.

    Files are ``out_dir/<new SeriesInstanceUID>/<index:04d>.dcm`` (or ``folder_name``'s folder),
    named only from the new UID and the slice index (0-based, in ``series.volume`` order; a multi-frame object is one
    file ``0000.dcm`` keeping the source's frame order), each written atomically. Nothing is
    written unless every target is free (or ``overwrite`` is True).

    Args:
        series: the source series, as read by :mod:`medden.io.dicom_folder`.
        denoised: ``(C, H, W, D)`` float array in modality units, the shape and axis order
            of ``series.volume`` (numpy or torch; a ``MetaTensor`` is fine).
        out_dir: folder that receives the series folder; created if missing. It must not be
            a source file's folder or lie inside one, nor hold a source file
            (:func:`medden.io.files.check_output_dir`).
        method: name of the denoising method, e.g. ``"recorruption"``.
        model: name or path of the model used, recorded in DerivationDescription.
        parameters: settings worth recording (JSON-serialisable; others go in as ``str``).
        description_suffix: appended to the source SeriesDescription, whose end is cut so the
            result fits 64 characters; printable ASCII without backslashes.
        series_number: SeriesNumber of the new series; by default the source's plus
            :data:`SERIES_NUMBER_OFFSET`. It must differ from the source's.
        overwrite: replace files left by an earlier run of the same derivation.
        transfer_syntax: ``"explicit"`` (Explicit VR Little Endian, uncompressed),
            ``"rle"`` (RLE Lossless) or ``"jpeg2000-lossless"``; the last two need the
            ``dicom`` extra.
        folder_name: ``folder_name(new series UID, new series number)`` names the series
            folder instead of the UID: one path component (no separator, not ``.`` or ``..``,
            no control character, at most 255 bytes), else ValueError.

    Returns:
        The written files, in ``series.volume`` slice order (one file for a multi-frame
        object).

    Raises:
        TypeError: ``series`` is not a ``DicomSeries``, or an argument has the wrong type.
        ValueError: shape mismatch, non-finite values, headers that do not match the volume,
            an unsupported pixel encoding, a bad argument value, or ``out_dir`` in a source
            folder.
        FileExistsError: a target file exists and ``overwrite`` is False.
    """
    values = _check_denoised(series, denoised)
    syntax = _transfer_syntax(transfer_syntax)
    derivation = _derivation(series, method, model, parameters, description_suffix, series_number)
    name = None if folder_name is None else folder_name(derivation.series_uid, derivation.series_number)
    folder = _series_folder(out_dir, derivation.series_uid, series.paths, name)
    n_files = 1 if series.is_multiframe else series.n_slices
    targets = [folder / f"{index:04d}.dcm" for index in range(n_files)]
    taken = [path for path in targets if path.exists()]
    if taken and not overwrite:
        raise FileExistsError(
            f"{len(taken)} of the {n_files} files of this derived series already exist (first: "
            f"{str(taken[0])!r}), from an earlier run of the same derivation; pass "
            "overwrite=True to replace them or choose another out_dir."
        )
    prepare_dir(folder)
    if series.is_multiframe:
        instances = [(series.headers[0], values, series.frame_order)]
    else:
        slices = (values[..., k : k + 1] for k in range(series.n_slices))
        instances = [(header, one, None) for header, one in zip(series.headers, slices)]
    paths = []
    for (header, slices, frame_order), target in zip(instances, targets):
        ds, stored = _derived_instance(
            header, slices, frame_order, series.inverted_monochrome1, derivation
        )
        paths.append(_write(ds, stored, syntax, target, overwrite))
    return paths


# ----------------------------------------------------------------------------- checks


def _check_folder_name(name: str) -> None:
    """``name`` is one safe path component: not empty, ``.`` or ``..``, no separator or control character."""
    if not isinstance(name, str):
        raise TypeError(f"folder_name must return a str, got {type(name).__name__}.")
    bad = [c for c in name if c in "/\\" or unicodedata.category(c).startswith("C")]
    if name in ("", ".", "..") or bad or len(os.fsencode(name)) > 255:
        raise ValueError(f"refusing to use {name!r} as a series folder name: it must be one path component "
                         "(not empty, '.' or '..', no '/' or '\\' or control characters, at most 255 bytes).")


def _check_denoised(series: DicomSeries, denoised: np.ndarray | torch.Tensor) -> np.ndarray:
    if not isinstance(series, DicomSeries):
        raise TypeError(
            f"series must be a medden.io.dicom_types.DicomSeries, got {type(series).__name__}; "
            "read the folder with medden.io.dicom_folder first."
        )
    if not isinstance(denoised, (np.ndarray, torch.Tensor)):
        raise TypeError(
            f"denoised must be a numpy.ndarray or torch.Tensor, got {type(denoised).__name__}."
        )
    values = np.asarray(torch.as_tensor(denoised).detach().cpu())
    if values.shape != tuple(series.volume.shape):
        raise ValueError(
            f"denoised must have the shape of series.volume {tuple(series.volume.shape)} "
            f"(C, H, W, D), got {values.shape}; do not drop the channel or slice axis."
        )
    check_finite(values, "denoised")
    _check_headers(series)
    return values


def _check_headers(series: DicomSeries) -> None:
    n, headers = series.n_slices, series.headers
    if series.is_multiframe:
        frames = series.frame_order
        n_frames = int(headers[0].get("NumberOfFrames") or 1) if headers else 0
        if len(headers) != 1 or len(frames) != n or len(set(frames)) != n:
            raise ValueError(
                f"a multi-frame series needs one header and {n} distinct frame_order entries, "
                f"got {len(headers)} header(s) and frame_order of length {len(frames)}."
            )
        if min(frames) < 0 or max(frames) >= n_frames:
            raise ValueError(
                f"frame_order must index the source's {n_frames} frames (0-based), got values "
                f"from {min(frames)} to {max(frames)}."
            )
    elif len(headers) != n or len(series.paths) != n:
        raise ValueError(
            f"a single-frame series needs one header and one path per slice ({n}), got "
            f"{len(headers)} headers and {len(series.paths)} paths."
        )
    ds = headers[0]
    samples, channels = int(ds.get("SamplesPerPixel", 1)), int(series.volume.shape[0])
    photometric = str(ds.get("PhotometricInterpretation", ""))
    grey = channels == 1 and photometric in ("MONOCHROME1", "MONOCHROME2")
    colour = channels == 3 and (photometric == "RGB" or photometric.startswith("YBR_"))
    if samples != channels or not (grey or colour):
        raise ValueError(
            f"series.volume has {channels} channel(s) for a source with SamplesPerPixel "
            f"{samples} and PhotometricInterpretation {photometric!r}; only MONOCHROME1/2 "
            "(1 channel) and RGB/YBR (3 channels, decoded to RGB) can be written. Palette "
            "indices cannot be denoised: write such series as NIfTI instead."
        )
    allocated, stored = int(ds.get("BitsAllocated", 0)), int(ds.get("BitsStored", 0))
    if allocated not in (8, 16, 32) or not 1 <= stored <= allocated:
        raise ValueError(
            f"the source pixel encoding (BitsAllocated {allocated}, BitsStored {stored}) is not "
            "supported; only integer pixel data of 8, 16 or 32 allocated bits can be written."
        )


def _transfer_syntax(name: str) -> UID:
    if not isinstance(name, str):
        raise TypeError(f"transfer_syntax must be a string, got {type(name).__name__}.")
    if name not in TRANSFER_SYNTAXES:
        raise ValueError(
            f"transfer_syntax must be one of {sorted(TRANSFER_SYNTAXES)}, got {name!r}; "
            "medden never writes lossy compression."
        )
    return TRANSFER_SYNTAXES[name]


def _text(value: object, name: str, *, max_len: int | None = None) -> str:
    """``value`` as a printable ASCII string for a DICOM text VR (others become ``?``)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}.")
    if not value.strip():
        raise ValueError(f"{name} must not be empty, got {value!r}; name what was used.")
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in value)
    if max_len is not None and len(text) > max_len:
        text = text[: max_len - 3] + "..."
    return text


def _check_suffix(suffix: object) -> str:
    if not isinstance(suffix, str):
        raise TypeError(f"description_suffix must be a string, got {type(suffix).__name__}.")
    if len(suffix) > _LO_MAX or "\\" in suffix or not all(" " <= ch <= "~" for ch in suffix):
        raise ValueError(
            f"description_suffix must be printable ASCII without backslashes and at most "
            f"{_LO_MAX} characters (a SeriesDescription is LO), got {suffix!r}."
        )
    return suffix


def _series_number(source: Dataset, requested: int | None) -> int:
    current = source.get("SeriesNumber")
    current = None if current in (None, "") else int(current)
    if requested is None:
        number = (current or 0) + SERIES_NUMBER_OFFSET
        if number > _IS_MAX:
            raise ValueError(
                f"the source SeriesNumber {current} leaves no room for the default "
                f"(+{SERIES_NUMBER_OFFSET}); pass series_number explicitly."
            )
        return number
    check_int(requested, "series_number", 0, hint=f"pass None for source + {SERIES_NUMBER_OFFSET}")
    if requested > _IS_MAX or requested == current:
        raise ValueError(
            f"series_number must be in [0, {_IS_MAX}] and differ from the source's "
            f"({current}), got {requested}; pass None for source + {SERIES_NUMBER_OFFSET}."
        )
    return int(requested)


# ----------------------------------------------------------------------------- header


def _derivation(
    series: DicomSeries,
    method: str,
    model: str,
    parameters: Mapping[str, object],
    suffix: str,
    series_number: int | None,
) -> _Derivation:
    from medden import __version__

    if not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a mapping, got {type(parameters).__name__}.")
    method, model = _text(method, "method"), _text(model, "model")
    suffix = _check_suffix(suffix)
    number = _series_number(series.headers[0], series_number)
    settings = json.dumps(dict(parameters), sort_keys=True, default=str)
    description = f"Denoised with medden {__version__}: method {method}; model {model}; "
    key = json.dumps([method, model, settings, suffix, number, __version__])
    return _Derivation(
        description=_text(description + f"parameters {settings}", "parameters", max_len=_ST_MAX),
        contribution=_text(f"Denoising ({method}, model {model})", "model", max_len=_ST_MAX),
        suffix=suffix,
        series_number=number,
        series_uid=generate_uid(entropy_srcs=["medden series", series.series_uid, key]),
        key=key,
        now=_now(series.headers[0]),
    )


def _now(source: Dataset) -> datetime.datetime:
    """Now, in the source's TimezoneOffsetFromUTC when it has one (else local time)."""
    match = re.fullmatch(r"([+-])(\d\d)(\d\d)", str(source.get("TimezoneOffsetFromUTC") or ""))
    if match is None:
        return datetime.datetime.now()
    offset = datetime.timedelta(hours=int(match[2]), minutes=int(match[3]))
    tz = datetime.timezone(-offset if match[1] == "-" else offset)
    return datetime.datetime.now(tz)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def copy_header(header: Dataset) -> Dataset:
    """A copy as a plain Dataset (no file meta) ready to be written little endian.

    Each element is copied on its own (sequences deeply, the rest shallowly: their values are
    replaced, never edited in place, when the derived instance is built), which is several
    times cheaper than deep-copying the whole dataset and leaves ``header`` untouched.
    """
    big_endian = header.original_encoding[1] is False
    ds = Dataset()
    for element in header:  # iterating converts raw elements to values
        ds.add(copy.deepcopy(element) if element.VR == "SQ" else copy.copy(element))
    if big_endian:  # byte-ordered binary values must be swapped for a little-endian file

        def swap(dataset: Dataset, element) -> None:
            width = _SWAPPED_VRS.get(element.VR)
            if width and isinstance(element.value, bytes):
                words = np.frombuffer(element.value, f">u{width}")
                element.value = words.astype(f"<u{width}").tobytes()

        ds.walk(swap)
    return ds


def _derived_type(value: object, second: str) -> list[str]:
    """Image/Frame Type with values 1-2 replaced by ``DERIVED\\<second>``, the rest kept."""
    values = [] if value in (None, "") else [value] if isinstance(value, str) else list(value)
    return ["DERIVED", second, *values[2:]]


def _derived_dataset(header: Dataset, derivation: _Derivation, *, enhanced: bool) -> Dataset:
    """The source header as a new instance of the derived series (no pixel data yet)."""
    ds = copy_header(header)
    for keyword in (*_STALE, *(_ORIGINAL_ONLY if enhanced else ())):
        if keyword in ds:
            del ds[keyword]
    if enhanced:
        _drop_spoiling(ds)
    for group in range(0x6000, 0x6020, 2):  # overlays embedded in the old pixel data are lost
        if (group, 0x0010) in ds and (group, 0x3000) not in ds:
            for tag in [elem.tag for elem in ds.group_dataset(group)]:
                del ds[tag]
    ds.SOPInstanceUID = generate_uid(
        entropy_srcs=["medden instance", str(header.SOPInstanceUID), derivation.key]
    )
    ds.SeriesInstanceUID = derivation.series_uid
    ds.SeriesNumber = derivation.series_number
    base = header.get("SeriesDescription") or ""
    if not isinstance(base, str):  # a backslash read as a value separator: LO allows none
        base = "/".join(str(part) for part in base)
    ds.SeriesDescription = (base[: _LO_MAX - len(derivation.suffix)] + derivation.suffix).strip()
    ds.ImageType = _derived_type(header.get("ImageType"), "PRIMARY" if enhanced else "SECONDARY")
    date, time = derivation.now.strftime("%Y%m%d"), derivation.now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.ContentDate, ds.ContentTime = date, time
    equipment = ds.get("ContributingEquipmentSequence") or Sequence()
    equipment.append(_equipment(derivation))
    ds.ContributingEquipmentSequence = equipment
    return ds


def _drop_spoiling(ds: Dataset) -> None:
    """Remove Spoiling from every MR Modifier item of the functional groups.

    PS3.3 C.8.13.5.5 lets a DERIVED frame carry Spoiling only if Echo Pulse Sequence is
    GRADIENT or BOTH, and Echo Pulse Sequence is one of the :data:`_ORIGINAL_ONLY` left out.
    """
    for name in _ENHANCED_GROUPS:
        for group in ds.get(name) or []:
            for modifier in group.get("MRModifierSequence") or []:
                if "Spoiling" in modifier:
                    del modifier.Spoiling


def _equipment(derivation: _Derivation) -> Dataset:
    from medden import __version__

    item = Dataset()
    item.Manufacturer = "medden"
    item.ManufacturerModelName = "medden"
    item.SoftwareVersions = _text(__version__, "version", max_len=_LO_MAX)
    item.ContributionDateTime = derivation.now.strftime("%Y%m%d%H%M%S%z")
    item.ContributionDescription = derivation.contribution
    item.PurposeOfReferenceCodeSequence = [_code(*EQUIPMENT_PURPOSE_CODE)]
    return item


def _source_reference(header: Dataset, frame: int | None = None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = header.SOPClassUID
    item.ReferencedSOPInstanceUID = header.SOPInstanceUID
    if frame is not None:
        item.ReferencedFrameNumber = frame
    item.PurposeOfReferenceCodeSequence = [_code(*SOURCE_PURPOSE_CODE)]
    return item


def _derivation_item(derivation: _Derivation) -> Dataset:
    item = Dataset()
    item.DerivationDescription = derivation.description
    item.DerivationCodeSequence = [_code(*DERIVATION_CODE)]
    return item


def _set_image_derivation(ds: Dataset, header: Dataset, derivation: _Derivation) -> None:
    """General Image derivation attributes of a single-frame (or classic multi-frame) image."""
    ds.update(_derivation_item(derivation))
    ds.SourceImageSequence = [_source_reference(header)]


def _set_frame_derivation(
    ds: Dataset, header: Dataset, frames: list[int], derivation: _Derivation
) -> None:
    """Per-frame Derivation Image groups, Frame Types and Source Image Evidence (enhanced)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    items = [per_frame[f] if per_frame else Dataset() for f in frames]
    for item, frame in zip(items, frames):
        derived = _derivation_item(derivation)
        derived.SourceImageSequence = [_source_reference(header, frame + 1)]
        item.DerivationImageSequence = [derived]
    ds.PerFrameFunctionalGroupsSequence = items
    shared = list(ds.get("SharedFunctionalGroupsSequence") or [])
    for item in shared:  # the source's own derivation is replaced by this one, per frame
        if "DerivationImageSequence" in item:
            del item.DerivationImageSequence
    for item in [*shared, *items]:
        for element in item:
            for sub in element.value if element.VR == "SQ" else []:
                if "FrameType" in sub:
                    sub.FrameType = _derived_type(sub.FrameType, "PRIMARY")
    ds.SourceImageEvidenceSequence = [_evidence(header)]


def _evidence(header: Dataset) -> Dataset:
    """A Hierarchical SOP Instance Reference to the source (Source Image Evidence item)."""
    evidence, series, instance = Dataset(), Dataset(), Dataset()
    instance.ReferencedSOPClassUID = header.SOPClassUID
    instance.ReferencedSOPInstanceUID = header.SOPInstanceUID
    series.SeriesInstanceUID = header.SeriesInstanceUID
    series.ReferencedSOPSequence = [instance]
    evidence.StudyInstanceUID = header.StudyInstanceUID
    evidence.ReferencedSeriesSequence = [series]
    return evidence


# ----------------------------------------------------------------------------- pixels


def _stored_range(ds: Dataset) -> tuple[int, int]:
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _to_stored(values: np.ndarray, lut: Dataset, low: int, high: int) -> np.ndarray:
    """Invert the modality LUT of ``lut``: nearest stored value in ``[low, high]``."""
    values = np.asarray(values, dtype=np.float64)
    if lut.get("ModalityLUTSequence"):
        table = np.asarray(apply_modality_lut(np.arange(low, high + 1), lut), np.float64)
        if (np.diff(table) < 0).any():
            raise ValueError(
                "the source's Modality LUT Sequence is not monotonic, so denoised values "
                "cannot be mapped back to stored values; write the volume as NIfTI instead."
            )
        index = np.clip(np.searchsorted(table, values), 1, len(table) - 1)
        index -= values - table[index - 1] <= table[index] - values
        return index + low
    if "RescaleSlope" in lut and "RescaleIntercept" in lut:
        slope, intercept = float(lut.RescaleSlope), float(lut.RescaleIntercept)
        if slope == 0:
            raise ValueError("the source has RescaleSlope 0, so stored values are undefined.")
        values = (values - intercept) / slope
    return np.clip(np.rint(values), low, high)


def _stored(values: np.ndarray, lut: Dataset, inverted: bool, ds: Dataset) -> np.ndarray:
    """One slice ``(C, H, W)`` in modality units as stored ``(Rows, Columns[, 3])`` values.

    ``lut`` is the frame's modality dataset from ``dicom_series._modality_dataset``, the one
    the reader applied, so this is the reader's mapping inverted. For RGB, ``ds``'s colour
    description is set to the interleaved RGB written.
    """
    low, high = _stored_range(ds)
    signed = int(ds.get("PixelRepresentation", 0))
    dtype = np.dtype(f"<{'i' if signed else 'u'}{int(ds.BitsAllocated) // 8}")
    if values.shape[0] == 3:
        ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
        return np.clip(np.rint(values.transpose(2, 1, 0)), low, high).astype(dtype)
    grey = values[0].T
    if inverted:
        grey = invert_monochrome1(grey, lut)
    return _to_stored(grey, lut, low, high).astype(dtype)


def _derived_instance(
    header: Dataset,
    values: np.ndarray,
    frame_order: list[int] | None,
    inverted: bool,
    derivation: _Derivation,
) -> tuple[Dataset, np.ndarray]:
    """One derived instance and its stored pixels.

    Args:
        header: the source instance.
        values: ``(C, H, W, n)`` slices of this instance in modality units.
        frame_order: the source frame (0-based) of each slice; None for a single-frame image.
        inverted: the reader inverted MONOCHROME1.
        derivation: what the whole derived series shares.

    Returns:
        The dataset (no PixelData yet) and stored values ``(Rows, Columns[, 3])``, or
        ``(frames, Rows, Columns[, 3])`` for a multi-frame object, whose frames keep the
        source's order.
    """
    groups = any(name in header for name in _ENHANCED_GROUPS)
    enhanced = groups or "Enhanced" in UID(str(header.get("SOPClassUID", ""))).name
    multiframe = frame_order is not None or groups
    slice_of = {frame: k for k, frame in enumerate(frame_order or [0])}
    frames = sorted(slice_of)
    ds = _derived_dataset(header, derivation, enhanced=enhanced)
    stored = np.stack(
        [
            _stored(values[..., slice_of[f]], modality_dataset(header, f), inverted, ds)
            for f in frames
        ]
    )
    if groups:
        _set_frame_derivation(ds, header, frames, derivation)
    else:  # classic images, or an enhanced object stripped of its functional groups
        _set_image_derivation(ds, header, derivation)
    if multiframe:
        ds.NumberOfFrames = len(frames)
        return ds, stored
    return ds, stored[0]


def _write(ds: Dataset, stored: np.ndarray, syntax: UID, path: Path, overwrite: bool) -> Path:
    """Attach ``stored`` as PixelData in ``syntax`` and write ``ds`` atomically to ``path``."""
    ds.file_meta = file_meta_for(ds)
    if syntax == ExplicitVRLittleEndian:
        ds.PixelData = stored.tobytes()
        ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) <= 8 else "OW"
    else:
        ds.compress(syntax, stored, generate_instance_uid=False)
    ds.file_meta.TransferSyntaxUID = syntax
    return atomic_write(
        path, lambda tmp: ds.save_as(tmp, enforce_file_format=True), overwrite=overwrite
    )


# ----------------------------------------------------------------------------- paths


def _series_folder(out_dir: str | os.PathLike, series_uid: str, sources: list[Path], name: str | None = None) -> Path:
    """``out_dir/<name or series_uid>``, apart from every source file's folder (:func:`check_output_dir`)."""
    if not _UID.fullmatch(series_uid) or len(series_uid) > 64:
        raise ValueError(f"refusing to use {series_uid!r} as a folder name: not a DICOM UID.")
    if name is not None:
        _check_folder_name(name)
    folder = Path(out_dir) / (series_uid if name is None else name)
    for parent in sorted({Path(source).resolve().parent for source in sources}):
        check_output_dir(parent, folder)
    return folder
