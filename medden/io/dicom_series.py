"""Read DICOM images into channel-first arrays, and write volumes as DICOM series.

Axes follow the package convention (see :mod:`medden`; the same as MONAI's
``PydicomReader``/``ITKReader`` and NIfTI): ``H`` along a DICOM row, ``W`` down the columns,
``D`` over slices or frames, so a file with ``Rows x Columns = 512 x 400`` loads as
``(1, 400, 512)``. Affines are 4x4 voxel-to-world matrices in mm in RAS, DICOM's LPS with x
and y negated.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import numpy as np
import pydicom
import torch
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from medden.io.files import atomic_write, prepare_dir
from medden.core.validation import check_finite

__all__ = ["dicom_affine", "read_dicom_image", "write_volume_as_series"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_SOP_CLASSES = {"MR": MRImageStorage, "CT": CTImageStorage}
PATIENT_NAME = "medden^sample"
PATIENT_ID = "MEDDEN-SAMPLE"


# ----------------------------------------------------------------------------- reading


def first_value(
    ds: Dataset, keyword: str, groups: tuple[str, ...] = (), frame: int = 0
) -> object | None:
    """``keyword`` from ``ds`` or, for enhanced multi-frame files, its functional groups.

    Looks at the top level, then the shared functional groups, then frame ``frame``'s
    per-frame functional groups (a functional group sits in one of the two, never both).
    """
    if keyword in ds:
        return ds[keyword].value
    for seq, index in (
        ("SharedFunctionalGroupsSequence", 0),
        ("PerFrameFunctionalGroupsSequence", frame),
    ):
        for group in groups:
            try:
                return getattr(getattr(ds, seq)[index], group)[0][keyword].value
            except (AttributeError, IndexError, KeyError):
                continue
    return None


def dicom_affine(ds: Dataset, *, frame: int = 0) -> np.ndarray:
    """The 4x4 RAS affine of a DICOM image, for the axis order of :func:`read_dicom_image`.

    Uses ImageOrientationPatient, ImagePositionPatient and PixelSpacing (or, for projection
    radiographs, ImagerPixelSpacing) when present; the slice axis gets SpacingBetweenSlices,
    else SliceThickness, else 1 mm, along the slice normal. Without orientation the affine is
    ``diag(column spacing, row spacing, slice spacing, 1)``, the identity if spacing is
    missing or zero too. Enhanced multi-frame objects take these from their functional
    groups, for frame ``frame`` (0-based) where they vary per frame.

    Returns:
        float64 array of shape ``(4, 4)``.
    """
    spacing = first_value(ds, "PixelSpacing", ("PixelMeasuresSequence",), frame)
    spacing = spacing or ds.get("ImagerPixelSpacing")
    d_row, d_col = (float(v) for v in spacing) if spacing else (1.0, 1.0)
    if d_row <= 0 or d_col <= 0:  # e.g. "0\0" in some CR files: no usable spacing
        d_row = d_col = 1.0
    d_slice = first_value(ds, "SpacingBetweenSlices", ("PixelMeasuresSequence",), frame)
    d_slice = d_slice or first_value(ds, "SliceThickness", ("PixelMeasuresSequence",), frame) or 1.0
    iop = first_value(ds, "ImageOrientationPatient", ("PlaneOrientationSequence",), frame)
    if iop is None or len(iop) != 6:
        return np.diag([d_col, d_row, abs(float(d_slice)), 1.0])
    row_cos, col_cos = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    ipp = first_value(ds, "ImagePositionPatient", ("PlanePositionSequence",), frame)
    lps = np.eye(4)
    lps[:3, 0] = row_cos * d_col
    lps[:3, 1] = col_cos * d_row
    lps[:3, 2] = np.cross(row_cos, col_cos) * abs(float(d_slice))
    lps[:3, 3] = np.asarray(ipp, float) if ipp is not None else 0.0
    return LPS_TO_RAS @ lps


def read_dicom_image(path: str | os.PathLike):
    """Read one DICOM file (single- or multi-frame) in modality units.

    The modality LUT (RescaleSlope/Intercept or a LUT sequence; for enhanced multi-frame
    objects the per-frame Pixel Value Transformation) is applied, and MONOCHROME1 images
    are inverted within their stored range so higher values are brighter, as in MONOCHROME2.

    Args:
        path: a DICOM Part 10 file with pixel data.

    Returns:
        ``monai.data.MetaTensor`` float32 of shape ``(C, H, W)`` for one frame or
        ``(C, H, W, D)`` for several, D over frames (axes as in :mod:`medden`; C is 1,
        or 3 for colour). Meta: ``affine`` (see :func:`dicom_affine`), ``modality``,
        ``filename_or_obj``, ``space`` ``"RAS"``.
    """
    from monai.data import MetaTensor

    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array
    n_frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    frames = pixels if n_frames > 1 else pixels[None]
    values = np.empty((samples, frames.shape[2], frames.shape[1], n_frames), np.float32)
    for index, frame in enumerate(frames):
        values[..., index] = modality_frame(frame, modality_dataset(ds, index))
    if n_frames == 1:
        values = values[..., 0]
    affine = torch.as_tensor(dicom_affine(ds), dtype=torch.float64)
    meta = {
        "modality": str(ds.get("Modality", "OT")),
        "filename_or_obj": os.fspath(path),
        "space": "RAS",
        "original_channel_dim": 0 if samples > 1 else "no_channel",
    }
    return MetaTensor(values, affine=affine, meta=meta)


def modality_dataset(ds: Dataset, frame: int = 0) -> Dataset:
    """The dataset holding frame ``frame``'s modality LUT (for :func:`modality_frame`).

    ``ds`` itself unless the rescale lives in an enhanced object's Pixel Value
    Transformation functional group, in which case a small dataset with that frame's
    RescaleSlope/Intercept and the pixel description is returned.
    """
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        return ds
    slope = first_value(ds, "RescaleSlope", ("PixelValueTransformationSequence",), frame)
    intercept = first_value(ds, "RescaleIntercept", ("PixelValueTransformationSequence",), frame)
    if slope is None or intercept is None:
        return ds
    out = Dataset()
    for keyword in ("BitsStored", "PixelRepresentation", "PhotometricInterpretation"):
        if keyword in ds:
            setattr(out, keyword, ds[keyword].value)
    out.RescaleSlope, out.RescaleIntercept = slope, intercept
    return out


def modality_frame(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    """One decoded frame in modality units, as float32 ``(C, columns, rows)``.

    Args:
        pixels: ``(rows, columns)`` or ``(rows, columns, samples)`` as decoded by pydicom.
        ds: the frame's modality dataset (see :func:`modality_dataset`). Grey frames get
            its modality LUT and, if MONOCHROME1, are inverted; colour frames only change
            dtype.
    """
    if pixels.ndim == 3:
        return pixels.astype(np.float32).transpose(2, 1, 0)
    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        values = invert_monochrome1(values, ds)
    return values.T[None]


def invert_monochrome1(values: np.ndarray, ds: Dataset) -> np.ndarray:
    bits = int(ds.BitsStored)
    low, high = (
        (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.PixelRepresentation else (0, 2**bits - 1)
    )
    ends = np.asarray(apply_modality_lut(np.array([low, high]), ds), dtype=np.float64)
    return (ends.min() + ends.max() - values).astype(np.float32)


# ----------------------------------------------------------------------------- writing


def _geometry(affine: np.ndarray) -> tuple[list[float], list[float], np.ndarray, np.ndarray]:
    """IOP, PixelSpacing, LPS slice step and LPS origin from a RAS affine."""
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise ValueError(f"affine must be a finite 4x4 matrix, got shape {affine.shape}.")
    lps = LPS_TO_RAS @ affine  # the flip is its own inverse
    cols = lps[:3, :3]
    norms = np.linalg.norm(cols, axis=0)
    if (norms == 0).any():
        raise ValueError(f"affine has a zero-length axis (column norms {norms}); fix its spacing.")
    row_cos, col_cos = cols[:, 0] / norms[0], cols[:, 1] / norms[1]
    if abs(row_cos @ col_cos) > 1e-4:
        raise ValueError(
            "affine has non-orthogonal in-plane axes (cosine "
            f"{row_cos @ col_cos:.3g}), which DICOM cannot store; resample the volume first."
        )
    col_cos = col_cos - (row_cos @ col_cos) * row_cos
    col_cos /= np.linalg.norm(col_cos)
    if abs(np.cross(row_cos, col_cos) @ cols[:, 2]) < 1e-6 * norms[2]:
        raise ValueError(
            "affine's slice axis lies in the image plane (a singular affine); give the slice "
            "axis a component along the plane normal."
        )
    iop = [float(format_number_as_ds(float(v))) for v in (*row_cos, *col_cos)]
    return iop, [float(norms[1]), float(norms[0])], cols[:, 2], lps[:3, 3]


def _quantize(vol: np.ndarray) -> tuple[np.ndarray, float, float]:
    """16-bit stored values and (slope, intercept) with value = stored * slope + intercept."""
    low, high = float(vol.min()), float(vol.max())
    if np.array_equal(vol, np.round(vol)):
        if 0 <= low and high <= 65535:
            return vol.astype(np.uint16), 1.0, 0.0
        if -32768 <= low and high <= 32767:
            return vol.astype(np.int16), 1.0, 0.0
    intercept = float(format_number_as_ds(low))
    slope = float(format_number_as_ds((high - intercept) / 65535)) if high > low else 1.0
    # DS strings keep >= 10 significant digits, so clipping the top value costs < 1e-5 slope
    stored = np.clip(np.round((vol.astype(np.float64) - intercept) / slope), 0, 65535)
    return stored.astype(np.uint16), slope, intercept


def _ds_str(value: float) -> str:
    return format_number_as_ds(float(value))


def _base_dataset(modality: str, sop_class: str, rgb: bool, series_description: str) -> Dataset:
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.StudyDate, ds.StudyTime, ds.SeriesDate, ds.SeriesTime = date, time, date, time
    ds.ContentDate, ds.ContentTime = date, time
    ds.ReferringPhysicianName, ds.AccessionNumber, ds.StudyID = "", "", "MEDDEN"
    ds.StudyDescription = "medden synthetic sample (no patient)"
    ds.Modality = modality
    ds.SeriesDescription = series_description
    ds.Manufacturer = "medden"
    image_type_3 = {"CT": "AXIAL", "MR": "OTHER"}.get(modality)
    ds.ImageType = ["DERIVED", "SECONDARY"] + ([image_type_3] if image_type_3 else [])
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8 if rgb else 16
    ds.HighBit = ds.BitsStored - 1
    ds.BurnedInAnnotation = "NO"
    if sop_class == SecondaryCaptureImageStorage:
        ds.ConversionType = "WSD"
        if not rgb:
            ds.RescaleType = "US"  # unspecified units; SC requires it with a rescale
        ds.PatientOrientation = ""
    else:
        ds.PatientPosition = ""
        ds.PositionReferenceIndicator = ""
    if modality == "CT":
        ds.KVP, ds.AcquisitionNumber = "", ""
    if modality == "MR":
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "RM", "NONE", ""
        ds.MRAcquisitionType = ""
        ds.RepetitionTime = ds.EchoTime = ds.EchoTrainLength = ""
    return ds


def write_volume_as_series(
    volume: np.ndarray | torch.Tensor,
    affine: np.ndarray | torch.Tensor,
    out_dir: str | os.PathLike,
    *,
    modality: str,
    series_description: str,
    series_number: int = 1,
    body_part: str | None = None,
    study_instance_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write a volume as a single-frame DICOM series, one file per slice.

    MR and CT volumes become MR / CT Image Storage with full patient geometry; any other
    modality (e.g. ``"CR"``, ``"SM"``, ``"OT"``) becomes Secondary Capture, which keeps only
    PixelSpacing. Grey values are stored as 16-bit integers with RescaleSlope/Intercept
    chosen so the error is at most half a slope step (integers that fit are stored exactly);
    three channels are stored as 8-bit RGB (Secondary Capture only, values in [0, 255]).
    Patient tags are synthetic (``medden^sample`` / ``MEDDEN-SAMPLE``); every call makes new
    Study, Series, Frame of Reference and SOP Instance UIDs unless UIDs are passed. Files
    are ``slice_0000.dcm``, ... written atomically, with slice ``k`` at
    ``ImagePositionPatient = origin + k * (affine slice axis)``.

    Args:
        volume: ``(H, W, D)``, or ``(C, H, W, D)`` with C 1 or 3, in modality units, axis
            order as in the module docstring (H along a DICOM row). A 2D image needs a
            trailing slice axis of size 1.
        affine: 4x4 RAS voxel-to-world matrix in mm (NIfTI/MONAI convention).
        out_dir: folder for the files; created if missing.
        modality: DICOM modality code, e.g. ``"MR"``, ``"CT"``, ``"SM"``.
        series_description: free text for SeriesDescription (64 characters at most).
        series_number: SeriesNumber.
        body_part: BodyPartExamined, e.g. ``"BRAIN"``. Without it, Laterality is written
            empty (unknown), which validators accept with a warning.
        study_instance_uid: join an existing study instead of making a new one.
        frame_of_reference_uid: share a frame of reference with an existing series.
        overwrite: replace existing files of the same name instead of raising.

    Returns:
        The written file paths, in slice order.

    Raises:
        ValueError: bad shape, non-finite values, bad affine, or RGB values outside
            [0, 255] or with modality MR/CT.
        FileExistsError: a target file exists and ``overwrite`` is False.
        NotADirectoryError: ``out_dir`` is a file.
    """
    vol = np.asarray(torch.as_tensor(volume).detach().cpu())
    if vol.ndim == 3:
        vol = vol[None]
    if vol.ndim != 4 or vol.shape[0] not in (1, 3) or 0 in vol.shape:
        raise ValueError(
            f"volume must be (H, W, D) or (C, H, W, D) with C 1 or 3, got shape {vol.shape}; "
            "add a slice axis with volume[..., None] for a 2D image."
        )
    check_finite(vol, "volume")
    modality = str(modality).upper()
    rgb = vol.shape[0] == 3
    sop_class = (
        SecondaryCaptureImageStorage
        if rgb
        else _SOP_CLASSES.get(modality, SecondaryCaptureImageStorage)
    )
    if rgb and (modality in _SOP_CLASSES or vol.min() < 0 or vol.max() > 255):
        raise ValueError(
            f"an RGB volume must have values in [0, 255] and a modality other than MR/CT, got "
            f"modality {modality!r} and range [{vol.min():g}, {vol.max():g}]."
        )
    iop, pixel_spacing, step, origin = _geometry(np.asarray(torch.as_tensor(affine), float))
    out_dir = prepare_dir(out_dir)
    ds = _base_dataset(modality, sop_class, rgb, series_description[:64])
    ds.StudyInstanceUID = study_instance_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    if body_part:
        ds.BodyPartExamined = str(body_part).upper()[:16]
    else:
        ds.Laterality = ""
    stored = _set_pixel_module(ds, vol, rgb)
    ds.PixelSpacing = [_ds_str(v) for v in pixel_spacing]
    normal = np.cross(iop[:3], iop[3:])
    if sop_class != SecondaryCaptureImageStorage:
        ds.FrameOfReferenceUID = frame_of_reference_uid or generate_uid()
        ds.ImageOrientationPatient = iop
        ds.SliceThickness = _ds_str(abs(step @ normal))
        if modality == "MR":
            ds.SpacingBetweenSlices = ds.SliceThickness
    paths = []
    for k in range(vol.shape[3]):
        position = origin + k * step
        ds.InstanceNumber = k + 1
        ds.SOPInstanceUID = generate_uid()
        if sop_class != SecondaryCaptureImageStorage:
            ds.ImagePositionPatient = [_ds_str(v) for v in position]
            ds.SliceLocation = _ds_str(position @ normal)
        # (C, columns, rows) -> (rows, columns, C), interleaved samples
        ds.PixelData = np.ascontiguousarray(stored[:, :, :, k].transpose(2, 1, 0)).tobytes()
        ds.file_meta = file_meta_for(ds)
        path = out_dir / f"slice_{k:04d}.dcm"
        paths.append(
            atomic_write(
                path, lambda tmp: ds.save_as(tmp, enforce_file_format=True), overwrite=overwrite
            )
        )
    return paths


def _set_pixel_module(ds: Dataset, vol: np.ndarray, rgb: bool) -> np.ndarray:
    """Set the pixel description, rescale and window tags; return stored ``(C, H, W, D)``."""
    ds.Rows, ds.Columns = vol.shape[2], vol.shape[1]
    if rgb:
        ds.PixelRepresentation = 0
        return np.round(vol).astype(np.uint8)
    stored, slope, intercept = _quantize(vol[0])
    ds.PixelRepresentation = int(stored.dtype == np.int16)
    if ds.Modality != "MR" or (slope, intercept) != (1.0, 0.0):  # the MR IOD has no rescale
        ds.RescaleIntercept, ds.RescaleSlope = _ds_str(intercept), _ds_str(slope)
    low, high = float(vol.min()), float(vol.max())
    ds.WindowCenter, ds.WindowWidth = _ds_str((low + high) / 2), _ds_str(max(high - low, 1.0))
    return stored[None]


def file_meta_for(ds: Dataset) -> FileMetaDataset:
    from medden import __version__

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"MEDDEN_{__version__}"[:16]
    return meta
