"""One way in: say what an input path holds, by its content, before anything reads it.

:func:`identify_input` takes a path and returns an :class:`InputSource`: its :class:`InputKind`
(DICOM folder or file, NIfTI file or folder, a folder of both, PNG/TIFF image file or folder)
and the files a
reader takes from it. Anything else is refused with a message naming the path, what was
found and what is accepted. Single files are recognised by their first bytes, never only by
their names (:func:`file_signature`): the ``DICM`` marker at byte 128, the PNG and TIFF
signatures, the NIfTI-1/2 header (after gunzipping the first bytes of a gzip file). The web
viewer's upload check uses the same signatures.

A folder is classified by the content of every file below it (hidden files and folders
ignored), read the same way: NIfTI files (or files named ``.nii``/``.nii.gz`` whose bytes say
nothing else: broken NIfTI files, which the NIfTI reader then reports), DICOM files, PNG/TIFF
images. DICOM files and NIfTI files together make a mixed folder: both are denoised, each by
its own reader. A folder with DICOM files, or with nothing medden recognises, is a DICOM folder:
the DICOM reader is given every file that is not NIfTI and reports each one it skips (see
:func:`medden.io.plan_dicom_series`), PNG thumbnails in a DICOM export included. Only a folder
of PNG/TIFF images and nothing else is an image folder.

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

from medden.io.files import files_below
from medden.io.nifti import NIFTI_SUFFIXES

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
    MIXED_FOLDER = "mixed_folder"  # DICOM series and NIfTI files, each handled by its reader
    IMAGE_FILE = "image_file"  # PNG or TIFF
    IMAGE_FOLDER = "image_folder"

    @property
    def is_nifti(self) -> bool:
        """Whether it holds NIfTI files (:attr:`InputSource.files`)."""
        return self in (InputKind.NIFTI_FILE, InputKind.NIFTI_FOLDER, InputKind.MIXED_FOLDER)

    @property
    def is_dicom(self) -> bool:
        """Whether it holds DICOM files (:attr:`InputSource.dicom_files`)."""
        return self in (InputKind.DICOM_FILE, InputKind.DICOM_FOLDER, InputKind.MIXED_FOLDER)


#: the kinds batch denoising and ``--fit`` read: DICOM and NIfTI, as files or folders, or both in one folder
VOLUME_INPUTS = (InputKind.DICOM_FOLDER, InputKind.DICOM_FILE, InputKind.NIFTI_FILE, InputKind.NIFTI_FOLDER,
                 InputKind.MIXED_FOLDER)


@dataclass(frozen=True)
class InputSource:
    """An input path and what it holds (:func:`identify_input`).

    Attributes:
        path: the path given.
        kind: what it holds.
        files: the NIfTI files (NIfTI and mixed kinds) or the PNG/TIFF files (image kinds)
            to read, sorted: the file itself for a single file; for a folder, every such
            file below it.
        dicom_files: the files the DICOM reader (:func:`medden.io.plan_dicom_series`) is
            given, sorted: the DICOM files and every file that is neither NIfTI nor an image,
            so that the reader reports each one it cannot use; empty for other kinds.
    """

    path: Path
    kind: InputKind
    files: tuple[Path, ...] = ()
    dicom_files: tuple[Path, ...] = ()


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


def _content_kind(path: Path) -> str | None:
    """``"nifti"``, ``"dicom"`` or ``"image"`` by the file's first bytes; a file whose bytes say
    nothing but whose name says NIfTI counts as NIfTI (a broken one, which its reader reports);
    None for anything else (the DICOM reader reports those)."""
    named_nifti = path.name.lower().endswith(NIFTI_SUFFIXES)
    try:
        signature = file_signature(path)
    except ValueError:  # a corrupt gzip stream
        return "nifti" if named_nifti else None
    except OSError:  # unreadable here: the DICOM reader reports why
        return None
    if signature in (NIFTI, NIFTI_GZ) or (signature is None and named_nifti):
        return "nifti"
    if signature == DICOM:
        return "dicom"
    return "image" if signature in (PNG, TIFF) else None


def _identify_folder(folder: Path) -> InputSource:
    """Sort every file below ``folder`` by its content (see the module docstring)."""
    files = list(files_below(folder, skip_hidden=True))
    if not files:
        raise ValueError(f"input folder {str(folder)!r} is empty (no file in it or below it), so there is nothing to "
                         f"denoise; pass {_ACCEPTED}.")
    groups: dict[str | None, list[Path]] = {"nifti": [], "dicom": [], "image": [], None: []}
    for path in files:
        groups[_content_kind(path)].append(path)
    nifti, images = tuple(groups["nifti"]), tuple(groups["image"])
    dicom = tuple(sorted(groups["dicom"] + groups[None]))
    if nifti and groups["dicom"]:
        return InputSource(folder, InputKind.MIXED_FOLDER, nifti, dicom)
    if nifti:
        return InputSource(folder, InputKind.NIFTI_FOLDER, nifti)
    if images and not groups["dicom"]:
        return InputSource(folder, InputKind.IMAGE_FOLDER, images)
    # DICOM files, or nothing medden knows: the DICOM reader reports every file it skips,
    # loose PNG/TIFF files (thumbnails, screenshots) in a DICOM export included
    return InputSource(folder, InputKind.DICOM_FOLDER, (), tuple(sorted(dicom + images)))


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
        source = (InputSource(path, kind, dicom_files=(path,)) if kind is InputKind.DICOM_FILE
                  else InputSource(path, kind, (path,)))
    if source.kind not in accept:
        wanted = ", ".join(k.value.replace("_", " ") for k in accept)
        raise ValueError(f"input {str(path)!r} is a {source.kind.value.replace('_', ' ')}; this reads only: "
                         f"{wanted}.")
    return source
