"""JSON sidecars: what made an image file, next to it, in the dcm2niix / BIDS style.

A NIfTI file ``scan_denoised.nii.gz`` gets ``scan_denoised.json`` in the same folder (same stem),
holding only what the caller gives: provenance and measurements, never header fields copied
from the source, so nothing about the patient reaches it unless a caller puts it there. Keys
follow BIDS' CamelCase (``Sources``, ``GeneratedBy``, ...). The file is written atomically.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medden.io.files import atomic_write
from medden.io.nifti import nifti_stem

__all__ = ["read_sidecar", "sidecar_path", "write_sidecar"]


def sidecar_path(image_path: str | os.PathLike) -> Path:
    """The sidecar of ``image_path``: its folder, its name without ``.nii``/``.nii.gz`` (or its
    last suffix), plus ``.json``.

    Example:
        >>> sidecar_path("out/scan_denoised.nii.gz").as_posix()
        'out/scan_denoised.json'
    """
    path = Path(image_path)
    return path.with_name(nifti_stem(path) + ".json")


def _plain(value: Any, key: str) -> Any:
    """``value`` as JSON types; a non-finite float becomes None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, key) for v in value]
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if type(value).__name__.startswith("int"):  # numpy integers
        return int(value)
    raise TypeError(f"sidecar field {key!r} must be JSON data (str, number, bool, None, list, dict), got "
                    f"{type(value).__name__}; convert it first.")


def write_sidecar(image_path: str | os.PathLike, fields: Mapping[str, Any], overwrite: bool = True) -> Path:
    """Write ``fields`` as the JSON sidecar of ``image_path`` (:func:`sidecar_path`), atomically.

    Args:
        image_path: the image file it describes (need not exist yet).
        fields: JSON data: str, int, float (NaN and inf are written as null), bool, None, and
            lists and mappings of them.
        overwrite: replace an existing sidecar (else :class:`FileExistsError`).

    Returns:
        The sidecar's path.

    Raises:
        TypeError: a field that is not JSON data.
    """
    if not isinstance(fields, Mapping):
        raise TypeError(f"fields must be a mapping of sidecar keys to values, got {type(fields).__name__}.")
    text = json.dumps(_plain(fields, "fields"), indent=2, allow_nan=False) + "\n"
    path = sidecar_path(image_path)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=overwrite)


def read_sidecar(image_path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of ``image_path`` as a dict.

    Raises:
        FileNotFoundError: there is none.
        ValueError: it is not a JSON object.
    """
    path = sidecar_path(image_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a JSON object (a sidecar holds one), got {type(data).__name__}.")
    return data
