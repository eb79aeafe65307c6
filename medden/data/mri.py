"""MRI slices for k-space (undersampling) experiments: MNI152 by default, IXI or fastMRI folders.

Every slice is padded (zeros) or cropped about its centre to one fixed size, because an
undersampling pattern is drawn over the whole field of view, not a patch of it. Real slices
are ``(1, H, W)`` float32 in [0, 1]; complex slices (fastMRI only: magnitude images have no
phase) are ``(1, H, W, 2)`` float32 with the magnitude's 99.5th percentile at 1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.transforms import ResizeWithPadOrCrop

from medden.data.slices import t1_slices

__all__ = ["KSPACE_SLICE_SIZE", "fit_field_of_view", "kspace_slices", "write_undersampled_slab"]

#: the Noise2Noise paper's IXI slices are 256 x 256
KSPACE_SLICE_SIZE = (256, 256)


def fit_field_of_view(image: np.ndarray, size: Sequence[int] = KSPACE_SLICE_SIZE) -> np.ndarray:
    """Zero-pad or crop ``(C, H, W)`` or complex ``(C, H, W, 2)`` about its centre to ``(C, *size)``."""
    image = np.asarray(image, np.float32)
    spatial = (*size, -1) if image.ndim == 4 else tuple(size)
    return np.asarray(ResizeWithPadOrCrop(spatial, mode="constant")(image), np.float32)


def _is_fastmri_folder(dataset_dir: Path) -> bool:
    return dataset_dir.is_dir() and next(dataset_dir.rglob("*.h5"), None) is not None


def kspace_slices(split: str, dataset_dir: str | os.PathLike | None = None, is_complex: bool = False,
                  size: Sequence[int] = KSPACE_SLICE_SIZE) -> list[np.ndarray]:
    """Slices of one split for k-space training or testing.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        dataset_dir: None for the MNI152 template's slabs (installed samples); a folder of
            fastMRI single-coil ``.h5`` files; or an IXI T1 folder (``IXI<nnn>-...-T1.nii.gz``).
        is_complex: complex slices (fastMRI only).
        size: the field of view every slice is padded or cropped to.

    Raises:
        ValueError: complex slices asked of magnitude data (MNI152, IXI).
    """
    if dataset_dir is not None and _is_fastmri_folder(Path(dataset_dir)):
        from medden.data.fastmri import FastMRISingleCoilFolder

        images = FastMRISingleCoilFolder(dataset_dir, crop=tuple(size)).images(
            split, output="complex" if is_complex else "magnitude")
    elif is_complex:
        raise ValueError(
            "is_complex=True needs data with phase: point dataset_dir at fastMRI single-coil .h5 files "
            "(the MNI152 template and IXI NIfTI volumes are magnitude images)."
        )
    else:
        images = t1_slices(split, dataset_dir)
    return [fit_field_of_view(image, size) for image in images]


def write_undersampled_slab(path: str | os.PathLike, mask: str = "radial_bernoulli", mask_kwargs: dict | None = None,
                            split: str = "test", seed: int = 0, size: Sequence[int] = KSPACE_SLICE_SIZE) -> Path:
    """Write the MNI152 ``split`` slab, undersampled, as a fastMRI-layout ``.h5`` (unless it exists).

    A ready-made input for the k-space bundle's inference config: every slice (padded to
    ``size``) is sampled with one pattern drawn from ``mask`` (the way a 2D acquisition
    repeats its pattern per slice); the file holds the raw measured k-space, the mask (2-D
    for non-Cartesian patterns) and the fully sampled magnitude as ``reconstruction_esc``.

    Returns:
        ``path``.
    """
    import torch

    from medden.io.fastmri import write_singlecoil_h5
    from medden.transforms.kspace import RandKspaceUndersample

    path = Path(path)
    if path.exists():
        return path
    slices = [fit_field_of_view(image, size) for image in t1_slices(split)]
    undersample = RandKspaceUndersample(mask, mask_kwargs, output="real").set_random_state(seed)
    undersample.randomize(tuple(size))
    kspace = np.stack([torch.view_as_complex(torch.as_tensor(undersample(s, randomize=False).kspace[0])).numpy()
                       for s in slices])
    pattern = np.broadcast_to(undersample.pattern.mask, tuple(size))
    sampled_columns = pattern.any(axis=0)
    column_mask = pattern.shape[0] > 1 and bool((pattern == sampled_columns[None]).all())
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_singlecoil_h5(path, kspace, sampled_columns if column_mask else pattern,
                               reconstruction=np.concatenate(slices))
