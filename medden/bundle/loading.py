"""Load a bundle: its config, network (PyTorch or an export), inferer and intensity handling.

:func:`load_bundle` is the one way a bundle becomes a :class:`~medden.bundle.bundle.Bundle`;
:func:`bundle_network` loads other weights into a bundle's network, for scoring checkpoints.

Example:
    >>> bundle = load_bundle("general_denoiser", device="cpu")
    >>> bundle.backend, bundle.image_channels, bundle.root.name
    ('torch', 1, 'general_denoiser')
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medden.bundle.bundle import Bundle
from medden.bundle.config import (
    PERCENTILES_KEY,
    SMOOTHING_KEY,
    UID_KEYS,
    bundle_config,
    image_channels,
    intensity_percentiles,
    intensity_smoothing,
    read_metadata,
    set_batch_size,
)
from medden.bundle.exports import auto_choice, check_backend, checked_export, current_exports, model_sha256
from medden.bundle.layout import INFERENCE_CONFIG, WEIGHTS
from medden.bundle.resolve import resolve_bundle

if TYPE_CHECKING:
    import torch
    from monai.bundle import ConfigParser

__all__ = ["INPUT_KEY", "NotAnImageBundleError", "bundle_network", "check_image_bundle", "load_bundle"]

logger = logging.getLogger(__name__)


def load_bundle(bundle: str | os.PathLike, device: str | torch.device | None = None,
                batch_size: int | None = None, overrides: dict[str, Any] | None = None,
                backend: str = "torch", trust: bool = False) -> Bundle:
    """Load a bundle's ``configs/inference.json`` ``network`` and ``inferer`` as a :class:`Bundle`.

    The config is evaluated with ``bundle_root`` set to the bundle folder (so its
    ``models/model.pt`` is used) and ``device`` overridden when given. With an exported
    ``backend`` the network comes from ``models/model.ts`` / ``model.onnx`` /
    ``model_int8.onnx`` instead (written by ``medden export``), and the inferer is the same.
    The export record is read, and ``models/model.pt`` hashed, at most once.

    Args:
        bundle: a bundle folder, or the name of a shipped one (:func:`~medden.bundle.resolve.resolve_bundle`).
        device: where the network runs; default: the bundle's own choice.
        batch_size: slices or windows per network call, set as the ``sw_batch_size`` of
            the inferer and of every ``base_inferer`` it wraps; default: the bundle's.
        overrides: further config ids and values, e.g. ``{"model_path": "other.pt",
            "noise": "poisson"}`` (as ``--key value`` on the bundle command line).
        backend: one of :data:`medden.bundle.exports.BACKENDS`, or ``"auto"``: the fastest one
            the bundle has a current export of that loses under 0.1 dB
            (:func:`medden.bundle.exports.auto_choice`).
        trust: load a bundle folder medden does not ship. Its configs run Python code when
            loaded, so pass True only for bundles whose author you trust (see
            :mod:`medden.bundle.resolve`).

    The bundle's ``parameters`` name exactly what made the pixels, so that derived DICOM UIDs
    differ whenever the pixels may: ``weights_sha256`` (the SHA-256 of the file the backend
    runs: ``models/model.pt``, an overridden ``model_path``, or the export), ``config_sha256``
    (of ``configs/inference.json`` and any ``overrides`` but the device), the exported
    ``backend`` and the config's pixel-changing settings.

    Raises:
        FileNotFoundError: no such bundle (see :func:`~medden.bundle.resolve.resolve_bundle`),
            or an exported ``backend`` the bundle has no export of.
        UntrustedBundleError: a folder medden does not ship, without ``trust`` (nothing of it is parsed).
        NotAnImageBundleError: the bundle's inference.json has no image ``inferer`` (e.g. a k-space
            reconstruction bundle); the message says what it takes and how to run it.
        TypeError: ``batch_size`` is not an int.
        ValueError: ``batch_size < 1``, or given for an inferer without ``sw_batch_size``;
            bad ``intensity_percentiles``, ``intensity_smoothing`` or ``image_channels``; a
            config that does not evaluate; an unknown ``backend``, a stale export, or an
            exported one with an overridden ``model_path`` (exports are of ``models/model.pt``).
        CheckpointError: the weights do not load.
    """
    backend = check_backend(backend, auto=True)
    root = resolve_bundle(bundle, trust)
    overrides = dict(overrides or {})
    config_sha256 = _config_sha256(root, overrides)
    if "model_path" in overrides and backend not in ("torch", "auto"):
        raise ValueError(f"backend {backend!r} runs the bundle's export of models/model.pt; it cannot run the "
                         f"overridden model_path {overrides['model_path']!r} (use backend='torch').")
    if device is not None:
        import torch

        overrides = {"device": f"$torch.device('{torch.device(device)}')", **overrides}
    parser = bundle_config(root, overrides=overrides, trust=True)  # resolve_bundle checked it
    check_image_bundle(parser, root)
    network, backend, weights = _network(parser, root, "torch" if "model_path" in overrides else backend)
    inferer = _evaluated(parser, "inferer")
    if batch_size is not None:
        set_batch_size(inferer, batch_size)
    parameters = {key: parser[key] for key in UID_KEYS if key in parser}
    parameters.update(weights_sha256=model_sha256(weights), config_sha256=config_sha256)
    percentiles = intensity_percentiles(parser, root)
    if PERCENTILES_KEY in parser:
        parameters[PERCENTILES_KEY] = list(percentiles)  # they change the pixels, so they belong in the UIDs
    smoothing = intensity_smoothing(parser, root)
    if smoothing:
        parameters[SMOOTHING_KEY] = smoothing
    channels = image_channels(parser, root)
    if backend != "torch":
        parameters["backend"] = backend  # int8 changes the pixels, so it belongs in the UIDs
    name = f"{root.resolve().name} {read_metadata(root).get('version', '')}".strip()
    logger.info("bundle %s runs on the %s backend", name, backend)
    return Bundle(name=name, root=root, network=network, inferer=inferer, parameters=parameters,
                  percentiles=percentiles, smoothing=smoothing, image_channels=channels, backend=backend)


class NotAnImageBundleError(ValueError):
    """A bundle whose ``configs/inference.json`` has no image ``inferer``: it cannot denoise an image."""


#: the inference.json id a non-image bundle may set to say what its ``input_dir`` takes
INPUT_KEY = "inference_input"


def check_image_bundle(parser: ConfigParser, root: Path) -> None:
    """Refuse a bundle without an ``inferer`` in its inference config, before anything of it is evaluated.

    Raises:
        NotAnImageBundleError: naming the bundle, what it takes (its ``inference_input``, or its
            metadata's description) and the ``monai.bundle`` command that runs it.
    """
    if "inferer" in parser:
        return
    takes = parser[INPUT_KEY] if INPUT_KEY in parser else read_metadata(root).get("description", "see its docs")
    raise NotAnImageBundleError(
        f"bundle {root.name!r} cannot denoise images: its {str(root / INFERENCE_CONFIG)!r} has no 'inferer' "
        f"(medden denoise, the viewer and load_bundle run image bundles only). It takes: {takes} Run it with its "
        f"own inference config: python -m monai.bundle run --config_file {root / INFERENCE_CONFIG} --input_dir DIR "
        "--output_dir OUT")


def _evaluated(parser: ConfigParser, key: str) -> Any:
    """``parser.get_parsed_content(key)``, raising the error behind MONAI's "Failed to evaluate
    ConfigExpression" (a refused checkpoint, a missing file) rather than that wrapper."""
    try:
        return parser.get_parsed_content(key)
    except RuntimeError as err:
        if err.__cause__ is None:
            raise
        raise err.__cause__ from None


def _config_sha256(root: Path, overrides: dict[str, Any]) -> str:
    """SHA-256 of the inference config's bytes and the overrides (but ``device``, which changes no pixel)."""
    digest = hashlib.sha256((root / INFERENCE_CONFIG).read_bytes())
    settings = {key: value for key, value in overrides.items() if key != "device"}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _network(parser: ConfigParser, root: Path, backend: str) -> tuple[torch.nn.Module, str, Path]:
    """The network ``backend`` runs (``"auto"`` resolved), that backend's name and the weights file it runs."""
    from medden.bundle.backends import load_exported_network

    if backend != "torch":
        current = current_exports(root)  # the one read of models/export.json and hash of models/model.pt
        backend = auto_choice(current) if backend == "auto" else backend
    if backend == "torch":
        weights = Path(parser.get_parsed_content("model_path")) if "model_path" in parser else root / WEIGHTS
        return _evaluated(parser, "network").eval(), backend, weights
    path = checked_export(root, backend, current)
    return load_exported_network(path, backend, parser.get_parsed_content("device")), backend, path


def bundle_network(bundle: str | os.PathLike, weights: str | os.PathLike, trust: bool = False) -> torch.nn.Module:
    """A bundle's ``network_def`` (from ``configs/inference.json``) with ``weights`` loaded, in eval
    mode on the CPU: for scoring checkpoints other than the bundle's own ``models/model.pt``.

    Raises:
        FileNotFoundError: no such bundle (see :func:`~medden.bundle.resolve.resolve_bundle`) or weights file.
        UntrustedBundleError: a folder medden does not ship, without ``trust``.
        CheckpointError: the weights do not fit the network.
    """
    from medden.io import load_network_weights

    return load_network_weights(bundle_config(bundle, trust=trust).get_parsed_content("network_def"), weights).eval()
