"""Denoise whole images and folders of NIfTI files with a trained network.

Networks in medden are trained on images scaled to [0, 1]; :func:`denoise_image` scales each
image by its own percentile range, runs the inferer, and maps the result back to the input's
units, so denoised files stay in the units they came in (MR signal, HU, ...).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type, convert_to_tensor

from medden.bundle.backends import network_device
from medden.io.files import separate_output_dir
from medden.io.nifti import list_nifti_files
from medden.core.validation import check_channel_first, check_finite, check_range

__all__ = ["denoise_image", "denoise_nifti_file", "denoise_nifti_folder", "intensity_range",
           "list_nifti_files", "map_nifti_file", "nifti_stem", "to_unit_range"]



def intensity_range(image: np.ndarray, percentiles: tuple[float, float] = (0.0, 100.0), smoothing: int = 0
                    ) -> tuple[float, float]:
    """The intensities ``(low, high)`` that map to [0, 1] before a network sees ``image``.

    ``low`` and ``high`` are the ``percentiles`` of ``image`` (``(C, X, Y[, N])``), measured on
    a copy smoothed in-plane by a ``smoothing`` x ``smoothing`` box mean when ``smoothing > 1``:
    noise widens the extreme percentiles of a noisy image (dark air reads about 2.6 sigma
    below its true level), and smoothing keeps the mapping close to that of the clean
    images the network was trained on. ``high <= low`` (a constant image) gives ``(low, low + 1)``.
    """
    low_pct, high_pct = check_range(percentiles, "percentiles", 0.0, 100.0)
    arr = np.asarray(image, dtype=np.float32)
    if smoothing > 1:
        from scipy.ndimage import uniform_filter

        size = [1, smoothing, smoothing] + [1] * (arr.ndim - 3)
        arr = uniform_filter(arr, size=size, mode="reflect")
    low, high = (float(v) for v in np.percentile(arr, [low_pct, high_pct]))
    return (low, high) if high > low else (low, low + 1.0)


def denoise_image(image: NdarrayOrTensor, network: torch.nn.Module, inferer: Inferer | Callable,
                  percentiles: tuple[float, float] = (0.0, 100.0), device: torch.device | str | None = None,
                  smoothing: int = 0) -> NdarrayOrTensor:
    """Denoise one ``(C, H, W[, D])`` image in its own units.

    The values at ``percentiles`` map to [0, 1] (not clipped), ``inferer(batch, network)``
    runs on ``(1, C, ...)`` under ``torch.no_grad()``, and the output is mapped back.

    Args:
        image: numpy or torch; a ``MetaTensor`` keeps its meta (affine).
        network: the trained network, in eval mode.
        inferer: e.g. ``monai.inferers.SliceInferer`` to run a 2D network over a volume,
            wrapped in :class:`~medden.inference.RefinementInferer` for refinement.
        percentiles: intensity percentiles that define the [0, 1] range.
        device: where to run; default: the network's device.
        smoothing: measure the percentiles on an in-plane box-smoothed copy (see
            :func:`intensity_range`); 0 measures them on the image itself.

    Returns:
        The denoised image, same shape and container type as ``image``, float32.
    """
    unit, low, scale = to_unit_range(image, percentiles, smoothing)
    if device is None:
        device = network_device(network)
    with torch.no_grad():
        out = inferer(unit[None].to(device), network)[0].float().cpu() * scale + low
    return convert_to_dst_type(out, image, dtype=torch.float32)[0]


def to_unit_range(image: NdarrayOrTensor, percentiles: tuple[float, float] = (0.0, 100.0), smoothing: int = 0
                  ) -> tuple[torch.Tensor, float, float]:
    """Check ``image`` and scale it as a network sees it: its ``percentiles`` map to [0, 1].

    Args:
        image: ``(C, H, W[, D])`` numpy or torch (on the CPU), finite.
        percentiles: see :func:`intensity_range`.
        smoothing: see :func:`intensity_range`.

    Returns:
        ``(unit, low, scale)``: ``unit = (image - low) / scale``, a float32 CPU tensor of
        ``image``'s shape without meta, not clipped. A network output ``r`` in those units maps
        back to the image's units as ``r * scale + low``; a spread (a standard deviation) as
        ``r * scale``.

    Raises:
        ValueError: ``image`` is not channel-first or holds NaN/inf.
    """
    check_channel_first(image, "image")
    check_finite(image, "image")
    img_t = convert_to_tensor(image, track_meta=False, dtype=torch.float32)
    low, high = intensity_range(img_t.numpy(), percentiles, smoothing)
    return (img_t - low) / (high - low), low, high - low


def nifti_stem(path: Path) -> str:
    """``path``'s name without ``.nii`` or ``.nii.gz``."""
    name = path.name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name[: -len(".nii")]


def denoise_nifti_file(path: str | os.PathLike, out_path: str | os.PathLike, network: torch.nn.Module,
                       inferer: Inferer | Callable, percentiles: tuple[float, float] = (0.0, 100.0),
                       overwrite: bool = False, smoothing: int = 0):
    """Denoise one NIfTI file into ``out_path`` with the input's affine (2D files as one slice).

    Returns:
        ``(image, denoised)``: ``(C, X, Y, N)`` MetaTensors, the input (2D made one-slice) and
        the result, for callers that report on them.

    Raises:
        ValueError: the image cannot be denoised (e.g. non-finite values); the message starts
            with the file name.
        FileExistsError: ``out_path`` exists and ``overwrite`` is False.
    """
    volume, (denoised,) = map_nifti_file(
        path, [out_path], lambda vol: (denoise_image(vol, network, inferer, percentiles, smoothing=smoothing),),
        overwrite)
    return volume, denoised


def map_nifti_file(path: str | os.PathLike, out_paths: Sequence[str | os.PathLike],
                   process: Callable[[NdarrayOrTensor], Sequence[NdarrayOrTensor]], overwrite: bool = False):
    """Read a NIfTI file, compute images from it, and write each with the input's affine.

    Args:
        path: the input file; only read.
        out_paths: one file per image ``process`` returns, each written atomically.
        process: maps the input as a ``(C, X, Y, N)`` MetaTensor (a 2D file as one slice) to a
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
    from medden.io.nifti import read_nifti, write_nifti

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


def denoise_nifti_folder(input_dir: str | os.PathLike, output_dir: str | os.PathLike, network: torch.nn.Module,
                         inferer: Inferer | Callable, percentiles: tuple[float, float] = (0.0, 100.0),
                         suffix: str = "_denoised", overwrite: bool = False, smoothing: int = 0) -> list[Path]:
    """Denoise every NIfTI file in ``input_dir`` into ``output_dir/<name><suffix>.nii.gz``.

    Each output keeps its input's affine (voxel-to-world geometry); inputs are only read, and
    every output is written atomically. 2D files are treated as one-slice volumes.

    Raises:
        ValueError: ``output_dir`` is ``input_dir`` (originals are never touched), no NIfTI
            input, or an input with non-finite values (the message names the file).
        FileExistsError: an output exists and ``overwrite`` is False.
    """
    files = list_nifti_files(input_dir)
    out_dir = separate_output_dir(input_dir, output_dir)
    written = []
    network.eval()
    for path in files:
        out_path = out_dir / f"{nifti_stem(path)}{suffix}.nii.gz"
        denoise_nifti_file(path, out_path, network, inferer, percentiles, overwrite, smoothing)
        written.append(out_path)
    return written
