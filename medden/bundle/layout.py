"""Where a bundle keeps its files: every path inside a bundle folder, written once.

A medden bundle is a MONAI bundle folder::

    configs/inference.json   the network, the inferer and how images are scaled
    configs/metadata.json    name, version, changelog (MONAI's metadata schema)
    configs/<other>.json     train.json, evaluate.json, ... (MONAI bundle configs)
    models/model.pt          the trained weights (a state dict)
    models/model_2d.pt       a volumetric bundle's 2D network for single images (optional)
    models/export.json       what ``medden export`` wrote and measured
    models/model.ts, ...     the exported networks (:data:`EXPORTED_FILES`)

Every path here is relative to the bundle folder; no function here touches the disk.

Example:
    >>> from medden.bundle.layout import INFERENCE_CONFIG, WEIGHTS, config_file
    >>> INFERENCE_CONFIG.as_posix(), WEIGHTS.as_posix(), config_file("train.json").as_posix()
    ('configs/inference.json', 'models/model.pt', 'configs/train.json')
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIGS", "EXPORTED_FILES", "EXPORT_RECORD", "INFERENCE_CONFIG", "METADATA", "MODELS",
           "SINGLE_IMAGE_WEIGHTS", "WEIGHTS", "config_file"]

#: the folder of the bundle's configs
CONFIGS = Path("configs")
#: the folder of the bundle's weights and exports
MODELS = Path("models")
#: the config ``medden denoise`` reads: ``network``, ``inferer`` and the intensity handling
INFERENCE_CONFIG = CONFIGS / "inference.json"
#: MONAI's bundle metadata (``version`` names the bundle in reports)
METADATA = CONFIGS / "metadata.json"
#: the trained weights, the file the ``torch`` backend runs
WEIGHTS = MODELS / "model.pt"
#: a volumetric bundle's 2D network for single images (its inferer's ``lone_network``)
SINGLE_IMAGE_WEIGHTS = MODELS / "model_2d.pt"
#: what ``medden export`` measured, with the SHA-256 of the ``model.pt`` the exports came from
EXPORT_RECORD = MODELS / "export.json"
#: the file each exported backend reads
EXPORTED_FILES = {
    "torchscript": MODELS / "model.ts",
    "onnx": MODELS / "model.onnx",
    "onnx-int8": MODELS / "model_int8.onnx",
}


def config_file(name: str) -> Path:
    """The path of the config ``name`` (e.g. ``"train.json"``) inside a bundle folder."""
    return CONFIGS / name
