"""CBDNet's loss terms on the estimated noise-level map (Guo et al., CVPR 2019).

:class:`CBDNetLoss` follows the package's loss convention (see :mod:`medden.losses`) and
takes the network's noise map as keyword arguments, so a trainer calls it as
``loss(pred, target, mask, noise_map=est, true_noise_map=local_noise_level(noisy, clean))``
with ``pred, est = CBDNet(...)(noisy, return_noise_map=True)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medden.losses.pixelwise import MaskedMSELoss, MaskedPixelwiseLoss
from medden.core.validation import check_odd_int, check_probability, check_range

__all__ = ["AsymmetricNoiseLoss", "CBDNetLoss", "local_noise_level", "total_variation"]


def _check_image_batch(value: torch.Tensor, name: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}; use torch.as_tensor(...).")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {value.dtype}; use .float().")
    if value.ndim != 4:
        raise ValueError(f"{name} must be (B, C, H, W), got shape {tuple(value.shape)}; add dimensions with x[None].")


class AsymmetricNoiseLoss(MaskedPixelwiseLoss):
    """CBDNet's asymmetric loss on the noise-level map: ``|alpha - 1[est < true]| * (est - true)**2``.

    With ``alpha < 0.5`` an under-estimate (``est < true``) weighs ``1 - alpha`` and an
    over-estimate only ``alpha``: a non-blind denoiser given too low a noise level leaves
    noise in, while too high a level only smooths slightly more, so under-estimates are
    penalised more. Called as ``loss(estimated_map, true_map, mask=None)`` with the
    package's loss convention (see :mod:`medden.losses`): maps ``(B, C, H, W[, D])`` float in
    the image's units, output the masked mean, a 0-dim tensor.

    Args:
        alpha: weight of over-estimates, in [0, 1]; the paper uses 0.3.

    Example:
        >>> loss = AsymmetricNoiseLoss(alpha=0.3)
        >>> true = torch.full((1, 1, 1, 1), 0.5)
        >>> round(loss(torch.zeros_like(true), true).item(), 4), round(loss(true + 0.5, true).item(), 4)
        (0.175, 0.075)
    """

    def __init__(self, alpha: float = 0.3) -> None:
        super().__init__()
        self.alpha = check_probability(alpha, "alpha")

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        under = (pred < target).to(pred.dtype)
        return (self.alpha - under).abs() * (pred - target).square()

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}"


def total_variation(noise_map: torch.Tensor) -> torch.Tensor:
    """Squared total variation: mean squared vertical plus mean squared horizontal difference.

    CBDNet's smoothness prior on the noise-level map (noise levels vary slowly across an image).

    Args:
        noise_map: ``(B, C, H, W)`` float.

    Returns:
        0-dim tensor of ``noise_map``'s dtype, >= 0; 0 for a constant map. A dimension of
        size 1 contributes 0.

    Example:
        >>> total_variation(torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])).item()
        1.0
    """
    _check_image_batch(noise_map, "noise_map")
    vertical = (noise_map[..., 1:, :] - noise_map[..., :-1, :]).square()
    horizontal = (noise_map[..., :, 1:] - noise_map[..., :, :-1]).square()
    return vertical.sum() / max(vertical.numel(), 1) + horizontal.sum() / max(horizontal.numel(), 1)


def local_noise_level(noisy: torch.Tensor, clean: torch.Tensor, window: int = 7) -> torch.Tensor:
    """The true noise-level map: local RMS of ``noisy - clean`` over a ``window`` x ``window`` box.

    What a supervised trainer feeds to :class:`CBDNetLoss` as ``true_noise_map``. At the
    borders the box is cut to the image (no zero padding is counted). Detached: it is a
    target, not part of the graph.

    Args:
        noisy: ``(B, C, H, W)`` float.
        clean: the same shape, the same units.
        window: box side, an odd integer >= 1.

    Returns:
        ``(B, C, H, W)`` float, >= 0, in the images' units (a standard deviation for
        zero-mean noise).
    """
    _check_image_batch(noisy, "noisy")
    _check_image_batch(clean, "clean")
    if clean.shape != noisy.shape:
        raise ValueError(f"clean must have noisy's shape {tuple(noisy.shape)}, got {tuple(clean.shape)}.")
    check_odd_int(window, "window")
    squared = (noisy - clean).detach().square()
    variance = F.avg_pool2d(squared, int(window), stride=1, padding=int(window) // 2, count_include_pad=False)
    return variance.sqrt()


class CBDNetLoss(nn.Module):
    """CBDNet's training loss: MSE + asymmetric noise-map loss + total variation of the map.

    ``loss(pred, target, mask=None, *, noise_map=None, true_noise_map=None)`` is
    ``MaskedMSELoss(pred, target, mask)``, plus ``asymmetric_weight *
    AsymmetricNoiseLoss(noise_map, true_noise_map, mask)`` when both maps are given, plus
    ``tv_weight * total_variation(noise_map)`` when ``noise_map`` is given; without maps it
    is the masked MSE. ``pred``, ``target``, ``mask`` and the output follow the package's
    loss convention (see :mod:`medden.losses`); the maps are ``(B, C, H, W)`` float, >= 0, in
    the image's units, e.g. from ``CBDNet(...)(x, return_noise_map=True)`` and
    :func:`local_noise_level`.

    Args:
        asymmetric_weight: weight of the asymmetric term, >= 0 (the paper's lambda_asymm).
        tv_weight: weight of the total-variation term, >= 0 (the paper's lambda_TV).
        alpha: see :class:`AsymmetricNoiseLoss`.

    Example:
        >>> pred, target = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
        >>> CBDNetLoss()(pred, target).item()
        1.0
    """

    def __init__(self, asymmetric_weight: float = 0.5, tv_weight: float = 0.05, alpha: float = 0.3) -> None:
        super().__init__()
        self.asymmetric_weight = check_range(asymmetric_weight, "asymmetric_weight", 0.0)[0]
        self.tv_weight = check_range(tv_weight, "tv_weight", 0.0)[0]
        self.mse = MaskedMSELoss()
        self.asymmetric = AsymmetricNoiseLoss(alpha)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, *,
                noise_map: torch.Tensor | None = None, true_noise_map: torch.Tensor | None = None) -> torch.Tensor:
        """Return the 0-dim loss (see the class docstring)."""
        loss = self.mse(pred, target, mask)
        if noise_map is None:
            if true_noise_map is not None:
                raise ValueError("true_noise_map was given without noise_map; pass the network's estimate too, "
                                 "e.g. pred, noise_map = net(x, return_noise_map=True).")
            return loss
        if true_noise_map is not None and self.asymmetric_weight > 0:
            loss = loss + self.asymmetric_weight * self.asymmetric(noise_map, true_noise_map, mask)
        if self.tv_weight > 0:
            loss = loss + self.tv_weight * total_variation(noise_map)
        return loss

    def extra_repr(self) -> str:
        return f"asymmetric_weight={self.asymmetric_weight:g}, tv_weight={self.tv_weight:g}"
