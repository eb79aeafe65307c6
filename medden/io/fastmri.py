"""fastMRI single-coil files (``.h5``): read, check, reconstruct and write.

The dataset (a folder split by volume) is :class:`medden.data.fastmri.FastMRISingleCoilFolder`.

A fastMRI single-coil file (read with MONAI's ``FastMRIReader``) holds:

* ``kspace``: ``(S, H, W)`` complex64, S slices, centred (DC in the middle), the last axis is
  phase encode. Fully sampled in train/val files.
* ``reconstruction_esc``: ``(S, 320, 320)`` float32 magnitude of the centre crop (train/val).
* ``ismrmrd_header``: XML bytes; attributes ``acquisition``, ``max``, ``norm``, ``patient_id``.
* Test/challenge files add ``mask`` (``(W,)``, nonzero at sampled columns) and attributes
  ``acceleration`` and ``num_low_frequency``; their k-space is zero at unsampled columns.
  medden also reads and writes a 2-D ``(H, W)`` mask in the same place, for non-Cartesian
  patterns such as Noise2Noise's radial Bernoulli mask (an extension of the layout).

Centring: fastMRI's ``ifft2c`` (ifftshift, orthonormal ifft2, fftshift) and
``monai.data.fft_utils.ifftn_centered`` agree for even and odd sizes (MONAI's ifftshift rolls
by ``(n + 1) // 2``, as numpy's does), so fastMRI k-space needs no extra shift in medden's
layout (complex data as float32 with a trailing (real, imaginary) axis, see :mod:`medden`).

Each volume is scaled by one factor so that the 99.5th percentile of its centre-cropped
(zero-filled) magnitude is 1. ``patient_id`` is dropped on reading and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from monai.data.fft_utils import ifftn_centered

from medden.io.files import atomic_write

__all__ = ["DEFAULT_CROP", "center_crop", "kspace_to_image", "magnitude", "read_singlecoil_kspace", "read_undersampled",
           "volume_scale", "write_singlecoil_h5"]

DEFAULT_CROP = (320, 320)
SCALE_PERCENTILE = 99.5
KSPACE, MASK, RECONSTRUCTION, HEADER = "kspace", "mask", "reconstruction_esc", "ismrmrd_header"
_DATASETS = (KSPACE, MASK, RECONSTRUCTION, "reconstruction_rss", HEADER)
_PRIVATE = ("patient_id", "filename")  # never returned: patient identifiers must not reach logs


def _h5py():
    try:
        import h5py
    except ImportError as err:  # an optional dependency
        raise ImportError("fastMRI .h5 files need h5py: `pip install h5py`.") from err
    return h5py


def _check_kspace(kspace: np.ndarray, mask: np.ndarray | None, name: str) -> None:
    """Raise ``ValueError`` (naming ``name``) unless ``kspace`` is finite single-coil complex data
    and ``mask``, if given, is a non-empty ``(W,)`` column mask."""
    if not np.iscomplexobj(kspace):
        raise ValueError(f"{name}: k-space is real-only ({kspace.dtype}); complex k-space (complex64) is required.")
    if kspace.ndim == 4:
        raise ValueError(f"{name}: multi-coil k-space of shape {kspace.shape} (slices, coils, H, W) "
                         "is not supported, single-coil only; use a fastMRI single-coil file.")
    if kspace.ndim != 3 or min(kspace.shape) == 0:
        raise ValueError(f"{name}: k-space must be (slices, H, W), got shape {kspace.shape}.")
    bad = int(np.count_nonzero(~np.isfinite(kspace)))
    if bad:
        raise ValueError(f"{name}: k-space contains {bad} non-finite value(s) (NaN or inf).")
    if mask is not None:
        if mask.shape not in (kspace.shape[-1:], kspace.shape[-2:]):
            raise ValueError(f"{name}: mask/k-space shape mismatch: mask shape {mask.shape}, k-space shape "
                             f"{kspace.shape}; the mask must have one entry per column (last axis), or be a "
                             "2-D (H, W) pattern.")
        if not np.any(mask):
            raise ValueError(f"{name}: the mask is all zero, so no k-space column is sampled.")


def read_singlecoil_kspace(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Read and check one fastMRI single-coil file.

    Returns:
        ``kspace``: ``(S, H, W)`` complex64, centred; ``mask``: ``(W,)`` float32 of 0 and 1
        (1 = sampled column), or None for a fully sampled file; ``attrs``: the file's
        attributes (``acquisition``, ``max``, ``norm``, ...) without ``patient_id``.

    Raises:
        ValueError: no ``kspace`` dataset, real or multi-coil k-space, NaN or inf, a mask
            whose length is not k-space's last axis, or an all-zero mask.
    """
    _h5py()
    from monai.apps.reconstruction.fastmri_reader import FastMRIReader

    data = FastMRIReader().read(str(path))
    if KSPACE not in data:
        found = sorted(str(k) for k in data if k not in _PRIVATE)
        raise ValueError(f"{str(path)!r}: no 'kspace' dataset (found {found}); is it a fastMRI file?")
    kspace = np.asarray(data[KSPACE])
    mask = np.asarray(data[MASK]) if MASK in data else None
    _check_kspace(kspace, mask, repr(str(path)))
    mask = None if mask is None else (mask != 0).astype(np.float32)
    attrs = {str(k): v.item() if isinstance(v, np.generic) else v
             for k, v in data.items() if k not in _DATASETS + _PRIVATE}
    return kspace.astype(np.complex64, copy=False), mask, attrs


def kspace_to_image(kspace: np.ndarray) -> np.ndarray:
    """Inverse centred orthonormal FFT over the last two axes.

    Args:
        kspace: ``(..., H, W)`` complex, centred.

    Returns:
        ``(..., H, W, 2)`` float32 complex image, (real, imaginary) last.

    Example:
        >>> kspace_to_image(np.ones((1, 4, 4), np.complex64))[0, 2, 2]  # flat k-space -> centre spike
        array([4., 0.], dtype=float32)
    """
    as_real = np.stack([kspace.real, kspace.imag], axis=-1).astype(np.float32)
    return ifftn_centered(as_real, spatial_dims=2, is_complex=True)


def center_crop(image: np.ndarray, crop: tuple[int, int]) -> np.ndarray:
    """Centre-crop the ``(H, W)`` axes of a ``(..., H, W, 2)`` complex image to ``crop``,
    clamped to the image size (fastMRI's ``center_crop`` offsets)."""
    height, width = image.shape[-3:-1]
    h, w = min(crop[0], height), min(crop[1], width)
    top, left = (height - h) // 2, (width - w) // 2
    return image[..., top:top + h, left:left + w, :]


def magnitude(image: np.ndarray) -> np.ndarray:
    """``(..., H, W)`` magnitude of a ``(..., H, W, 2)`` (real, imaginary) complex image."""
    return np.hypot(image[..., 0], image[..., 1])


def volume_scale(magnitude: np.ndarray, path: str | os.PathLike) -> float:
    """The 99.5th percentile of a volume's magnitude: dividing by it maps that percentile to 1."""
    scale = float(np.percentile(magnitude, SCALE_PERCENTILE))
    if not scale > 0:
        raise ValueError(f"{str(path)!r}: the image is zero at its {SCALE_PERCENTILE}th percentile "
                         "(all-zero k-space?); there is nothing to scale.")
    return scale


def read_undersampled(path: str | os.PathLike, crop: tuple[int, int] = DEFAULT_CROP
                      ) -> tuple[np.ndarray, np.ndarray, float]:
    """Read an undersampled file (test-set layout, with a ``mask``) for reconstruction.

    Returns:
        ``kspace``: ``(S, 1, H, W, 2)`` float32 centred k-space divided by ``scale``;
        ``mask``: ``(1, H, W)`` float32 of 0 and 1, the column mask broadcast over rows;
        ``scale``: the 99.5th percentile of the zero-filled magnitude's centre ``crop`` (the
        rule used for training images); multiply a reconstruction by it to undo the scaling.

    Raises:
        ValueError: the file has no mask (fully sampled), or fails :func:`read_singlecoil_kspace`.
    """
    kspace, mask, _ = read_singlecoil_kspace(path)
    if mask is None:
        raise ValueError(f"{str(path)!r} has no 'mask' dataset: it is fully sampled, not a test-set "
                         "input; read it with FastMRISingleCoilFolder.images().")
    scale = volume_scale(magnitude(center_crop(kspace_to_image(kspace), crop)), path)
    scaled = np.stack([kspace.real, kspace.imag], axis=-1)[:, None] / np.float32(scale)
    return scaled.astype(np.float32), np.broadcast_to(mask, kspace.shape[-2:])[None].copy(), scale


def _mask_attrs(sampled: np.ndarray) -> dict:
    """``acceleration`` (columns per sampled column) and ``num_low_frequency`` (width of the
    sampled run around the centre column) of a ``(W,)`` bool mask; a 2-D ``(H, W)`` pattern
    gets ``acceleration`` (points per sampled point) only."""
    if sampled.ndim == 2:
        return {"acceleration": float(sampled.size / sampled.sum())}
    centre, gaps = len(sampled) // 2, np.flatnonzero(~sampled)
    left, right = gaps[gaps < centre].max(initial=-1), gaps[gaps > centre].min(initial=len(sampled))
    return {"acceleration": int(round(sampled.size / sampled.sum())),
            "num_low_frequency": int(right - left - 1) if sampled[centre] else 0}


def _ismrmrd_header(shape: tuple[int, ...], recon: tuple[int, ...]) -> bytes:
    """A minimal ISMRMRD XML header with the sizes fastMRI's loaders read."""
    _, height, width = shape
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>'
        f"<encodedSpace><matrixSize><x>{height}</x><y>{width}</y><z>1</z></matrixSize></encodedSpace>"
        f"<reconSpace><matrixSize><x>{recon[0]}</x><y>{recon[1]}</y><z>1</z></matrixSize></reconSpace>"
        f"<encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>{width - 1}</maximum>"
        f"<center>{width // 2}</center></kspace_encoding_step_1></encodingLimits></encoding></ismrmrdHeader>"
    ).encode()


def write_singlecoil_h5(path: str | os.PathLike, kspace: np.ndarray, mask: np.ndarray | None = None,
                        reconstruction: np.ndarray | None = None, attrs: Mapping | None = None,
                        *, overwrite: bool = False) -> Path:
    """Write a fastMRI single-coil ``.h5`` file atomically (temporary file, then ``os.replace``).

    Args:
        path: the file to write; its folder must exist.
        kspace: ``(S, H, W)`` complex centred k-space, or ``(S, H, W, 2)`` real (real, imaginary).
        mask: ``(W,)`` sampled columns or a 2-D ``(H, W)`` pattern (nonzero = sampled). If given, the file has the test-set
            layout: k-space is zeroed at unsampled columns and ``mask``, ``acceleration`` and
            ``num_low_frequency`` are written.
        reconstruction: ``(S, h, w)`` magnitude, stored as ``reconstruction_esc`` float32.
        attrs: attributes that override the defaults: ``acquisition`` ``"CORPD_FBK"``,
            ``patient_id`` ``"anonymous"``, ``max`` and ``norm`` of the reconstruction (or, without
            one, of the centre-cropped zero-filled magnitude), and those derived from ``mask``.
        overwrite: replace an existing file (else ``FileExistsError``).

    Returns:
        ``path``.
    """
    h5py = _h5py()
    kspace = np.asarray(kspace)
    if not np.iscomplexobj(kspace) and kspace.ndim == 4 and kspace.shape[-1] == 2:
        kspace = kspace[..., 0] + 1j * kspace[..., 1]
    mask = None if mask is None else np.asarray(mask) != 0
    _check_kspace(kspace, mask, f"kspace for {str(path)!r}")
    kspace = (kspace if mask is None else kspace * mask).astype(np.complex64)
    if reconstruction is not None:
        reconstruction = np.asarray(reconstruction, np.float32)
        if reconstruction.ndim != 3 or reconstruction.shape[0] != kspace.shape[0]:
            raise ValueError(f"reconstruction must be (slices, h, w) with {kspace.shape[0]} slices like "
                             f"kspace, got shape {reconstruction.shape}.")
    image = (reconstruction if reconstruction is not None
             else magnitude(center_crop(kspace_to_image(kspace), DEFAULT_CROP)))
    defaults = {"acquisition": "CORPD_FBK", "patient_id": "anonymous", "max": float(image.max()),
                "norm": float(np.linalg.norm(image)), **({} if mask is None else _mask_attrs(mask))}

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset(KSPACE, data=kspace)
            if mask is not None:
                f.create_dataset(MASK, data=mask)
            if reconstruction is not None:
                f.create_dataset(RECONSTRUCTION, data=reconstruction)
            f.create_dataset(HEADER, data=np.bytes_(_ismrmrd_header(kspace.shape, image.shape[-2:])))
            for key, value in {**defaults, **(attrs or {})}.items():
                f.attrs[key] = value

    return atomic_write(path, write, overwrite=overwrite)
