"""Folders of files in, a folder of results out: the loops the bundles' inference configs run.

Each function reads every input file of a folder with :mod:`medden.io`, runs one algorithm of
:mod:`medden.inference` on it and writes the result into ``output_dir``, which must lie apart
from the input (:func:`medden.io.files.check_output_dir`). Inputs are only read, and every
output is written atomically.

* :func:`denoise_nifti_folder` / :func:`denoise_nifti_file`: NIfTI in, denoised NIfTI out
  (:func:`~medden.inference.denoise_image`), affine kept.
* :func:`denoise_nifti_folder_with_uncertainty` / :func:`denoise_nifti_with_uncertainty`: a
  ladder VAE's posterior mean or median and its ``_std`` map
  (:func:`~medden.inference.denoise_image_with_uncertainty`).
* :func:`denoise_tile_folder`: RGB PNG/TIFF tiles in, 8-bit PNG out.
* :func:`reconstruct_h5_folder`: undersampled fastMRI ``.h5`` in, NIfTI magnitude volumes out.

``medden denoise`` (:func:`medden.apps.batch_denoise.denoise_path`) denoises each NIfTI file
with :func:`denoise_nifti_file` too, and names its outputs with :func:`denoised_nifti_path`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.inferers import Inferer
from torch import nn

from medden.inference.kspace import density_weights, reconstruct_kspace
from medden.inference.posterior import DEFAULT_CHUNK, check_statistic, denoise_image_with_uncertainty, resolve_vae
from medden.inference.volumes import denoise_image
from medden.io.files import check_output_dir
from medden.io.nifti import NIFTI_SUFFIXES, list_nifti_files, map_nifti_file, nifti_stem
from medden.io.tiles import TILE_SUFFIXES
from medden.core.validation import check_int

__all__ = ["STD_SUFFIX", "denoise_nifti_file", "denoise_nifti_folder", "denoise_nifti_folder_with_uncertainty",
           "denoise_nifti_with_uncertainty", "denoise_tile_folder", "denoised_nifti_path", "reconstruct_h5_folder"]

#: suffix of the uncertainty map written next to a denoised NIfTI file
STD_SUFFIX = "_std"

logger = logging.getLogger(__name__)


def denoised_nifti_path(out_dir: Path, path: Path, suffix: str = "_denoised") -> Path:
    """Where the result for the NIfTI file ``path`` goes: ``out_dir/<name><suffix>.nii.gz``."""
    return out_dir / f"{nifti_stem(path)}{suffix}.nii.gz"


def denoise_nifti_file(path: str | os.PathLike, out_path: str | os.PathLike, network: torch.nn.Module,
                       inferer: Inferer | Callable, percentiles: tuple[float, float] = (0.0, 100.0),
                       overwrite: bool = False, smoothing: int = 0):
    """Denoise one NIfTI file into ``out_path`` with the input's affine (2D files as one slice).

    Returns:
        ``(image, denoised)``: ``(C, H, W, D)`` MetaTensors, the input (2D made one-slice) and
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


def denoise_nifti_folder(input_dir: str | os.PathLike, output_dir: str | os.PathLike, network: torch.nn.Module,
                         inferer: Inferer | Callable, percentiles: tuple[float, float] = (0.0, 100.0),
                         suffix: str = "_denoised", overwrite: bool = False, smoothing: int = 0) -> list[Path]:
    """Denoise every NIfTI file in ``input_dir`` into ``output_dir/<name><suffix>.nii.gz``.

    Each output keeps its input's affine (voxel-to-world geometry); inputs are only read, and
    every output is written atomically. 2D files are treated as one-slice volumes.

    Raises:
        ValueError: ``output_dir`` is or lies inside ``input_dir`` (originals are never
            touched), no NIfTI input, or an input with non-finite values (the message names
            the file).
        FileExistsError: an output exists and ``overwrite`` is False.
    """
    files = list_nifti_files(input_dir)
    out_dir = check_output_dir(input_dir, output_dir, create=True)
    written = []
    network.eval()
    for path in files:
        out_path = denoised_nifti_path(out_dir, path, suffix)
        denoise_nifti_file(path, out_path, network, inferer, percentiles, overwrite, smoothing)
        written.append(out_path)
    return written


def _std_path(out_path: str | os.PathLike) -> Path:
    """Where the uncertainty map of ``out_path`` goes: ``<stem>_std.nii.gz`` in the same folder."""
    out_path = Path(out_path)
    if not out_path.name.endswith(NIFTI_SUFFIXES):
        raise ValueError(f"out_path must end in .nii or .nii.gz, got {str(out_path)!r}.")
    return out_path.with_name(f"{nifti_stem(out_path)}{STD_SUFFIX}.nii.gz")


def denoise_nifti_with_uncertainty(path: str | os.PathLike, out_path: str | os.PathLike, vae: nn.Module,
                                   n_samples: int, statistic: str = "mean",
                                   percentiles: tuple[float, float] = (0.0, 100.0), overwrite: bool = False, *,
                                   chunk: int = DEFAULT_CHUNK, generator: torch.Generator | None = None,
                                   smoothing: int = 0) -> tuple[Path, Path]:
    """Write a NIfTI file's posterior mean/median to ``out_path`` and its std map next to it.

    2D and 3D files are accepted (3D slice by slice along the last axis, see
    :func:`~medden.inference.denoise_image_with_uncertainty` for the arguments). Both outputs
    are float32 in the input's intensity units, keep its shape and affine, and are written
    atomically; the input is only read. Existing outputs are refused before any sampling
    unless ``overwrite``.

    Returns:
        ``(denoised_path, std_path)``; ``std_path`` is ``<out_path stem>_std.nii.gz``.

    Raises:
        ValueError: an output path is the input or not a NIfTI name, bad arguments, or an
            image with non-finite values (the message starts with the file name).
        FileExistsError: an output exists and ``overwrite`` is False.
    """
    path, out_path, std_path = Path(path), Path(out_path), _std_path(out_path)
    if path.resolve() in (out_path.resolve(), std_path.resolve()):
        raise ValueError(f"out_path {str(out_path)!r} would overwrite the input {str(path)!r}; choose another path.")
    n_samples = check_int(n_samples, "n_samples", 1)
    check_statistic(statistic)
    resolve_vae(vae)
    map_nifti_file(path, [out_path, std_path], lambda volume: denoise_image_with_uncertainty(
        volume, vae, n_samples, statistic, percentiles, chunk=chunk, generator=generator, smoothing=smoothing),
        overwrite)
    return out_path, std_path


def denoise_nifti_folder_with_uncertainty(input_dir: str | os.PathLike, output_dir: str | os.PathLike,
                                          vae: nn.Module, n_samples: int, statistic: str = "mean",
                                          percentiles: tuple[float, float] = (0.0, 100.0),
                                          suffix: str = "_denoised", overwrite: bool = False, *,
                                          chunk: int = DEFAULT_CHUNK, generator: torch.Generator | None = None,
                                          smoothing: int = 0) -> list[tuple[Path, Path]]:
    """Run :func:`denoise_nifti_with_uncertainty` on every NIfTI file in ``input_dir``.

    Writes ``output_dir/<name><suffix>.nii.gz`` and ``output_dir/<name><suffix>_std.nii.gz``
    per input, as :func:`denoise_nifti_folder` does for one network pass; see
    :func:`~medden.inference.denoise_image_with_uncertainty` for the arguments. Files are
    processed in sorted order with one ``generator``.

    Returns:
        ``(denoised_path, std_path)`` per input file, in sorted input order.

    Raises:
        ValueError: refused as by :func:`denoise_nifti_folder`: ``output_dir`` in the input
            folder, a folder without NIfTI files, a non-finite image.
        FileExistsError: an output exists and ``overwrite`` is False.
    """
    files = list_nifti_files(input_dir)
    out_dir = check_output_dir(input_dir, output_dir, create=True)
    return [denoise_nifti_with_uncertainty(path, denoised_nifti_path(out_dir, path, suffix), vae, n_samples,
                                           statistic, percentiles, overwrite, chunk=chunk, generator=generator,
                                           smoothing=smoothing) for path in files]


@torch.no_grad()
def denoise_tile_folder(input_dir: str | os.PathLike, output_dir: str | os.PathLike, network: torch.nn.Module,
                        inferer: Inferer | Callable, suffix: str = "_denoised", overwrite: bool = False,
                        suffixes: Sequence[str] = TILE_SUFFIXES) -> list[Path]:
    """Denoise every RGB tile in ``input_dir`` into ``output_dir/<name><suffix>.png``.

    Tiles are read with :func:`medden.io.tiles.read_tile` (``(3, H, W)`` in [0, 1]), run
    through ``inferer(batch, network)`` and written as 8-bit PNG; inputs are only read.

    Raises:
        ValueError: ``output_dir`` in the input folder, no tile found, or a tile is not RGB.
    """
    from medden.io.tiles import read_tile, write_tile
    from medden.networks.zoo import network_device

    files = sorted(p for p in Path(input_dir).iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise ValueError(f"no {'/'.join(suffixes)} tiles in {str(input_dir)!r}.")
    out_dir = check_output_dir(input_dir, output_dir, create=True)
    network.eval()
    device = network_device(network)
    written = []
    for path in files:
        tile = torch.as_tensor(read_tile(path))[None].to(device)
        denoised = inferer(tile, network)[0].cpu().numpy()
        written.append(write_tile(out_dir / f"{path.stem}{suffix}.png", denoised, overwrite=overwrite))
    return written


def reconstruct_h5_folder(input_dir: str | os.PathLike, output_dir: str | os.PathLike, network: torch.nn.Module,
                          mask_name: str | None = None, mask_kwargs: dict | None = None, is_complex: bool = False,
                          overwrite: bool = False, batch_size: int = 8,
                          device: str | torch.device = "cpu") -> list[Path]:
    """Reconstruct every undersampled fastMRI-layout ``.h5`` in ``input_dir`` to NIfTI.

    Each output ``output_dir/<name>_recon.nii.gz`` is a ``(H, W, S)`` volume (identity affine:
    fastMRI files carry no geometry) in the file's own units, written atomically.

    Args:
        mask_name, mask_kwargs: the mask function the model was trained with, for density
            compensation of the network input (see :func:`~medden.inference.kspace.density_weights`).

    Raises:
        ValueError: ``output_dir`` in the input folder, no ``.h5`` file, or a file fails the
            fastMRI checks (:func:`medden.io.fastmri.read_undersampled`).
    """
    from medden.io.fastmri import read_undersampled
    from medden.io.nifti import write_nifti

    files = sorted(Path(input_dir).glob("*.h5"))
    if not files:
        raise ValueError(f"no .h5 files in {str(input_dir)!r}.")
    out_dir = check_output_dir(input_dir, output_dir, create=True)
    written = []
    for path in files:
        kspace, mask, scale = read_undersampled(path)
        recon = reconstruct_kspace(network, kspace, mask, density_weights(mask, mask_name, mask_kwargs), is_complex,
                                   batch_size, device)
        volume = np.moveaxis(recon[:, 0] * scale, 0, -1)[None]  # (1, H, W, S)
        out_path = out_dir / f"{path.name[:-3]}_recon.nii.gz"
        written.append(write_nifti(volume, out_path, overwrite=overwrite))
        logger.info("reconstructed %d slices of %s", recon.shape[0], path.name)
    return written
