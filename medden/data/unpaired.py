"""Disjoint clean and noisy image sets for unpaired denoising (a prior from clean images of
other subjects, a denoiser trained on noisy images).

Roles:

=========  =====================================================================
``clean``  clean images for the prior (stage 1), never shown noisy
``noisy``  the images the denoiser trains on (stage 2); noise is added to them and
           their clean versions are never read in training
``val``    clean images that get synthetic noise to monitor training
``test``   held-out clean images for benchmarks
=========  =====================================================================

By default every role comes from the MNI152 T1 template shipped with nilearn. One template
allows no subject split, so the training slab is cut into blocks of consecutive axial slices
that alternate between ``clean`` and ``noisy`` with slices left out between blocks: the two
sets share no slice and no slice's neighbour, and both cover the whole training slab's
anatomy, as clean scans of other patients would. ``val`` and ``test`` are the template's
validation and test slabs.

With ``dataset_dir``, the folder holds ``clean/`` and ``noisy/`` sub-folders of NIfTI
volumes (different subjects, e.g. high-dose and low-dose scans): ``clean`` and ``val`` are
the train and validation splits of ``clean/`` and ``noisy`` the train split of ``noisy/``
(see :func:`~medden.data.slices.nifti_slices`); ``test`` is the test split of ``clean/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medden.data.slices import mni_slices, nifti_slices
from medden.core.validation import check_int

__all__ = ["UNPAIRED_ROLES", "alternating_blocks", "tile_patches", "unpaired_slices"]

UNPAIRED_ROLES = ("clean", "noisy", "val", "test")


def alternating_blocks(n: int, block: int = 8, gap: int = 2) -> tuple[list[int], list[int]]:
    """Split ``range(n)`` into two interleaved sets of ``block`` consecutive indices, ``gap``
    indices dropped between neighbouring blocks, so no index of one set is within ``gap`` of
    the other.

    Example:
        >>> alternating_blocks(10, block=2, gap=1)
        ([0, 1, 6, 7], [3, 4, 9])
    """
    n, block = check_int(n, "n"), check_int(block, "block")
    gap = check_int(gap, "gap", minimum=0)
    first: list[int] = []
    second: list[int] = []
    start, which = 0, 0
    while start < n:
        (first if which == 0 else second).extend(range(start, min(start + block, n)))
        start, which = start + block + gap, 1 - which
    if not first or not second:
        raise ValueError(f"{n} slices give no second block (block={block}, gap={gap}); lower block.")
    return first, second


def unpaired_slices(role: str, dataset_dir: str | os.PathLike | None = None, block: int = 8,
                    gap: int = 2) -> list[np.ndarray]:
    """The ``(1, H, W)`` float32 slices in [0, 1] of one role (see the module docstring).

    Args:
        role: ``"clean"``, ``"noisy"``, ``"val"`` or ``"test"``.
        dataset_dir: None for the MNI152 default, else a folder with ``clean/`` and ``noisy/``.
        block, gap: the interleaving of the MNI152 training slab (:func:`alternating_blocks`).

    Raises:
        ValueError: unknown role, or a ``dataset_dir`` without ``clean/`` or ``noisy/``.
    """
    if role not in UNPAIRED_ROLES:
        raise ValueError(f"role must be one of {UNPAIRED_ROLES}, got {role!r}.")
    if dataset_dir is None:
        if role in ("val", "test"):
            return mni_slices(role)
        train = mni_slices("train")
        clean, noisy = alternating_blocks(len(train), block, gap)
        return [train[i] for i in (clean if role == "clean" else noisy)]
    root = Path(dataset_dir)
    for sub in ("clean", "noisy"):
        if not (root / sub).is_dir():
            raise ValueError(f"dataset_dir {str(root)!r} needs a {sub}/ folder of NIfTI volumes (clean images for "
                             "the prior, noisy images of other subjects for the denoiser).")
    if role == "noisy":
        return nifti_slices(root / "noisy", "train")
    return nifti_slices(root / "clean", {"clean": "train", "val": "val", "test": "test"}[role])


def tile_patches(images: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """Non-overlapping ``size`` tiles of each ``(C, H, W)`` image, from the top-left corner,
    partial tiles at the far edges dropped: a fixed validation set of patches for a model
    that needs a patch size (a flow's multiple of ``2 ** levels``).

    Example:
        >>> [t.shape for t in tile_patches([np.zeros((1, 5, 9))], (2, 4))]
        [(1, 2, 4), (1, 2, 4), (1, 2, 4), (1, 2, 4)]
    """
    height, width = (check_int(s, "size") for s in size)
    tiles = [image[:, r:r + height, c:c + width] for image in images
             for r in range(0, image.shape[1] - height + 1, height)
             for c in range(0, image.shape[2] - width + 1, width)]
    if not tiles:
        raise ValueError(f"no image is at least {height} x {width}; lower the patch size.")
    return [np.ascontiguousarray(tile) for tile in tiles]
