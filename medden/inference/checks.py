"""Argument checks shared by the inference modules (private)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import SimpleInferer

from medden.core.protocols import RECORRUPTION_CAMELYON_REFINE_ETA
from medden.core.validation import check_finite, check_number


def check_eta(eta: float) -> float:
    """Return ``eta`` as float if it is a step size in (0, 1]."""
    return check_number(eta, "eta", 0.0, 1.0, open_minimum=True, what="a step size",
                        hint="eta=1 with steps=1 is one plain network pass, the recorruption paper uses "
                             f"eta={RECORRUPTION_CAMELYON_REFINE_ETA:g}")



def check_batch(img: Any, name: str) -> torch.Tensor:
    """Check ``img`` is a finite floating tensor ``(B, C, H, W)`` or ``(B, C, H, W, D)``."""
    if not isinstance(img, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, C, H, W) or (B, C, H, W, D), got "
            f"{type(img).__name__}; convert it with torch.as_tensor(...)."
        )
    if img.ndim not in (4, 5):
        hint = f" add a batch dimension with {name}[None]." if img.ndim == 3 else ""
        raise ValueError(
            f"{name} must be batched channel-first (B, C, H, W) or (B, C, H, W, D), got shape "
            f"{tuple(img.shape)} (rank {img.ndim});{hint or ' reshape it.'}"
        )
    if min(img.shape) == 0:
        raise ValueError(f"{name} has an empty dimension: shape {tuple(img.shape)}.")
    if not img.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {img.dtype}; convert it with {name}.float().")
    check_finite(img, name)
    return img


def check_network(network: Any, name: str = "network") -> Callable:
    """Return ``network`` if it is callable."""
    if not callable(network):
        raise TypeError(
            f"{name} must be callable, (B, C, *spatial) tensor -> tensor of the same shape, "
            f"got {type(network).__name__}."
        )
    return network


def resolve_inferer(base_inferer: Any) -> Callable:
    """Return ``base_inferer``, or ``monai.inferers.SimpleInferer()`` when it is None."""
    if base_inferer is None:
        return SimpleInferer()
    if not callable(base_inferer):
        raise TypeError(
            "base_inferer must be a monai.inferers.Inferer (or a callable (inputs, network) -> "
            f"tensor), got {type(base_inferer).__name__}."
        )
    return base_inferer


def evaluate(network: Callable, x: torch.Tensor) -> torch.Tensor:
    """``network(x)`` checked to be a tensor of ``x``'s shape, cast to ``x``'s dtype."""
    out = network(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"network must return a tensor, got {type(out).__name__}; wrap a network with several "
            "outputs, e.g. lambda x: net(x)[0]."
        )
    if out.shape != x.shape:
        raise ValueError(
            f"network output shape {tuple(out.shape)} differs from its input shape {tuple(x.shape)}; "
            "refinement and the Noisier2Noise correction need an image-to-image network with "
            "out_channels == in_channels."
        )
    return out.to(x.dtype)
