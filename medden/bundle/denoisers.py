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
    >>> from medden.bundle.denoisers import make_denoiser
    >>> make_denoiser("tv").name
    'TV'
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from medden.anchors import CLASSICAL_DENOISERS, classical_denoiser
from medden.core.validation import check_finite

__all__ = ["BundleDenoiser", "make_denoiser", "runs_on_volumes"]


class BundleDenoiser:
    """A trained bundle as a denoiser of one 2D image.

    A grey bundle (``image_channels`` 1) denoises each channel of an RGB image as its own
    grey image; an RGB bundle takes RGB images only.

    Args:
        bundle: a bundle folder or the name of a shipped bundle (see
            :func:`medden.apps.batch_denoise.resolve_bundle`).
        device: ``"cpu"``, ``"cuda"``, ...; default: the bundle's own choice.
        name: the label in tables; default: the bundle's folder name.
        overrides: config ids and values, e.g. ``{"model_path": "runs/x/model.pt"}``.
        backend: what runs the network (see :func:`medden.apps.batch_denoise.load_bundle`).

    Attributes:
        loaded: the :class:`~medden.apps.batch_denoise.LoadedBundle` (network, inferer, percentiles).
    """

    def __init__(self, bundle: str | os.PathLike, device: str | None = None, name: str | None = None,
                 overrides: dict[str, Any] | None = None, backend: str = "torch") -> None:
        from medden.apps.batch_denoise import load_bundle

        self.loaded = load_bundle(bundle, device, overrides=overrides, backend=backend)
        self.name = name or self.loaded.name.split()[0]

    @property
    def network(self):
        return self.loaded.network

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, np.float32)
        if image.ndim != 3:
            raise ValueError(f"{self.name} denoises one (C, H, W) image, got shape {image.shape}.")
        check_finite(image, "image")
        channels = self.loaded.image_channels
        if channels == 1:
            if runs_on_volumes(self.loaded.inferer):  # every channel as one slice of a grey volume
                return self._run(image.transpose(1, 2, 0)[None])[0].transpose(2, 0, 1)
            return np.concatenate([self._run(image[c:c + 1]) for c in range(image.shape[0])])
        if image.shape[0] != channels:
            raise ValueError(f"{self.name} takes {channels}-channel images, got {image.shape[0]} channel(s).")
        return self._run(image[..., None])[..., 0] if runs_on_volumes(self.loaded.inferer) else self._run(image)

    def _run(self, image: np.ndarray) -> np.ndarray:
        from medden.inference import denoise_image

        out = denoise_image(image, self.loaded.network, self.loaded.inferer, self.loaded.percentiles,
                            smoothing=self.loaded.smoothing)
        return np.ascontiguousarray(np.asarray(out, np.float32))


def runs_on_volumes(inferer) -> bool:
    """Whether a bundle's inferer (or one it wraps) is a ``SliceInferer``, i.e. takes
    ``(B, C, H, W, D)`` volumes; else it takes ``(B, C, H, W)`` images."""
    from monai.inferers import SliceInferer

    while inferer is not None:
        if isinstance(inferer, SliceInferer):
            return True
        inferer = getattr(inferer, "base_inferer", None)
    return False


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
