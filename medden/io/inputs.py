"""One way in: say what an input path holds, by its content, before anything reads it.

:func:`identify_input` takes a path and returns an :class:`InputSource`: its :class:`InputKind`
(DICOM folder or file, NIfTI file or folder, PNG/TIFF image file or folder) and the files a
reader takes from it. Anything else is refused with a message naming the path, what was
found and what is accepted. Single files are recognised by their first bytes, never only by
their names (:func:`file_signature`): the ``DICM`` marker at byte 128, the PNG and TIFF
signatures, the NIfTI-1/2 header (after gunzipping the first bytes of a gzip file). The web
viewer's upload check uses the same signatures.

A folder is classified by the files directly in it (hidden ones ignored): NIfTI files by
name (``.nii``, ``.nii.gz``), images by name (``.png``, ``.tif``, ``.tiff``), DICOM files by
the ``.dcm`` suffix or the marker. One kind only: a folder holding two kinds is refused. A
folder with neither NIfTI files nor images is a DICOM folder (DICOM discovery is recursive
and reports every file it skips, see :func:`medden.io.plan_dicom_series`).

Example:
    >>> import tempfile, numpy as np
    >>> from medden.io import write_nifti
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = write_nifti(np.zeros((1, 4, 4), np.float32), folder / "a.nii.gz")
    >>> source = identify_input(folder / "a.nii.gz")
    >>> source.kind.value, [p.name for p in source.files]
    ('nifti_file', ['a.nii.gz'])
    >>> identify_input(folder).kind.value
    'nifti_folder'
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from medden.io.nifti import NIFTI_SUFFIXES
from medden.io.tiles import TILE_SUFFIXES

__all__ = ["VOLUME_INPUTS", "InputKind", "InputSource", "file_signature", "identify_input", "is_nifti_header"]

#: what a file's first bytes may say it is (:func:`file_signature`)
DICOM, NIFTI, NIFTI_GZ, PNG, TIFF, ZIP = "dicom", "nifti", "nifti.gz", "png", "tiff", "zip"

_HEAD_BYTES = 544  # a NIfTI-2 header is 540 bytes
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or an empty archive
_GZIP_MAGIC = b"\x1f\x8b"
_NIFTI1_MAGICS = (b"n+1\x00", b"ni1\x00")
_NIFTI2_MAGICS = (b"n+2\x00", b"ni2\x00")


class InputKind(str, Enum):
    """What an input path holds."""

    DICOM_FOLDER = "dicom_folder"
    DICOM_FILE = "dicom_file"
    NIFTI_FILE = "nifti_file"
    NIFTI_FOLDER = "nifti_folder"
    IMAGE_FILE = "image_file"  # PNG or TIFF
    IMAGE_FOLDER = "image_folder"

    @property
    def is_nifti(self) -> bool:
        return self in (InputKind.NIFTI_FILE, InputKind.NIFTI_FOLDER)

    @property
    def is_dicom(self) -> bool:
        return self in (InputKind.DICOM_FILE, InputKind.DICOM_FOLDER)


#: the kinds batch denoising and ``--fit`` read: a DICOM folder, a NIfTI file or a folder of them
VOLUME_INPUTS = (InputKind.DICOM_FOLDER, InputKind.NIFTI_FILE, InputKind.NIFTI_FOLDER)


@dataclass(frozen=True)
class InputSource:
    """An input path and what it holds (:func:`identify_input`).

    Attributes:
        path: the path given.
        kind: what it holds.
        files: the files to read, sorted: the file itself for a single file, the NIfTI or
            image files directly in a folder; empty for a DICOM folder, whose files are found
            (recursively) by :func:`medden.io.plan_dicom_series`.
    """

    path: Path
    kind: InputKind
    files: tuple[Path, ...] = ()


def is_nifti_header(head: bytes) -> bool:
    """Whether ``head`` (a file's first 544 bytes) starts with a NIfTI-1 or NIfTI-2 header, either byte order."""
    for order in "<>":
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] == 348 and head[344:348] in _NIFTI1_MAGICS:
            return True
        if len(head) >= 540 and struct.unpack(order + "i", head[:4])[0] == 540 and head[4:8] in _NIFTI2_MAGICS:
            return True
    return False


def file_signature(path: str | os.PathLike) -> str | None:
    """What the file at ``path`` holds by its first bytes: ``"dicom"``, ``"nifti"``, ``"nifti.gz"``,
    ``"png"``, ``"tiff"``, ``"zip"``, or None for anything else (a gzip file that holds no NIfTI
    header included).

    Raises:
        ValueError: a gzip file whose stream does not decompress (the message says so; a caller
            that accepts only some names may treat it as unknown instead).
    """
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    if head.startswith(_PNG_SIGNATURE):
        return PNG
    if head[128:132] == b"DICM":
        return DICOM
    if head.startswith(_ZIP_SIGNATURES):
        return ZIP
    if head.startswith(_TIFF_SIGNATURES):
        return TIFF
    if is_nifti_header(head):
        return NIFTI
    if head.startswith(_GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as f:
                inner = f.read(_HEAD_BYTES)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{os.fspath(path)!r} is a corrupt gzip file: its stream does not decompress "
                             f"({type(err).__name__}); export it again.") from err
        if is_nifti_header(inner):
            return NIFTI_GZ
    return None


_FILE_KINDS = {DICOM: InputKind.DICOM_FILE, NIFTI: InputKind.NIFTI_FILE, NIFTI_GZ: InputKind.NIFTI_FILE,
               PNG: InputKind.IMAGE_FILE, TIFF: InputKind.IMAGE_FILE}
_ACCEPTED = ("a DICOM folder or file, a NIfTI file (.nii, .nii.gz) or a folder of them, or a PNG/TIFF image "
             "or a folder of them")


def _is_dicom_file(path: Path) -> bool:
    if path.suffix.lower() == ".dcm":
        return True
    with open(path, "rb") as f:
        return f.read(132)[128:132] == b"DICM"


def _identify_folder(folder: Path) -> InputSource:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not entries:
        raise ValueError(f"input folder {str(folder)!r} is empty, so nothing in it could be read; pass {_ACCEPTED}.")
    files = [p for p in entries if p.is_file()]
    nifti = [p for p in files if p.name.endswith(NIFTI_SUFFIXES)]
    images = [p for p in files if p.suffix.lower() in TILE_SUFFIXES]
    # a folder of DICOM files alone needs no look inside them: only a mix is worth reading bytes for
    known = set(nifti) | set(images)
    others = [p for p in files if p not in known] if known else []
    dicom = [p for p in others if _is_dicom_file(p)]
    if images and not nifti and (dicom or any(p.is_dir() for p in entries)):
        # a DICOM export with loose PNG/TIFF files (thumbnails, screenshots): the DICOM reader skips
        # and reports them, as it does any file that is not DICOM
        images = []
    found = {name: group for name, group in (("NIfTI", nifti), ("PNG/TIFF", images), ("DICOM", dicom)) if group}
    if len(found) > 1:
        counts = ", ".join(f"{len(group)} {name}" for name, group in found.items())
        raise ValueError(f"input folder {str(folder)!r} mixes file kinds ({counts} file(s)); put each kind in "
                         "its own folder and pass one at a time.")
    if nifti:
        return InputSource(folder, InputKind.NIFTI_FOLDER, tuple(nifti))
    if images:
        return InputSource(folder, InputKind.IMAGE_FOLDER, tuple(images))
    return InputSource(folder, InputKind.DICOM_FOLDER)


def identify_input(path: str | os.PathLike, accept: Sequence[InputKind] = tuple(InputKind)) -> InputSource:
    """Say what ``path`` holds (see the module docstring) without reading any image.

    Args:
        path: a file or folder.
        accept: the kinds the caller reads (e.g. :data:`VOLUME_INPUTS`); any other is refused.

    Raises:
        TypeError: ``path`` is not a str or ``os.PathLike``.
        FileNotFoundError: ``path`` does not exist.
        ValueError: an empty folder, a folder mixing kinds, a file that is none of the kinds
            medden reads, or a kind not in ``accept`` (the message lists what is accepted).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"input must be a path (str or os.PathLike), got {type(path).__name__}.")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {str(path)!r} does not exist.")
    if path.is_dir():
        source = _identify_folder(path)
    else:
        kind = _FILE_KINDS.get(file_signature(path))
        if kind is None:
            suffix = "".join(path.suffixes[-2:]).lower() or "no extension"
            raise ValueError(f"input {str(path)!r} ({suffix}) is not a file medden reads: its content is not DICOM "
                             f"(no 'DICM' marker at byte 128), NIfTI, PNG or TIFF; pass {_ACCEPTED}.")
        source = InputSource(path, kind, (path,))
    if source.kind not in accept:
        wanted = ", ".join(k.value.replace("_", " ") for k in accept)
        raise ValueError(f"input {str(path)!r} is a {source.kind.value.replace('_', ' ')}; this reads only: "
                         f"{wanted}.")
    return source
