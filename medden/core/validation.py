"""Input checks shared by every layer of medden.

Each check raises ``ValueError`` (bad value) or ``TypeError`` (bad type) with a message that
names the argument, the value received and what would be accepted. None of them modify
their input. This module imports nothing else from medden, so any layer may use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "check_channel_first",
    "check_finite",
    "check_image_layout",
    "check_int",
    "check_non_negative",
    "check_number",
    "check_odd_int",
    "check_positive",
    "check_probability",
    "check_range",
    "check_size",
    "lookup_by_name",
]

_NUMBER = (int, float, np.floating, np.integer)


def _as_tensor_view(img: Any, name: str) -> torch.Tensor:
    if isinstance(img, torch.Tensor):
        return img.detach()
    if isinstance(img, np.ndarray):
        return torch.as_tensor(np.ascontiguousarray(img))  # negative strides (flips) need a copy
    raise TypeError(f"{name} must be a numpy.ndarray or torch.Tensor, got {type(img).__name__}.")


def check_channel_first(img: Any, name: str = "img", spatial_dims: Sequence[int] = (2, 3)) -> int:
    """Check ``img`` is a channel-first image and return its number of spatial dimensions.

    Args:
        img: array of shape ``(C, *spatial)``.
        name: the argument's name, used in the error message.
        spatial_dims: the accepted numbers of spatial dimensions.

    Raises:
        TypeError: ``img`` is not an array or tensor.
        ValueError: the rank does not match ``(C, H, W)`` or ``(C, H, W, D)``, or a
            dimension is empty.
    """
    view = _as_tensor_view(img, name)
    n_spatial = view.ndim - 1
    if n_spatial not in spatial_dims:
        layouts = " or ".join("(C, " + ", ".join("HWD"[:n]) + ")" for n in spatial_dims)
        raise ValueError(
            f"{name} must be channel-first {layouts}, got shape {tuple(view.shape)} "
            f"(rank {view.ndim}); add a channel dimension with img[None] if it has none."
        )
    if min(view.shape) == 0:
        raise ValueError(f"{name} has an empty dimension: shape {tuple(view.shape)}.")
    return n_spatial


def check_image_layout(shape: Sequence[int], name: str = "image", channels: Sequence[int] = (1, 3)) -> str:
    """Read an image's layout from its shape under the package's convention, never guessing.

    ``(H, W)`` is one grey plane, ``(C, H, W)`` one image and ``(C, H, W, D)`` a volume, with
    ``C`` in ``channels``. A 3-D shape whose first axis is not a channel count is ambiguous: an
    ``(H, W, D)`` volume without its channel axis would be read as an image of ``H`` channels,
    so it is refused.

    Args:
        shape: the array's shape.
        name: the argument's name, used in the error message.
        channels: the channel counts a ``(C, ...)`` layout may have.

    Returns:
        ``"plane"``, ``"image"`` or ``"volume"``.

    Raises:
        ValueError: another rank, an empty dimension, a channel count not in ``channels``, or
            an ambiguous 3-D shape (the message says how to add the channel axis).
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3, 4):
        raise ValueError(f"{name} must be (H, W), (C, H, W) or (C, H, W, D), got shape {shape} (rank {len(shape)}).")
    if min(shape) == 0:
        raise ValueError(f"{name} has an empty dimension: shape {shape}.")
    counts = " or ".join(str(c) for c in channels)
    if len(shape) == 3 and shape[0] not in channels:
        raise ValueError(
            f"{name} of shape {shape} is ambiguous: a (C, H, W) image has C = {counts} channels, so this is "
            f"probably an (H, W, D) volume without a channel axis; pass image[None] for a (1, H, W, D) volume, "
            f"or move the channel axis first.")
    if len(shape) == 4 and shape[0] not in channels:
        raise ValueError(f"{name} of shape {shape} must be (C, H, W, D) with C = {counts}, got C = {shape[0]}; "
                         "pass image[None] for a (1, H, W, D) volume.")
    return {2: "plane", 3: "image", 4: "volume"}[len(shape)]


def check_finite(img: Any, name: str = "img") -> None:
    """Raise ``ValueError`` if ``img`` holds NaN or infinite values, saying how many."""
    view = _as_tensor_view(img, name)
    if view.is_floating_point() or view.is_complex():
        bad = (~torch.isfinite(view)).sum().item()
        if bad:
            raise ValueError(
                f"{name} contains {bad} non-finite value(s) (NaN or inf) out of {view.numel()}; "
                "replace or mask them before corrupting or denoising."
            )


def check_non_negative(img: Any, name: str = "img") -> None:
    """Raise ``ValueError`` if ``img`` has negative values (e.g. intensities for Poisson noise)."""
    view = _as_tensor_view(img, name)
    low = view.min().item()
    if low < 0:
        raise ValueError(
            f"{name} must be non-negative, got a minimum of {low:g}; rescale it to [0, 1] "
            "(e.g. monai.transforms.ScaleIntensity) before applying Poisson noise."
        )


def check_int(value: int, name: str, minimum: int = 1, hint: str = "") -> int:
    """Return ``value`` as ``int`` if it is an integer ``>= minimum`` (bools and floats are refused).

    Raises:
        TypeError: not an integer.
        ValueError: below ``minimum``; the message names ``name``, the value and ``hint``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}" + (f"; {hint}." if hint else "."))
    return int(value)


def check_number(
    value: float,
    name: str,
    minimum: float = -math.inf,
    maximum: float = math.inf,
    *,
    open_minimum: bool = False,
    open_maximum: bool = False,
    what: str = "a finite number",
    hint: str = "",
) -> float:
    """Return ``value`` as float if it is a finite real number within the bounds.

    Args:
        value: the number to check (bools are refused).
        name: the argument's name, used in the error message.
        minimum: smallest allowed value; ``-inf`` for none.
        maximum: largest allowed value; ``inf`` for none.
        open_minimum: if True, ``minimum`` itself is not allowed.
        open_maximum: if True, ``maximum`` itself is not allowed.
        what: what the value is, for the message (e.g. ``"a probability"``).
        hint: how to fix a bad value, appended to the message.

    Raises:
        TypeError: not a real number.
        ValueError: NaN, infinite or out of bounds; the message names ``name``, the bounds,
            the value and ``hint``.

    Example:
        >>> check_number(0.5, "weight", 0)
        0.5
        >>> check_number(-1, "weight", 0, hint="use 0 to disable the term")
        Traceback (most recent call last):
            ...
        ValueError: weight must be a finite number >= 0, got -1; use 0 to disable the term.
    """
    if math.isfinite(minimum) and math.isfinite(maximum):
        bounds = f"in {'(' if open_minimum else '['}{minimum:g}, {maximum:g}{')' if open_maximum else ']'}"
    elif math.isfinite(minimum):
        bounds = f"{'>' if open_minimum else '>='} {minimum:g}"
    elif math.isfinite(maximum):
        bounds = f"{'<' if open_maximum else '<='} {maximum:g}"
    else:
        bounds = ""
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        raise TypeError(f"{name} must be a number {bounds}".rstrip()
                        + f", got {value!r} of type {type(value).__name__}.")
    number = float(value)
    too_low = number <= minimum if open_minimum else number < minimum
    too_high = number >= maximum if open_maximum else number > maximum
    if not math.isfinite(number) or too_low or too_high:
        raise ValueError(f"{name} must be {what} {bounds}".rstrip() + f", got {value!r}"
                         + (f"; {hint}." if hint else "."))
    return number


def check_odd_int(value: int, name: str, minimum: int = 1, hint: str = "") -> int:
    """Return ``value`` as ``int`` if it is an odd integer ``>= minimum`` (a window or kernel size).

    Raises:
        TypeError: not an integer.
        ValueError: even or below ``minimum``; the message suggests the next odd size.
    """
    value = check_int(value, name, minimum, hint)
    if value % 2 == 0:
        raise ValueError(f"{name} must be an odd integer >= {minimum}, got {value}; use e.g. {value + 1}"
                         + (f"; {hint}." if hint else "."))
    return value


def check_probability(value: float, name: str) -> float:
    """Return ``value`` as float if it lies in [0, 1], else raise ``ValueError`` (see :func:`check_number`)."""
    return check_number(value, name, 0.0, 1.0, what="a probability")


def check_positive(value: float, name: str, hint: str = "") -> float:
    """Return ``value`` as float if it is finite and > 0, else raise ``ValueError`` (see :func:`check_number`)."""
    return check_number(value, name, 0.0, open_minimum=True, hint=hint)


def check_size(value: Sequence[int], name: str) -> tuple[int, int]:
    """Return ``value`` as a ``(height, width)`` pair of ints >= 1.

    Raises:
        TypeError: not a sequence of ints (bools and floats are refused).
        ValueError: not two of them, or a side below 1.
    """
    if (not isinstance(value, Sequence) or isinstance(value, str)
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        raise TypeError(f"{name} must be a pair of ints (height, width), got {value!r}.")
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"{name} must be two positive integers (height, width), got {tuple(value)!r}.")
    return int(value[0]), int(value[1])


def check_range(
    value: Sequence[float] | float,
    name: str,
    lower: float = -math.inf,
    upper: float = math.inf,
    lower_open: bool = False,
) -> tuple[float, float]:
    """Check a ``(low, high)`` parameter range and return it as a tuple of floats.

    A single number ``v`` means the fixed range ``(v, v)``.

    Args:
        value: ``(low, high)`` with ``low <= high``, or one number.
        name: the argument's name, used in the error message.
        lower: smallest allowed value.
        upper: largest allowed value.
        lower_open: if True, ``lower`` itself is not allowed.

    Raises:
        TypeError: not a number or a pair of numbers.
        ValueError: wrong length, ``low > high``, non-finite, or outside the allowed bounds.
    """
    if isinstance(value, _NUMBER) and not isinstance(value, bool):
        pair = (float(value), float(value))
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"{name} must be (low, high), got {value!r} of length {len(value)}.")
        try:
            pair = (float(value[0]), float(value[1]))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must hold two numbers, got {value!r}.") from err
    else:
        raise TypeError(f"{name} must be a number or a (low, high) pair, got {value!r}.")
    low, high = pair
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    if low > high:
        raise ValueError(f"{name} must have low <= high, got {value!r}; swap the two values.")
    too_low = low <= lower if lower_open else low < lower
    if too_low or high > upper:
        bracket = "(" if lower_open else "["
        raise ValueError(f"{name} must lie in {bracket}{lower:g}, {upper:g}], got {value!r}.")
    return pair


def lookup_by_name(registry: Mapping[str, Any], name: str, what: str) -> Any:
    """Return ``registry[name]``, or raise ``ValueError`` naming ``what`` and the valid names."""
    if not isinstance(name, str) or name not in registry:
        raise ValueError(f"unknown {what} {name!r}; choose one of {sorted(registry)}.")
    return registry[name]
