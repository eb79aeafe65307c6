"""A weighted sum of losses that all follow the package's loss signature."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from medden.core.validation import check_number

__all__ = ["WeightedSumLoss", "mse_plus_perceptual"]



def _named_pairs(terms: Any) -> list[tuple[str, Any]]:
    """``terms`` as ``[(name, pair), ...]``; names of a sequence come from the class names."""
    if isinstance(terms, Mapping):
        return [(str(name), pair) for name, pair in terms.items()]
    if not isinstance(terms, Sequence) or isinstance(terms, str):
        raise TypeError(
            "terms must be a sequence of (loss, weight) pairs or a dict name -> (loss, weight), "
            f"got {type(terms).__name__}."
        )
    named, seen = [], {}
    for index, pair in enumerate(terms):
        well_formed = isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2
        base = type(pair[0]).__name__ if well_formed and pair[0] is not None else f"term{index}"
        seen[base] = seen.get(base, 0) + 1
        named.append((base if seen[base] == 1 else f"{base}_{seen[base]}", pair))
    return named


class WeightedSumLoss(nn.Module):
    """``sum(weight * loss(pred, target, mask))`` over several loss terms.

    Each term follows the package's loss convention (see :mod:`medden.losses`), and so does
    this module: ``pred``, ``target`` ``(B, C, H, W[, D])`` float, ``mask`` ``(B, 1, *spatial)``
    or ``pred``'s shape or None, output a 0-dim tensor. Every term receives the same three
    arguments. Terms with weight 0 are skipped without being called. To switch a term off
    without constructing it (e.g. a :class:`~medden.losses.PerceptualLoss` whose weights file
    is not available), give ``None`` as its loss with weight 0.

    Used for the recorruption paper's MSE + perceptual combinations, e.g. Camelyon
    ``[(MaskedMSELoss(), 1.0), (PerceptualLoss(), 0.5)]`` and JSRT with 0.2.

    Args:
        terms: a sequence of ``(loss, weight)`` pairs, named after the loss classes
            (``"MaskedMSELoss"``, a repeated class gets ``"_2"``, ``"_3"``, ...; a None loss is
            ``"term<index>"``), or a dict
            ``name -> (loss, weight)``. Each loss is an ``nn.Module`` with the shared
            signature (or None with weight 0); each weight a finite number >= 0, at least
            one of them > 0.

    Attributes:
        names: the term names, in order.
        weights: the term weights, in order.
        last_terms: ``name -> detached 0-dim tensor`` of each unweighted term computed by the
            most recent call (skipped terms are absent), for logging; call ``.item()`` on
            them when logging.

    Example:
        >>> from medden.losses import MaskedL1Loss, MaskedMSELoss
        >>> loss = WeightedSumLoss({"mse": (MaskedMSELoss(), 1.0), "l1": (MaskedL1Loss(), 0.5)})
        >>> loss(torch.zeros(1, 1, 1, 2), torch.full((1, 1, 1, 2), 2.0)).item()
        5.0
        >>> {name: value.item() for name, value in loss.last_terms.items()}
        {'mse': 4.0, 'l1': 2.0}
    """

    def __init__(
        self, terms: Sequence[tuple[nn.Module | None, float]] | Mapping[str, tuple]
    ) -> None:
        super().__init__()
        named = _named_pairs(terms)
        if not named:
            raise ValueError("terms is empty; give at least one (loss, weight) pair.")
        names, losses, weights = [], [], []
        for name, pair in named:
            if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
                raise TypeError(f"term {name!r} must be a (loss, weight) pair, got {pair!r}.")
            loss, weight = pair[0], check_number(pair[1], f"the weight of term {name!r}", 0.0)
            if loss is None and weight != 0:
                raise ValueError(
                    f"term {name!r} has loss None but weight {weight:g}; a None loss needs "
                    "weight 0."
                )
            if loss is not None and not isinstance(loss, nn.Module):
                raise TypeError(
                    f"the loss of term {name!r} must be a torch.nn.Module called as "
                    f"loss(pred, target, mask), got {type(loss).__name__}."
                )
            names.append(name)
            losses.append(loss if loss is not None else nn.Identity())  # placeholder, never called
            weights.append(weight)
        if len(set(names)) != len(names):
            raise ValueError(f"term names must be unique, got {names}.")
        if not any(weights):
            raise ValueError(
                f"all term weights are 0 ({dict(zip(names, weights))}); give one a weight > 0."
            )
        self.names: tuple[str, ...] = tuple(names)
        self.weights: tuple[float, ...] = tuple(weights)
        self.losses = nn.ModuleList(losses)
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the weighted sum of the terms, a 0-dim tensor (see the class docstring)."""
        total, last = None, {}
        for name, loss, weight in zip(self.names, self.losses, self.weights):
            if weight == 0:
                continue
            value = loss(pred, target, mask)
            last[name] = value.detach()
            total = weight * value if total is None else total + weight * value
        self.last_terms = last
        return total

    def extra_repr(self) -> str:
        return ", ".join(f"{name}: {weight:g}" for name, weight in zip(self.names, self.weights))


def mse_plus_perceptual(perceptual_weight: float, vgg16_weights=None) -> WeightedSumLoss:
    """``MSE + perceptual_weight * PerceptualLoss`` (VGG16 relu2_2), the recorruption seed's losses.

    Args:
        perceptual_weight: 0.5 for Camelyon/Gaussian, 0.2 for JSRT/Poisson; 0 drops the term
            without building it (no weights needed).
        vgg16_weights: a local torchvision-format VGG16 state dict file, or None to read the
            ``MEDDEN_VGG16_WEIGHTS`` environment variable. With a weight > 0 and no weights
            found, :class:`~medden.losses.PerceptualLoss` raises ``FileNotFoundError`` saying
            what to provide: the loss never silently falls back to MSE alone.
    """
    from medden.losses.perceptual import PerceptualLoss
    from medden.losses.pixelwise import MaskedMSELoss

    perceptual = PerceptualLoss(weights=vgg16_weights) if perceptual_weight > 0 else None
    return WeightedSumLoss([(MaskedMSELoss(), 1.0), (perceptual, perceptual_weight)])
