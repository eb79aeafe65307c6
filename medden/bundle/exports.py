"""Which deployment files a bundle has, and which backend runs it (no torch import).

``medden export`` (:mod:`medden.apps.export`) writes a bundle's network next to its
``models/model.pt`` in other formats; :mod:`medden.bundle.backends` loads them. This module
holds what both, and the command line, need without importing torch: the backend names, the
export record (``models/export.json``), which exports are current and the choice behind
``--backend auto``. The file each backend reads is in :data:`medden.bundle.layout.EXPORTED_FILES`.

=============  ==========================  ===============================================
backend        file under ``models/``      runs on
=============  ==========================  ===============================================
torch          ``model.pt`` (weights)      PyTorch (the bundle's ``network``)
torchscript    ``model.ts``                ``torch.jit.load``; no Python network code needed
onnx           ``model.onnx``              onnxruntime, float32
onnx-int8      ``model_int8.onnx``         onnxruntime, int8 weights and activations (QDQ)
=============  ==========================  ===============================================
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from medden.bundle.layout import EXPORT_RECORD, EXPORTED_FILES, WEIGHTS

__all__ = ["AUTO_PREFERENCE", "BACKENDS", "CALIBRATION_NOISES", "EXPORT_FORMATS", "INT8_MAX_PSNR_LOSS_DB", "auto_choice",
           "check_backend", "checked_export", "choose_backend", "current_exports", "is_current", "model_sha256",
           "read_export_record"]

#: every backend, in the order ``medden denoise --backend`` lists them
BACKENDS = ("torch", "torchscript", "onnx", "onnx-int8")
#: what ``medden export`` writes (every backend but torch)
EXPORT_FORMATS = BACKENDS[1:]
#: default noises of the int8 calibration and validation windows (names of the benchmark's
#: noises): the general-purpose ones; Bernoulli pixel dropout widens the activation ranges and
#: costs the Gaussian case about 0.8 dB in int8
CALIBRATION_NOISES = ("gaussian", "poisson")
#: ``auto`` takes the first of these that the bundle has a current export of, fastest first
#: (the order measured in docs/results/deployment.md); int8 only if its export check lost less
#: than :data:`INT8_MAX_PSNR_LOSS_DB` against the float model
AUTO_PREFERENCE = ("onnx-int8", "onnx", "torchscript", "torch")
#: an int8 model losing more PSNR than this (dB, against the float ONNX model) is not chosen by ``auto``
INT8_MAX_PSNR_LOSS_DB = 0.1


def check_backend(backend: str, auto: bool = False) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS` (or ``"auto"`` when ``auto``).

    Raises:
        ValueError: any other value (the message lists the backends).
    """
    choices = ("auto", *BACKENDS) if auto else BACKENDS
    if backend not in choices:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(choices)}.")
    return backend


def model_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file (a bundle's ``model.pt``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_export_record(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    """A bundle's ``models/export.json`` (what ``medden export`` wrote and measured), or ``{}``."""
    path = Path(bundle_dir) / EXPORT_RECORD
    return json.loads(path.read_text()) if path.is_file() else {}


def current_exports(bundle_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The record entries (``models/export.json``) of the exports that exist and were made
    from the bundle's current ``models/model.pt``, by backend; ``{}`` if there are none.
    Reads the record and hashes the weights once."""
    root = Path(bundle_dir)
    record, weights = read_export_record(root), root / WEIGHTS
    if not record or not weights.is_file() or record.get("model_sha256") != model_sha256(weights):
        return {}
    return {b: record[b] for b in EXPORT_FORMATS if b in record and (root / EXPORTED_FILES[b]).is_file()}


def checked_export(bundle_dir: str | os.PathLike, backend: str, current: dict[str, dict[str, Any]]) -> Path:
    """The file of the exported ``backend`` (not ``"torch"``) in ``bundle_dir``, once it is known
    to exist and to be ``current`` (:func:`current_exports` of the same bundle).

    Raises:
        FileNotFoundError: the bundle has no such export (the message gives the command that writes it).
        ValueError: the export was made from other weights than ``models/model.pt`` (stale), or
            ``models/export.json`` does not list it.
    """
    path = Path(bundle_dir) / EXPORTED_FILES[backend]
    if not path.is_file():
        raise FileNotFoundError(f"bundle {str(bundle_dir)!r} has no {backend} export ({str(path)!r} does not exist); "
                                f"write it with: medden export {bundle_dir} --formats {backend}")
    if backend not in current:
        raise ValueError(f"the {backend} export {str(path)!r} was not made from the bundle's current models/model.pt "
                         f"(see models/export.json); export it again: medden export {bundle_dir} --formats {backend}")
    return path


def is_current(bundle_dir: str | os.PathLike, backend: str) -> bool:
    """Whether ``backend``'s export exists and was made from the bundle's current ``models/model.pt``.

    Raises:
        ValueError: ``backend`` is ``"torch"`` (it has no exported file) or unknown.
    """
    if check_backend(backend) == "torch":
        raise ValueError("the torch backend runs the bundle's own network; it has no exported file.")
    return backend in current_exports(bundle_dir)


def auto_choice(current: dict[str, dict[str, Any]]) -> str:
    """The first of :data:`AUTO_PREFERENCE` among ``current`` exports (:func:`current_exports`),
    ``onnx-int8`` only if its recorded PSNR change is at least ``-INT8_MAX_PSNR_LOSS_DB``;
    ``torch`` when none qualifies."""
    return next(b for b in AUTO_PREFERENCE if b == "torch" or (
        b in current and current[b].get("psnr_change_db", 0.0) >= -INT8_MAX_PSNR_LOSS_DB))


def choose_backend(bundle_dir: str | os.PathLike, backend: str = "auto") -> str:
    """Resolve ``"auto"`` with :func:`auto_choice` for this bundle's current exports; pass others through.

    Raises:
        ValueError: ``backend`` is neither ``"auto"`` nor one of :data:`BACKENDS`.
    """
    return auto_choice(current_exports(bundle_dir)) if check_backend(backend, auto=True) == "auto" else backend
