"""Which deployment files a bundle has, and which backend runs it (no torch import).

``medden export`` (:mod:`medden.export`) writes a bundle's network next to its
``models/model.pt`` in other formats; :mod:`medden.inference.backends` loads them. This module
holds what both, and the command line, need without importing torch: the backend names, the
file each one reads, the export record (``models/export.json``) and the choice behind
``--backend auto``.

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

__all__ = ["AUTO_PREFERENCE", "BACKENDS", "CALIBRATION_NOISES", "EXPORTED_FILES", "EXPORT_FORMATS", "EXPORT_RECORD", "INT8_MAX_PSNR_LOSS_DB", "check_backend",
           "choose_backend", "exported_path", "is_current", "model_sha256", "read_export_record"]

#: every backend, in the order ``medden denoise --backend`` lists them
BACKENDS = ("torch", "torchscript", "onnx", "onnx-int8")
#: the file each exported backend reads, relative to the bundle folder
EXPORTED_FILES = {
    "torchscript": Path("models") / "model.ts",
    "onnx": Path("models") / "model.onnx",
    "onnx-int8": Path("models") / "model_int8.onnx",
}
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
#: what ``medden export`` measured, with the SHA-256 of the ``model.pt`` the exports came from
EXPORT_RECORD = Path("models") / "export.json"


def check_backend(backend: str) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`.

    Raises:
        ValueError: any other value (the message lists the backends).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    return backend


def exported_path(bundle_dir: str | os.PathLike, backend: str) -> Path:
    """The file of an exported ``backend`` (not ``"torch"``) in ``bundle_dir``; it may not exist yet."""
    if check_backend(backend) == "torch":
        raise ValueError("the torch backend runs the bundle's own network; it has no exported file.")
    return Path(bundle_dir) / EXPORTED_FILES[backend]


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


def is_current(bundle_dir: str | os.PathLike, backend: str) -> bool:
    """Whether ``backend``'s export exists and was made from the bundle's current ``models/model.pt``."""
    root = Path(bundle_dir)
    record = read_export_record(root)
    weights = root / "models" / "model.pt"
    return (exported_path(root, backend).is_file() and backend in record and weights.is_file()
            and record.get("model_sha256") == model_sha256(weights))


def choose_backend(bundle_dir: str | os.PathLike, backend: str = "auto") -> str:
    """Resolve ``"auto"`` to the first of :data:`AUTO_PREFERENCE` usable for this bundle; pass others through.

    Usable: ``torch`` always; an exported backend when its export is current
    (:func:`is_current`); ``onnx-int8`` also only when ``models/export.json`` records a PSNR
    change of at least ``-INT8_MAX_PSNR_LOSS_DB`` against the float model.

    Raises:
        ValueError: ``backend`` is neither ``"auto"`` nor one of :data:`BACKENDS`.
    """
    if backend != "auto":
        return check_backend(backend)
    record = read_export_record(bundle_dir)
    for candidate in AUTO_PREFERENCE:
        if candidate == "torch":
            return candidate
        if not is_current(bundle_dir, candidate):
            continue
        change = record[candidate].get("psnr_change_db", 0.0) if candidate == "onnx-int8" else 0.0
        if change >= -INT8_MAX_PSNR_LOSS_DB:
            return candidate
    return "torch"
