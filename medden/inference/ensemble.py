"""Self-ensemble: average a denoiser over the eight flips and quarter turns of its input.

A network trained with random flips and 90-degree turns should give the same answer on each
of the eight dihedral views of an image; in practice each view errs a little differently, and
the average of the eight (each turned back) is a slower, slightly better estimate (the
"x8" of image restoration papers). It costs ``views`` network passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer

from medden.core.validation import check_int
from medden.inference.checks import resolve_inferer
from medden.inference.progress import progress_part, run_base_inferer

__all__ = ["ENSEMBLE_VIEWS", "SelfEnsembleInferer"]

#: the most views: identity, three quarter turns, and each of those flipped
ENSEMBLE_VIEWS = 8


def _view(x: torch.Tensor, index: int) -> torch.Tensor:
    """View ``index`` (0-7) of ``x``: ``index % 4`` quarter turns in (H, W), then a flip of W if ``index >= 4``."""
    turned = torch.rot90(x, index % 4, dims=(2, 3))
    return torch.flip(turned, dims=(3,)) if index >= 4 else turned


def _unview(y: torch.Tensor, index: int) -> torch.Tensor:
    """The inverse of :func:`_view`."""
    unflipped = torch.flip(y, dims=(3,)) if index >= 4 else y
    return torch.rot90(unflipped, -(index % 4), dims=(2, 3))


class SelfEnsembleInferer(Inferer):
    """Run ``base_inferer`` on ``views`` dihedral views of the batch and average them, turned back.

    Args:
        views: 1 (a plain pass) to 8; the first ``views`` of: identity, 90, 180, 270 degrees,
            then the same four flipped.
        base_inferer: runs the network on each view (e.g. ``monai.inferers.SliceInferer`` for
            volumes, whose slices are turned in-plane); None means one call on the whole batch.

    Shapes:
        ``(B, C, H, W)`` or ``(B, C, H, W, D)`` floating tensors; views turn H and W, so a
        non-square image gives non-square views, which the base inferer must accept.

    Example:
        >>> import torch
        >>> inferer = SelfEnsembleInferer(views=8)
        >>> x = torch.arange(6.0).reshape(1, 1, 2, 3)
        >>> bool(torch.equal(inferer(x, lambda t: 2 * t), 2 * x))
        True
    """

    def __init__(self, views: int = ENSEMBLE_VIEWS, base_inferer: Inferer | Callable | None = None) -> None:
        self.views = check_int(views, "views", 1)
        if self.views > ENSEMBLE_VIEWS:
            raise ValueError(f"views must be 1 to {ENSEMBLE_VIEWS}, got {views}.")
        self.base_inferer = resolve_inferer(base_inferer)

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The mean of the views' outputs, each turned back; same shape as ``inputs``."""
        total = None
        for index in range(self.views):
            with progress_part(index, self.views):
                out = _unview(run_base_inferer(self.base_inferer, _view(inputs, index), network, *args, **kwargs),
                              index)
            total = out if total is None else total + out
        return total / self.views
