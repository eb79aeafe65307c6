"""Write and read channel-first images as NIfTI-1 files, keeping the affine.

Arrays follow the package convention (see :mod:`medden`): channel-first ``(C, H, W)`` or
``(C, H, W, D)``, spatial axes in MONAI/ITK index order, with a 4x4 RAS affine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from medden.io.files import atomic_write
from medden.core.validation import check_channel_first

__all__ = ["NIFTI_SUFFIXES", "list_nifti_files", "map_nifti_file", "nifti_stem", "read_nifti", "write_nifti"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")

_NIFTI_INTENT_VECTOR = 1007


def write_nifti(
    img: np.ndarray | torch.Tensor,
    path: str | os.PathLike,
    affine: np.ndarray | torch.Tensor | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a channel-first image to ``path`` (``.nii`` or ``.nii.gz``) atomically.

    One channel is stored as a plain 2D/3D image; several channels as a 5D vector image
    ``(H, W, D or 1, 1, C)`` with the NIfTI vector intent, which MONAI, ITK and nibabel read
    back as channels.

    Args:
        img: ``(C, H, W)`` or ``(C, H, W, D)``; stored as float32 (values unchanged).
        path: the file to create; the suffix picks compression.
        affine: 4x4 RAS voxel-to-world matrix in mm. Defaults to ``img.affine`` for a
            ``MetaTensor``, else the identity.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        ValueError: bad shape or affine.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    import nibabel as nib

    n_spatial = check_channel_first(img, "img")
    if affine is None:
        affine = getattr(img, "affine", None)
    affine = np.eye(4) if affine is None else np.asarray(torch.as_tensor(affine), dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise ValueError(f"affine must be a finite 4x4 matrix, got shape {affine.shape}.")
    data = np.asarray(torch.as_tensor(img).detach().cpu(), dtype=np.float32)
    if data.shape[0] == 1:
        data = data[0]
    else:
        data = np.moveaxis(data, 0, -1)
        if n_spatial == 2:
            data = data[:, :, None]
        data = data[:, :, :, None, :]
    nii = nib.Nifti1Image(data, affine)
    nii.set_qform(affine, code=1)  # scanner coordinates, so qform-only readers agree
    nii.set_sform(affine, code=1)
    nii.header.set_xyzt_units("mm")
    if data.ndim == 5:
        nii.header.set_intent(_NIFTI_INTENT_VECTOR)
    return atomic_write(path, lambda tmp: nib.save(nii, tmp), overwrite=overwrite)


def read_nifti(path: str | os.PathLike):
    """Read a NIfTI file written by :func:`write_nifti` (or any NIfTI) channel-first.

    A file named otherwise (``scan.dcm`` holding a NIfTI header, as
    :func:`medden.io.inputs.identify_input` finds by content) is read from its bytes.

    Returns:
        ``monai.data.MetaTensor`` float32 of shape ``(C, H, W[, D])`` with ``affine`` in its
        meta. A vector image with a single slice comes back 2D, ``(C, H, W)``.
    """
    import nibabel as nib
    from monai.data import MetaTensor

    nii = nib.load(os.fspath(path)) if Path(path).name.lower().endswith(NIFTI_SUFFIXES) else _misnamed_nifti(path)
    data = np.asarray(nii.dataobj, dtype=np.float32)
    if data.ndim == 5:
        data = np.moveaxis(data[:, :, :, 0, :], -1, 0)
        if data.shape[3] == 1:
            data = data[..., 0]
    else:
        data = data[None]
    affine = torch.as_tensor(nii.affine, dtype=torch.float64)
    return MetaTensor(data, affine=affine, meta={"filename_or_obj": os.fspath(path)})


def _misnamed_nifti(path: str | os.PathLike):
    """A NIfTI-1 or -2 image from a file whose name nibabel cannot dispatch on (read whole)."""
    import gzip

    import nibabel as nib

    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        return nib.Nifti1Image.from_bytes(raw)
    except Exception:  # nibabel raises several types for a header of the other version
        return nib.Nifti2Image.from_bytes(raw)


def list_nifti_files(input_dir: str | os.PathLike) -> list[Path]:
    """The ``.nii``/``.nii.gz`` files directly in ``input_dir``, sorted.

    Raises:
        ValueError: not a folder, or no NIfTI file in it.
    """
    folder = Path(input_dir)
    if not folder.is_dir():
        raise ValueError(f"input_dir {str(folder)!r} is not a folder of NIfTI files.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES))
    if not files:
        raise ValueError(f"input_dir {str(folder)!r} holds no .nii or .nii.gz file.")
    return files


def nifti_stem(path: Path) -> str:
    """``path``'s name without ``.nii`` or ``.nii.gz`` (without its last suffix if it has neither)."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def map_nifti_file(path: str | os.PathLike, out_paths: Sequence[str | os.PathLike],
                   process: Callable[[torch.Tensor], Sequence[np.ndarray | torch.Tensor]], overwrite: bool = False):
    """Read a NIfTI file, compute images from it, and write each with the input's affine.

    Args:
        path: the input file; only read.
        out_paths: one file per image ``process`` returns, each written atomically.
        process: maps the input as a ``(C, H, W, D)`` MetaTensor (a 2D file as one slice) to a
            sequence of images of that shape, one per entry of ``out_paths``.
        overwrite: replace existing outputs. If False, any existing output is refused before
            ``process`` runs, so no output set is left half written.

    Returns:
        ``(volume, outputs)``: the input as ``process`` saw it and what it returned.

    Raises:
        ValueError: ``process`` raised one (e.g. non-finite values); the message starts with
            the file name.
        FileExistsError: an output exists and ``overwrite`` is False.
    """
    path, out_paths = Path(path), [Path(p) for p in out_paths]
    existing = [str(p) for p in out_paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    image = read_nifti(path)
    flat = image.ndim == 3
    volume = image[..., None] if flat else image
    try:
        outputs = process(volume)
    except ValueError as err:
        raise ValueError(f"{path.name}: {err}") from None
    for out, out_path in zip(outputs, out_paths, strict=True):
        write_nifti(out[..., 0] if flat else out, out_path, image.affine, overwrite=overwrite)
    return volume, outputs
