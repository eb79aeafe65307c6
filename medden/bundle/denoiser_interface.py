"""One callable interface for every denoiser, learned or classical.

A denoiser is a callable object with a ``name``: ``denoiser(image) -> denoised``, where
``image`` is a float numpy array in the package's layout, ``(C, H, W)`` for one image or
``(C, H, W, D)`` for a volume (C = 1 grey or 3 RGB, slices along the last axis), with a grey
``(H, W)`` plane accepted; the result is a float32 array of the same shape and the input is
never modified. A 3-D array whose first axis is not 1 or 3 is refused, never guessed: it is
likely an ``(H, W, D)`` volume missing its channel axis
(:func:`medden.core.validation.check_image_layout`).

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
from medden.core.validation import check_image_layout

__all__ = ["BundleDenoiser", "SliceBySliceDenoiser", "make_denoiser"]


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
        """Denoise an ``(H, W)``, ``(C, H, W)`` or ``(C, H, W, D)`` float image; returns a float32
        array of its shape. A volume goes through the bundle's volumetric path where it has one
        (a 2.5D bundle sees each slice with its neighbours along the last axis).

        Raises:
            ValueError: another or an ambiguous layout, non-finite values, or a channel count an RGB
                bundle does not take.
        """
        image = np.asarray(image, np.float32)
        if check_image_layout(image.shape, "image") == "plane":
            return self.bundle.denoise(image[None])[0]
        return self.bundle.denoise(image)


class SliceBySliceDenoiser:
    """A 2D denoiser of ``(C, H, W)`` images under the package's layout: ``(H, W)`` planes and
    ``(C, H, W, D)`` volumes, the latter one slice at a time along the last axis.

    Args:
        denoiser: callable ``(C, H, W) -> (C, H, W)`` with a ``name`` (a classical anchor).

    Attributes:
        denoiser: the wrapped 2D denoiser; its other attributes read through.
    """

    def __init__(self, denoiser: Any) -> None:
        self.denoiser = denoiser
        self.name = denoiser.name

    def __getattr__(self, item: str) -> Any:
        if item == "denoiser":  # not set yet (copy, pickle): never recurse
            raise AttributeError(item)
        return getattr(self.denoiser, item)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Denoise an ``(H, W)``, ``(C, H, W)`` or ``(C, H, W, D)`` float image; float32 of its shape."""
        layout = check_image_layout(np.shape(image), "image")
        if layout == "plane":
            return self.denoiser(np.asarray(image)[None])[0]
        if layout == "image":
            return self.denoiser(image)
        image = np.asarray(image)
        return np.stack([self.denoiser(image[..., k]) for k in range(image.shape[-1])], axis=-1)

    def __repr__(self) -> str:
        return f"SliceBySliceDenoiser({self.denoiser!r})"


def make_denoiser(name: str, **kwargs: Any):
    """A denoiser by name: a classical anchor (``"nlm"``, ``"bm3d"``, ``"tv"``,
    ``"rician_nlm"``; ``kwargs`` go to its class; volumes slice by slice) or a bundle folder or
    shipped bundle name (``kwargs`` go to :class:`BundleDenoiser`). Either takes the layouts of
    the module docstring and refuses an ambiguous 3-D array.

    Raises:
        FileNotFoundError: neither an anchor nor a bundle (the message lists both).
    """
    if name in CLASSICAL_DENOISERS:
        return SliceBySliceDenoiser(classical_denoiser(name, **kwargs))
    try:
        return BundleDenoiser(name, **kwargs)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err} Classical denoisers: {', '.join(sorted(CLASSICAL_DENOISERS))}.") from err
