"""Pixelwise losses with a mask of observed target pixels: MSE, L1 and annealed L0.

All three share :class:`MaskedPixelwiseLoss`, whose ``forward`` checks the inputs, hides the
unobserved target values and averages a per-value loss over the observed ones; subclasses
override one hook, :meth:`~MaskedPixelwiseLoss.elementwise`. The call signature, shapes and
output are the package's loss convention (see :mod:`medden.losses`).
"""

from __future__ import annotations

import torch
from torch import nn

from medden.losses.checks import check_loss_inputs
from medden.core.validation import check_number, check_positive, check_probability

__all__ = [
    "masked_mean",
    "MaskedPixelwiseLoss",
    "MaskedMSELoss",
    "MaskedL1Loss",
    "AnnealedL0Loss",
    "annealed_gamma",
]


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``values`` over the entries where ``mask`` is 1.

    Args:
        values: ``(B, C, *spatial)`` floating tensor of per-value losses.
        mask: None (plain mean), or 0/1 of shape ``(B, 1, *spatial)`` (broadcast over
            channels) or ``values``' shape. Other non-negative values act as weights.

    Returns:
        0-dim tensor ``sum(mask * values) / sum(mask expanded to values' shape)``; 0 (still
        attached to ``values``' graph) when the mask is all zero.

    Example:
        >>> values = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]])
        >>> mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
        >>> masked_mean(values, mask).item()
        2.0
        >>> masked_mean(values, torch.zeros_like(mask)).item()
        0.0
    """
    if mask is None:
        return values.mean()
    weights = mask.expand_as(values)  # a view: channels counted without copying the mask
    total = weights.sum()
    # an empty mask gives 0 / 1 instead of 0 / 0, so neither the value nor its gradient is NaN
    return (values * weights).sum() / torch.where(total > 0, total, torch.ones_like(total))


class MaskedPixelwiseLoss(nn.Module):
    """Base class: the masked mean of a per-value loss ``elementwise(pred, target)``.

    ``forward(pred, target, mask=None)`` follows the package's loss convention (see
    :mod:`medden.losses`): ``pred``, ``target`` ``(B, C, H, W[, D])`` float, ``mask``
    ``(B, 1, *spatial)`` or ``pred``'s shape with 1 = observed, output a 0-dim tensor.
    Before :meth:`elementwise` is called, unobserved target values are replaced by
    ``pred.detach()``, so whatever they hold (zeros, NaN) affects neither the loss nor its
    gradient. Subclasses override :meth:`elementwise` only.
    """

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-value loss, same shape as ``pred``; the hook subclasses override."""
        raise NotImplementedError(f"{type(self).__name__} must implement elementwise().")

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the mean loss over observed values, a 0-dim tensor (see the class docstring)."""
        mask = check_loss_inputs(pred, target, mask)
        if mask is not None:
            target = torch.where(mask > 0, target, pred.detach())
        return masked_mean(self.elementwise(pred, target), mask)


class MaskedMSELoss(MaskedPixelwiseLoss):
    """Mean squared error over observed values: ``sum(mask * (pred - target)**2) / n_observed``.

    The loss for Gaussian and Poisson noise (it recovers the mean) and, with the target's
    keep mask, for Bernoulli noise, where pixels missing in the target must not count
    (recorruption, Jena 2019, section 3.1.2). With ``mask=None`` it equals
    ``torch.nn.functional.mse_loss``. Inputs and output: see :mod:`medden.losses`.

    Example:
        >>> pred, target = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 2.0], [0.0, 9.0]]]])
        >>> mask = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])  # 9.0 is not observed
        >>> MaskedMSELoss()(pred, target, mask).item()
        1.6666666269302368
    """

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).square()


class MaskedL1Loss(MaskedPixelwiseLoss):
    """Mean absolute error over observed values: ``sum(mask * |pred - target|) / n_observed``.

    It recovers the median, the right estimate when corrupted pixels have values unrelated
    to the image, such as a text overlay (Noise2Noise). Inputs and output: see
    :mod:`medden.losses`.

    Example:
        >>> MaskedL1Loss()(torch.zeros(1, 1, 1, 2), torch.tensor([[[[1.0, -3.0]]]])).item()
        2.0
    """

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs()


def annealed_gamma(progress: float, start: float = 2.0, end: float = 0.0) -> float:
    """Linear schedule of the L0 exponent: ``start + (end - start) * progress``.

    Args:
        progress: fraction of training done, in [0, 1].
        start: exponent at ``progress = 0``, >= 0.
        end: exponent at ``progress = 1``, >= 0.

    Raises:
        ValueError: ``progress`` outside [0, 1], or an exponent negative or not finite.

    Example:
        >>> annealed_gamma(0.5)
        1.0
    """
    progress = check_probability(progress, "progress")
    start, end = check_number(start, "gamma_start", 0.0), check_number(end, "gamma_end", 0.0)
    return start + (end - start) * progress


class AnnealedL0Loss(MaskedPixelwiseLoss):
    """Noise2Noise's approximate L0 loss ``(|pred - target| + eps) ** gamma``, annealed.

    Its minimiser tends to the mode of the target distribution as ``gamma`` falls, which is
    the right estimate for random-valued impulse noise: each pixel is either its true value
    (a spike in the distribution) or uniform noise, so the mean (L2) and, above 50% noise,
    the median (L1) are both wrong. Noise2Noise anneals ``gamma`` linearly from 2 to 0 over
    training; call :meth:`set_progress` (e.g. from an ignite handler every iteration) to
    follow that schedule. Inputs and output: see :mod:`medden.losses`.

    Note that at ``gamma = 0`` the loss is the constant 1 (0 where nothing is observed) with
    zero gradient, so the last iterations of the default schedule barely train; this follows
    Noise2Noise. Set ``gamma_end`` slightly above 0 to keep a gradient. For ``gamma < 1`` the
    gradient near ``pred == target`` grows like ``gamma * eps ** (gamma - 1)``: use an
    optimiser that normalises step sizes (Adam) or clip gradients.

    Args:
        eps: added to ``|pred - target|`` so the power is defined for ``gamma < 1``; > 0.
        gamma_start: exponent at progress 0, >= 0 (2 gives an L2-like loss).
        gamma_end: exponent at progress 1, >= 0.

    Attributes:
        progress: the fraction of training last set with :meth:`set_progress` (starts at 0).

    Example:
        >>> loss = AnnealedL0Loss(gamma_start=2.0, gamma_end=0.0)
        >>> loss.set_progress(0.75)
        >>> loss.gamma
        0.5
    """

    def __init__(self, eps: float = 1e-8, gamma_start: float = 2.0, gamma_end: float = 0.0) -> None:
        super().__init__()
        self.eps = check_positive(eps, "eps")
        self.gamma_start = check_number(gamma_start, "gamma_start", 0.0)
        self.gamma_end = check_number(gamma_end, "gamma_end", 0.0)
        self.progress = 0.0
        self._gamma = self.gamma_start

    @property
    def gamma(self) -> float:
        """The current exponent, set by :meth:`set_progress`."""
        return self._gamma

    def set_progress(self, progress: float) -> None:
        """Set the exponent for ``progress`` in [0, 1] (fraction of training done).

        Raises:
            ValueError: ``progress`` outside [0, 1]; pass ``iteration / max_iterations``.
        """
        self._gamma = annealed_gamma(progress, self.gamma_start, self.gamma_end)
        self.progress = float(progress)

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((pred - target).abs() + self.eps).pow(self.gamma)

    def extra_repr(self) -> str:
        return (
            f"eps={self.eps:g}, gamma_start={self.gamma_start:g}, gamma_end={self.gamma_end:g}, "
            f"gamma={self.gamma:g}"
        )
