"""A bundle's configs as MONAI parses them, and the inference settings medden reads from them.

``configs/inference.json`` of a medden bundle defines ``network`` and ``inferer`` and may
declare how images are scaled before the network:

* ``intensity_percentiles`` (two numbers in [0, 100]): the intensities mapped to [0, 1], as
  in training (default: the image's minimum and maximum);
* ``intensity_smoothing`` (pixels): measure those percentiles on a box-smoothed copy, so
  noise does not move them (see :func:`medden.inference.volumes.intensity_range`);
* ``image_channels``: channels of one image for the network (1 grey, 3 RGB).

The readers below check those values and name the file in their errors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medden.bundle.layout import INFERENCE_CONFIG, METADATA, config_file
from medden.bundle.resolve import resolve_bundle

if TYPE_CHECKING:
    from monai.bundle import ConfigParser

__all__ = ["CHANNELS_KEY", "PERCENTILES_KEY", "SMOOTHING_KEY", "UID_KEYS", "bundle_config", "image_channels",
           "intensity_percentiles", "intensity_smoothing", "read_metadata", "set_batch_size"]

PERCENTILES_KEY = "intensity_percentiles"
SMOOTHING_KEY = "intensity_smoothing"
CHANNELS_KEY = "image_channels"
#: inference config ids that change the pixels, so a derived series records them (and its UIDs depend on them)
UID_KEYS = ("refine_eta", "refine_steps", "keep_observed")


def bundle_config(bundle: str | os.PathLike, name: str = INFERENCE_CONFIG.name,
                  overrides: Mapping[str, Any] | None = None, only_known: bool = False,
                  trust: bool = False) -> ConfigParser:
    """The ``monai.bundle.ConfigParser`` of a bundle's config ``name``, with ``bundle_root`` set
    to the bundle folder (so ``model_path`` is its ``models/model.pt``).

    Args:
        bundle: a bundle folder or the name of a shipped bundle (:func:`~medden.bundle.resolve.resolve_bundle`).
        name: the config file in ``configs/``, e.g. ``"train.json"``.
        overrides: config ids and values set after reading, in order (as ``--key value`` on
            the bundle command line).
        only_known: set only the ``overrides`` whose id the config already has.
        trust: read a bundle folder medden does not ship (its configs run code; see
            :mod:`medden.bundle.resolve`).

    Raises:
        FileNotFoundError: no such bundle.
        UntrustedBundleError: a folder medden does not ship, without ``trust``; its config is not read.

    Example:
        >>> bundle_config("general_denoiser")["intensity_percentiles"]
        [0.5, 99.5]
    """
    from monai.bundle import ConfigParser

    root = resolve_bundle(bundle, trust)
    parser = ConfigParser()
    parser.read_config(str(root / config_file(name)))
    parser["bundle_root"] = str(root)
    for key, value in (overrides or {}).items():
        if not only_known or key in parser:
            parser[key] = value
    return parser


def read_metadata(root: Path) -> dict[str, Any]:
    """The bundle folder's ``configs/metadata.json``, or ``{}`` when it has none."""
    path = root / METADATA
    return json.loads(path.read_text()) if path.is_file() else {}


def _where(key: str, root: Path) -> str:
    return f"{key} in {str(root / INFERENCE_CONFIG)!r}"


def intensity_percentiles(parser: ConfigParser, root: Path) -> tuple[float, float]:
    """The config's ``intensity_percentiles`` as ``(low, high)``; ``(0.0, 100.0)`` when absent.

    Raises:
        ValueError: not two numbers with ``0 <= low < high <= 100``.
    """
    if PERCENTILES_KEY not in parser:
        return 0.0, 100.0
    value = parser.get_parsed_content(PERCENTILES_KEY)
    if (isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{_where(PERCENTILES_KEY, root)} must be two numbers [low, high], e.g. [0.5, 99.5]; "
                         f"got {value!r}.")
    low, high = float(value[0]), float(value[1])
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"{_where(PERCENTILES_KEY, root)} must satisfy 0 <= low < high <= 100; got {value!r}.")
    return low, high


def _whole_number(parser: ConfigParser, root: Path, key: str, default: int, minimum: int, meaning: str) -> int:
    from medden.core.validation import check_int

    value = parser.get_parsed_content(key) if key in parser else default
    try:
        return check_int(value, _where(key, root), minimum, hint=meaning)
    except TypeError as err:  # a config file's value is a bad value, not a caller's wrong type
        raise ValueError(str(err)) from err


def intensity_smoothing(parser: ConfigParser, root: Path) -> int:
    """The config's ``intensity_smoothing`` in pixels; 0 (none) when absent.

    Raises:
        ValueError: not an int >= 0.
    """
    return _whole_number(parser, root, SMOOTHING_KEY, 0, 0, "a box width in pixels, 0 for none")


def image_channels(parser: ConfigParser, root: Path) -> int:
    """The config's ``image_channels`` (1 grey, 3 RGB); 1 when absent.

    Raises:
        ValueError: not an int >= 1.
    """
    return _whole_number(parser, root, CHANNELS_KEY, 1, 1, "1 for grey, 3 for RGB")


def set_batch_size(inferer: Callable, batch_size: int) -> None:
    """Set ``sw_batch_size`` (slices or windows per network call) on ``inferer`` and on each
    ``base_inferer`` it wraps.

    Raises:
        TypeError: ``batch_size`` is not an int.
        ValueError: ``batch_size < 1``, or no inferer in the chain has ``sw_batch_size``.
    """
    from medden.core.validation import check_int  # torch loads with the network, not with the command line

    batch_size = check_int(batch_size, "batch_size", hint="it is how many slices or windows go through the network "
                                                          "at once")
    found = False
    node = inferer
    while node is not None:
        if hasattr(node, "sw_batch_size"):
            node.sw_batch_size = batch_size
            found = True
        node = getattr(node, "base_inferer", None)
    if not found:
        raise ValueError(f"batch_size={batch_size} was given, but the bundle's inferer {type(inferer).__name__} "
                         "(and any base_inferer it wraps) has no sw_batch_size to set; leave batch_size out for "
                         "this bundle.")
