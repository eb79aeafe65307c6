"""Input checks for the shared loss signature ``loss(pred, target, mask=None)``.

See :mod:`medden.losses` for the convention these enforce.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_LAYOUTS = {2: "(B, C, H, W)", 3: "(B, C, H, W, D)"}


def check_loss_inputs(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    spatial_dims: Sequence[int] = (2, 3),
) -> torch.Tensor | None:
    """Check the arguments of a loss and return ``mask`` in ``pred``'s dtype (or None).

    Args:
        pred: ``(B, C, *spatial)`` floating tensor.
        target: tensor of ``pred``'s shape, floating.
        mask: None, or a tensor of shape ``(B, 1, *spatial)`` or ``pred.shape``.
        spatial_dims: the accepted numbers of spatial dimensions.

    Raises:
        TypeError: an argument is not a ``torch.Tensor``, or ``pred``/``target`` is not
            floating point.
        ValueError: a rank or shape does not match the convention.
    """
    for name, value in (("pred", pred), ("target", target), ("mask", mask)):
        if value is not None and not isinstance(value, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor, got {type(value).__name__}; convert it with "
                "torch.as_tensor(...)."
            )
    for name, value in (("pred", pred), ("target", target)):
        if not value.is_floating_point():
            raise TypeError(
                f"{name} must be a floating tensor, got dtype {value.dtype}; use .float()."
            )
    n_spatial = pred.ndim - 2
    if n_spatial not in spatial_dims:
        layouts = " or ".join(_LAYOUTS.get(n, f"rank {n + 2}") for n in spatial_dims)
        raise ValueError(
            f"pred must be batched channel-first {layouts}, got shape {tuple(pred.shape)} "
            f"(rank {pred.ndim}); add missing batch/channel dimensions with x[None]."
        )
    if target.shape != pred.shape:
        raise ValueError(
            f"target must have pred's shape {tuple(pred.shape)}, got {tuple(target.shape)}."
        )
    if mask is None:
        return None
    single_channel = (pred.shape[0], 1, *pred.shape[2:])
    if mask.shape not in (pred.shape, torch.Size(single_channel)):
        raise ValueError(
            f"mask must have shape {single_channel} (broadcast over channels) or pred's shape "
            f"{tuple(pred.shape)}, got {tuple(mask.shape)}."
        )
    return mask if mask.dtype == pred.dtype else mask.to(pred.dtype)
