"""The bundles the web viewer offers, each loaded at most once, and denoising one volume with one.

A bundle is offered when it can denoise an image the way ``medden denoise`` does: its
``configs/inference.json`` defines the ``network`` and the ``inferer`` that
:func:`medden.bundle.load_bundle` loads and :meth:`medden.bundle.Bundle.denoise` runs. The shipped
``n2n_kspace_mri`` has no inferer (it reconstructs undersampled k-space), so it is left out.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medden.apps.serve.errors import UploadError
from medden.bundle import (DEFAULT_BUNDLE, Bundle, ChannelError, load_bundle, resolve_bundle, shipped_bundles,
                           shipped_bundles_dir)
from medden.bundle.layout import INFERENCE_CONFIG

__all__ = ["BundleCatalogue", "can_denoise_images", "denoise_volume"]


def can_denoise_images(bundle_dir: str | os.PathLike) -> bool:
    """Whether the bundle folder's ``configs/inference.json`` defines an ``inferer``.

    Example:
        >>> from medden.bundle import shipped_bundles_dir
        >>> can_denoise_images(shipped_bundles_dir() / "general_denoiser")
        True
    """
    config = json.loads((Path(bundle_dir) / INFERENCE_CONFIG).read_text())
    return isinstance(config, dict) and "inferer" in config


class BundleCatalogue:
    """The bundles one server offers, by name, each loaded on first use and kept.

    Args:
        bundles: shipped bundle names or bundle folders (a folder is listed under its folder
            name); default: every shipped bundle that :func:`can_denoise_images`.
        device: where the networks run; default: each bundle's own choice.
        backend: what runs each network (see :func:`medden.bundle.load_bundle`); ``auto``
            as ``medden denoise``.
        trust: offer bundle folders medden does not ship (their configs run code, see
            :mod:`medden.bundle.resolve`); without it only shipped bundles are offered.

    Raises:
        FileNotFoundError: an entry is neither a shipped name nor a bundle folder.
        UntrustedBundleError: a bundle folder medden does not ship, without ``trust``
            (checked before any of its configs is read).
        ValueError: an entry cannot denoise images, two entries share a name, or there is
            no bundle at all (an install without the source checkout's ``bundles/``).
    """

    def __init__(self, bundles: Sequence[str | os.PathLike] | None = None, device: str | None = None,
                 backend: str = "auto", trust: bool = False) -> None:
        if bundles is None:
            bundles = [name for name in shipped_bundles() if can_denoise_images(shipped_bundles_dir() / name)]
        self._sources: dict[str, str | os.PathLike] = {}
        for entry in bundles:
            folder = resolve_bundle(entry, trust)
            name = folder.name
            if not can_denoise_images(folder):
                raise ValueError(f"bundle {name!r} cannot denoise images: its {INFERENCE_CONFIG.as_posix()} defines no "
                                 "'inferer' (e.g. a k-space reconstruction bundle); leave it out of --bundle.")
            if name in self._sources:
                raise ValueError(f"two bundles are called {name!r}; give each bundle folder its own name.")
            self._sources[name] = entry
        if not self._sources:
            raise ValueError(f"there is no bundle to serve: none was given and {str(shipped_bundles_dir())!r} holds "
                             "none that denoises images; pass bundle folders with --bundle.")
        self.default = DEFAULT_BUNDLE if DEFAULT_BUNDLE in self._sources else next(iter(self._sources))
        self._device = device
        self._backend = backend
        self._trust = trust
        self._loaded: dict[str, Bundle] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """The offered names, in the order given (shipped ones sorted)."""
        return list(self._sources)

    def check(self, name: str) -> None:
        """Raise ``UploadError`` 400 (listing the offered names) unless ``name`` is offered."""
        if name not in self._sources:
            raise UploadError(400, f"unknown bundle {name[:80]!r}; choose one of: {', '.join(self.names)}.")

    def get(self, name: str) -> Bundle:
        """The loaded bundle ``name``, loading it on the first call only.

        Raises:
            UploadError: 400, ``name`` is not offered (the message lists the names).
        """
        self.check(name)
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = load_bundle(self._sources[name], self._device, backend=self._backend,
                                                   trust=self._trust)
            return self._loaded[name]


def denoise_volume(bundle: Bundle, volume: np.ndarray,
                   progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Denoise a ``(C, H, W, D)`` float32 volume in its own units, as ``medden denoise`` does
    (:meth:`medden.bundle.Bundle.denoise`: a grey bundle takes the channels of a colour image
    as slices of one grey volume).

    Args:
        bundle: the loaded bundle.
        volume: float32 ``(C, H, W, D)``.
        progress: called as ``progress(slices_done, slices)`` from this thread while the
            network runs (:meth:`~medden.bundle.Bundle.denoise`); None: nothing is reported.

    Returns:
        float32, the shape of ``volume``.

    Raises:
        UploadError: 422, an RGB bundle and an image with another number of channels.
        ValueError: ``volume`` holds NaN or inf.
    """
    try:
        return bundle.denoise(volume, progress=progress)
    except ChannelError as err:
        raise UploadError(422, f"bundle {bundle.name!r} denoises {err.expected}-channel (RGB) images, but this image "
                               f"has {err.got} channel(s); pick a grey bundle such as {DEFAULT_BUNDLE}.") from None

