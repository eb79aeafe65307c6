"""Which folder a bundle name means: a folder as given, or a bundle shipped in the checkout.

Example:
    >>> from medden.bundle.resolve import DEFAULT_BUNDLE, resolve_bundle
    >>> resolve_bundle(DEFAULT_BUNDLE).name
    'general_denoiser'
"""

from __future__ import annotations

import os
from pathlib import Path

from medden.bundle.layout import INFERENCE_CONFIG

__all__ = ["DEFAULT_BUNDLE", "resolve_bundle", "shipped_bundles", "shipped_bundles_dir"]

#: the bundle ``medden denoise``, ``medden serve`` and ``medden demo`` use unless told otherwise
DEFAULT_BUNDLE = "general_denoiser"


def shipped_bundles_dir() -> Path:
    """The ``bundles/`` folder of the source checkout medden runs from (``<repo>/bundles``).

    It exists only for an install from the repository (``pip install -e .``); callers check.
    """
    return Path(__file__).resolve().parents[2] / "bundles"


def shipped_bundles() -> list[str]:
    """Names of the bundles in :func:`shipped_bundles_dir` (folders with ``configs/inference.json``), sorted."""
    folder = shipped_bundles_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / INFERENCE_CONFIG).is_file())


def resolve_bundle(name_or_dir: str | os.PathLike) -> Path:
    """The folder of a bundle given as a folder or as the name of a shipped bundle.

    An existing path is taken as the bundle folder; otherwise a plain name (no ``/``) is
    looked up in :func:`shipped_bundles_dir`.

    Raises:
        FileNotFoundError: an existing folder without ``configs/inference.json``, a missing
            folder, or an unknown name (the message lists the shipped names).
    """
    path = Path(name_or_dir)
    if path.exists():
        if not (path / INFERENCE_CONFIG).is_file():
            raise FileNotFoundError(
                f"{str(path)!r} is not a medden bundle: {str(path / INFERENCE_CONFIG)!r} does not exist.")
        return path
    name = os.fspath(name_or_dir)
    if path.name != name or name in ("", ".", ".."):
        raise FileNotFoundError(f"bundle folder {name!r} does not exist.")
    if name in shipped_bundles():
        return shipped_bundles_dir() / name
    names = ", ".join(shipped_bundles()) or f"none, there is no bundle in {str(shipped_bundles_dir())!r}"
    raise FileNotFoundError(
        f"unknown bundle {name!r}: it is neither a folder nor a shipped bundle (shipped: {names}); pass a "
        "bundle folder or one of the shipped names.")
