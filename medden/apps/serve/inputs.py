"""Recognise an uploaded file by its content and read it as one image volume.

Accepted (see :data:`ACCEPTED`): a DICOM Part 10 file (single- or multi-frame), a ``.zip``
holding one DICOM series, a NIfTI-1/2 file (``.nii``, or gzip-compressed ``.nii.gz``) and a
PNG (grey, 16-bit grey, RGB; alpha is dropped, palettes become RGB). The type comes from the
bytes, never only from the name: the ``DICM`` marker at byte 128, the zip and PNG signatures,
the NIfTI header's size and magic (after gunzipping the first bytes of a gzip file), read by
:func:`medden.io.inputs.file_signature`, as ``medden denoise``'s input dispatcher does.

DICOM goes through :mod:`medden.io`'s folder reader (:func:`~medden.io.plan_dicom_series`,
:func:`~medden.io.load_dicom_series`), the same path as ``medden denoise``, so the result can
be written back as a derived series. Reasons for refusing a file come from that reader and
never quote tag values (no patient identifiers).

Every image comes back as a float32 ``(C, H, W, D)`` volume in the package's axis order (see
:mod:`medden`; D is 1 for a 2D image); C is 1 (grey) or 3 (RGB).
"""

from __future__ import annotations

import shutil
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medden.apps.serve.errors import UploadError
from medden.apps.serve.upload import format_bytes

if TYPE_CHECKING:
    from medden.io import DicomSeries

__all__ = ["ACCEPTED", "MAX_VOXELS", "DecodedImage", "detect_kind", "read_upload"]

ACCEPTED = ("a DICOM file (.dcm, single- or multi-frame), a .zip of one DICOM series, a NIfTI file (.nii or "
            ".nii.gz) or a PNG image")
#: The most voxels (all channels) one image may have: 64 Mi voxels, 256 MB as float32.
MAX_VOXELS = 64 * 2**20
#: The most files a DICOM .zip may hold.
MAX_ZIP_MEMBERS = 4096
#: the file signatures (:func:`medden.io.inputs.file_signature`) the viewer reads
_VIEWER_KINDS = ("dicom", "zip", "nifti", "nifti.gz", "png")


@dataclass
class DecodedImage:
    """An upload read as one volume.

    Attributes:
        kind: ``"dicom"`` (a file or a zip of one series), ``"nifti"`` or ``"png"``.
        volume: float32 ``(C, H, W, D)`` in the file's own units (modality units for DICOM).
        affine: 4x4 float64 RAS voxel-to-world matrix (the identity for PNG).
        flat: a 2D image (PNG, 2D NIfTI): its NIfTI download is 2D too.
        series: the DICOM series (headers for the derived series), for ``kind == "dicom"``.
        png_bits: 8 or 16, the sample depth of a PNG input (its download keeps it).
        notes: what the reader noticed (left-out slices, geometry), for the page.
    """

    kind: str
    volume: np.ndarray
    affine: np.ndarray
    flat: bool = False
    series: DicomSeries | None = None
    png_bits: int | None = None
    notes: list[str] = field(default_factory=list)


def detect_kind(path: Path, filename: str) -> str:
    """What the file at ``path`` holds, from its first bytes: ``"dicom"``, ``"zip"``, ``"nifti"``,
    ``"nifti.gz"`` or ``"png"``.

    Args:
        path: the uploaded bytes.
        filename: the name the browser sent, only used in the message of a refusal.

    Raises:
        UploadError: 415 for anything else (the message lists the accepted types); 422 for a
            gzip file named ``.nii.gz`` that does not decompress.
    """
    from medden.io.inputs import file_signature

    try:
        kind = file_signature(path)
    except ValueError as err:  # a gzip stream that does not decompress
        if filename.lower().endswith(".nii.gz"):
            raise UploadError(422, f"this .nii.gz file is corrupt: its gzip stream does not decompress "
                                   f"({type(err.__cause__).__name__}); export the NIfTI file again.") from None
        kind = None
    if kind in _VIEWER_KINDS:
        return kind
    suffix = "".join(Path(filename).suffixes[-2:]).lower() or "no extension"
    raise UploadError(415, f"this file ({suffix}) is not a type the viewer reads: its content is not DICOM "
                           f"(no 'DICM' marker at byte 128), NIfTI, PNG or zip. Upload {ACCEPTED}.")


def read_upload(path: Path, filename: str, folder: Path, max_unpacked_bytes: int) -> DecodedImage:
    """Read an uploaded file as one volume (see the module docstring).

    Args:
        path: the uploaded bytes; the file may be moved into a subfolder of ``folder``.
        filename: the name the browser sent (for messages only).
        folder: the request's temporary folder, for files the readers need on disk.
        max_unpacked_bytes: the largest total size the files of a ``.zip`` may unpack to.

    Raises:
        UploadError: 413 a zip that unpacks to more than ``max_unpacked_bytes`` or an image
            of more than :data:`MAX_VOXELS` voxels; 415 a type the viewer does not read; 422 a
            file that cannot be decoded (truncated, corrupt, several series, unsupported
            pixel data).
    """
    kind = detect_kind(path, filename)
    if kind == "png":
        return _read_png(path)
    if kind in ("nifti", "nifti.gz"):
        return _read_nifti(path, folder / ("image.nii.gz" if kind == "nifti.gz" else "image.nii"))
    dicom_dir = folder / "dicom"
    dicom_dir.mkdir()
    if kind == "zip":
        _unpack_zip(path, dicom_dir, max_unpacked_bytes)
    else:
        shutil.move(path, dicom_dir / "image.dcm")
    return _read_dicom(dicom_dir, from_zip=kind == "zip")


def _check_voxels(shape: tuple[int, ...], what: str) -> None:
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOXELS:
        raise UploadError(413, f"this {what} has {voxels:,} voxels ({' x '.join(map(str, shape))}), more than the "
                               f"viewer's limit of {MAX_VOXELS:,}; crop it or denoise it with 'medden denoise'.")


def _unpack_zip(path: Path, target: Path, max_unpacked_bytes: int) -> None:
    """Extract the files of a zip into ``target`` under new names (``00000``, ``00001``, ...).

    Member names are never used as paths, so a name such as ``../../x`` cannot write outside
    ``target`` (zip slip). The unpacked total is counted as it is written, not taken from the
    headers, and stops at ``max_unpacked_bytes`` (zip bombs).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            if len(members) > MAX_ZIP_MEMBERS:
                raise UploadError(413, f"the zip holds {len(members)} files, more than the viewer's limit of "
                                       f"{MAX_ZIP_MEMBERS}; zip one series only.")
            total = 0
            for k, info in enumerate(members):
                with archive.open(info) as src, (target / f"{k:05d}").open("wb") as dst:
                    while chunk := src.read(1 << 20):
                        total += len(chunk)
                        if total > max_unpacked_bytes:
                            raise UploadError(413, "the zip unpacks to more than the viewer's limit of "
                                                   f"{format_bytes(max_unpacked_bytes)}; zip one series only, or "
                                                   "denoise large exports with 'medden denoise'.")
                        dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
        raise UploadError(422, f"this zip file is corrupt or uses an unsupported feature ({type(err).__name__}: "
                               f"{err}); zip the DICOM files again without encryption.") from None


def _read_dicom(folder: Path, from_zip: bool) -> DecodedImage:
    from medden.io import load_dicom_series, plan_dicom_series

    what = "the zip" if from_zip else "this DICOM file"
    plans, skipped = plan_dicom_series(folder)
    if not plans:
        reasons = "; ".join(sorted({s.reason for s in skipped})[:3]) or "it holds no file"
        raise UploadError(422, f"{what} could not be read as a DICOM image: {reasons}.")
    if len(plans) > 1:
        raise UploadError(422, f"{what} holds {len(plans)} image series (or one series that does not form a single "
                               "volume); upload one series at a time.")
    _check_voxels(plans[0].shape, "DICOM series")
    series, problems = load_dicom_series(plans[0])
    if series is None:
        reasons = "; ".join(sorted({s.reason for s in problems})[:3])
        raise UploadError(422, f"{what} could not be decoded: {reasons}.")
    notes = list(series.notes)
    if skipped:
        notes.append(f"{len(skipped)} file(s) of the zip were left out: "
                     + "; ".join(sorted({s.reason for s in skipped})[:3]))
    return DecodedImage("dicom", series.volume, np.asarray(series.affine, np.float64), series=series, notes=notes)


def _read_nifti(path: Path, named: Path) -> DecodedImage:
    import nibabel as nib

    from medden.io import read_nifti

    shutil.move(path, named)  # nibabel picks the reader by the name
    try:
        shape = nib.load(named).shape
        _check_voxels(shape, "NIfTI image")
        image = read_nifti(named)
    except UploadError:
        raise
    except Exception as err:  # nibabel, gzip and zlib raise many types on damaged files
        raise UploadError(422, f"this NIfTI file could not be read ({type(err).__name__}: "
                               f"{str(err).replace(str(named), '<file>')[:200]}); export it again.") from None
    volume = np.asarray(image, dtype=np.float32)
    if volume.ndim not in (3, 4):
        raise UploadError(422, f"this NIfTI file holds a {volume.ndim - 1}D image with {volume.shape[0]} channel(s) "
                               f"(shape {shape}); the viewer takes 2D or 3D images: split a time series into volumes.")
    flat = volume.ndim == 3
    return DecodedImage("nifti", volume[..., None] if flat else volume,
                        np.asarray(image.affine, np.float64), flat=flat)


def _read_png(path: Path) -> DecodedImage:
    from PIL import Image

    try:
        with Image.open(path) as png:
            _check_voxels((len(png.getbands()), *png.size), "PNG image")
            png.load()
            bits = 16 if png.mode.startswith("I") else 8
            if png.mode in ("P", "PA", "RGBA", "CMYK", "YCbCr"):
                png = png.convert("RGB")
            elif png.mode in ("1", "LA"):
                png = png.convert("L")
            pixels = np.asarray(png, dtype=np.float32)
    except UploadError:
        raise
    except Image.DecompressionBombError:
        raise UploadError(413, f"this PNG image has more pixels than the viewer's limit of {MAX_VOXELS:,}; crop "
                               "it first.") from None
    except Exception as err:  # Pillow raises many types on damaged files
        raise UploadError(422, f"this PNG file is damaged or truncated and could not be decoded "
                               f"({type(err).__name__}); save the image again.") from None
    volume = pixels.T[None] if pixels.ndim == 2 else pixels.transpose(2, 1, 0)  # (C, H, W): H along a row
    return DecodedImage("png", np.ascontiguousarray(volume[..., None]), np.eye(4), flat=True, png_bits=bits)
