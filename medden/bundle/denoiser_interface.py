"""One callable interface for every denoiser, learned or classical.

A denoiser is a callable object with a ``name``: ``denoiser(image) -> denoised``, where
``image`` is a ``(C, H, W)`` float numpy array (C = 1 grey or 3 RGB, nominally in [0, 1])
and the result is a float32 array of the same shape; the input is never modified.

* :class:`BundleDenoiser` runs a trained bundle exactly as ``medden denoise`` does (its
  network, inferer, refinement and intensity percentiles).
* The classical anchors (NLM, BM3D, total variation, dipy's Rician NLM) are in
  :mod:`medden.anchors`.
* :func:`make_denoiser` builds either kind by name.

Example:
    >>> from medden.bundle.denoiser_interface import make_denoiser
    >>> make_denoiser("tv").name
    'TV'
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from medden.anchors import CLASSICAL_DENOISERS, classical_denoiser

__all__ = ["BundleDenoiser", "make_denoiser"]


class BundleDenoiser:
    """A trained bundle as a denoiser of one 2D image (:meth:`medden.bundle.bundle.Bundle.denoise`).

    A grey bundle (``image_channels`` 1) denoises the channels of an RGB image as slices of
    one grey image; an RGB bundle takes RGB images only.

    Args:
        bundle: a bundle folder or the name of a shipped bundle (see
            :func:`medden.bundle.resolve.resolve_bundle`).
        device: ``"cpu"``, ``"cuda"``, ...; default: the bundle's own choice.
        name: the label in tables; default: the bundle's folder name.
        overrides: config ids and values, e.g. ``{"model_path": "runs/x/model.pt"}``.
        backend: what runs the network (see :func:`medden.bundle.loading.load_bundle`).
        trust: load a bundle folder medden does not ship (its configs run code).

    Attributes:
        bundle: the loaded :class:`~medden.bundle.bundle.Bundle`.
    """

    def __init__(self, bundle: str | os.PathLike, device: str | None = None, name: str | None = None,
                 overrides: dict[str, Any] | None = None, backend: str = "torch", trust: bool = False) -> None:
        from medden.bundle.loading import load_bundle

        self.bundle = load_bundle(bundle, device, overrides=overrides, backend=backend, trust=trust)
        self.name = name or self.bundle.root.resolve().name

    @property
    def network(self):
        """The bundle's network (or its exported stand-in)."""
        return self.bundle.network

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Denoise a ``(C, H, W)`` float image; returns a float32 array of its shape.

        Raises:
            ValueError: not ``(C, H, W)``, non-finite values, or a channel count an RGB bundle does not take.
        """
        image = np.asarray(image, np.float32)
        if image.ndim != 3:
            raise ValueError(f"{self.name} denoises one (C, H, W) image, got shape {image.shape}.")
        return self.bundle.denoise(image)


def make_denoiser(name: str, **kwargs: Any):
    """A denoiser by name: a classical anchor (``"nlm"``, ``"bm3d"``, ``"tv"``,
    ``"rician_nlm"``; ``kwargs`` go to its class) or a bundle folder or shipped bundle name
    (``kwargs`` go to :class:`BundleDenoiser`).

    Raises:
        FileNotFoundError: neither an anchor nor a bundle (the message lists both).
    """
    if name in CLASSICAL_DENOISERS:
        return classical_denoiser(name, **kwargs)
    try:
        return BundleDenoiser(name, **kwargs)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err} Classical denoisers: {', '.join(sorted(CLASSICAL_DENOISERS))}.") from err
