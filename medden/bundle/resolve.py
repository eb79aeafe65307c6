"""Which folder a bundle name means, and whether medden may load it.

A bundle is code: loading one evaluates its ``configs/inference.json``, whose ``$`` expressions
and ``_target_`` entries run Python (as MONAI bundles do). So medden loads two kinds only:

* **shipped** bundles, named by their name (``general_denoiser``) or by a path inside
  :func:`shipped_bundles_dir`: they come with medden's own code;
* **trusted** bundle folders, named as a path (``./my_bundle``, ``/data/bundles/x``) *and*
  trusted by the caller (``trust=True``; ``--trust-bundle`` on the command line).

A plain name is looked up among the shipped bundles only, never in the current folder: a
folder that happens to be called ``general_denoiser`` where medden is started is not used.
Every other folder is refused with :class:`UntrustedBundleError` before any of its configs is
parsed.

Example:
    >>> from medden.bundle.resolve import DEFAULT_BUNDLE, resolve_bundle
    >>> resolve_bundle(DEFAULT_BUNDLE).name
    'general_denoiser_v3'
"""

from __future__ import annotations

import os
from pathlib import Path

from medden.bundle.layout import INFERENCE_CONFIG

__all__ = ["DEFAULT_BUNDLE", "UntrustedBundleError", "is_shipped", "resolve_bundle", "shipped_bundles",
           "shipped_bundles_dir"]

#: the bundle ``medden denoise``, ``medden serve`` and ``medden demo`` use unless told otherwise
DEFAULT_BUNDLE = "general_denoiser_v3"


class UntrustedBundleError(PermissionError):
    """A bundle folder that medden does not ship and that the caller did not say it trusts."""

    def __init__(self, folder: Path) -> None:
        super().__init__(
            f"refusing to load the bundle folder {str(folder)!r}: it is not a bundle medden ships, and loading a "
            "bundle runs the Python code in its configs (MONAI config expressions and _target_ entries), with "
            "your permissions. Load it only if you trust whoever wrote it: pass --trust-bundle (medden denoise, "
            "export, demo and serve) or trust=True (Python).")
        self.folder = folder


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


def is_shipped(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` (links and ``..`` resolved) lies inside :func:`shipped_bundles_dir`."""
    return Path(folder).resolve().is_relative_to(shipped_bundles_dir())


def _is_name(text: str) -> bool:
    """A bare bundle name, as opposed to a path: no separator and no leading dot."""
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return bool(text) and not text.startswith(".") and not any(sep in text for sep in separators)


def resolve_bundle(name_or_dir: str | os.PathLike, trust: bool = False) -> Path:
    """The folder of a shipped bundle (by name or path) or of a trusted bundle folder (by path).

    Args:
        name_or_dir: a shipped bundle's name (``"general_denoiser"``), or a bundle folder
            written as a path (``"./x"``, ``"/data/x"``, ``"bundles/x"``).
        trust: load a folder medden does not ship. Its configs run code: pass True only for
            bundles whose author you trust.

    Returns:
        The bundle folder, absolute.

    Raises:
        FileNotFoundError: an unknown name (the message lists the shipped ones, and says how
            to name a folder), a missing folder, or a folder without ``configs/inference.json``.
        UntrustedBundleError: a folder medden does not ship, without ``trust``.
    """
    text = os.fspath(name_or_dir)
    if _is_name(text):
        if text in shipped_bundles():
            return shipped_bundles_dir() / text
        names = ", ".join(shipped_bundles()) or f"none, there is no bundle in {str(shipped_bundles_dir())!r}"
        here = (f" A folder {text!r} exists here, but a plain name only means a shipped bundle; to load that folder, "
                f"name it as a path (./{text}) and trust it (--trust-bundle).") if Path(text).is_dir() else ""
        raise FileNotFoundError(
            f"unknown bundle {text!r}: it is not a shipped bundle (shipped: {names}).{here} A bundle folder is named "
            "as a path, e.g. ./my_bundle.")
    path = Path(text)
    if not path.is_dir():
        raise FileNotFoundError(f"bundle folder {text!r} does not exist.")
    if not (path / INFERENCE_CONFIG).is_file():
        raise FileNotFoundError(f"{text!r} is not a medden bundle: {str(path / INFERENCE_CONFIG)!r} does not exist.")
    if not (trust or is_shipped(path)):
        raise UntrustedBundleError(path)
    return path.absolute()  # stays a path when passed on ("./x" would become the name "x")
