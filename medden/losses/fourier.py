"""Noise2Noise's Fourier-domain loss for undersampled MRI, in its two variants.

The network sees the zero-filled image of one undersampling ``a`` and is trained against an
independent undersampling ``b`` of the same slice. Two ways to compare (both offered):

``restrict="target"`` (medden's default)
    ``FFT(pred)`` restricted to the frequencies the target sampled, compared with the target's
    raw measured values: ``sum_k M_b |FFT(pred) - k_b|^2 / n``. Each frequency counts only
    where it was measured, without density compensation, so no noise is amplified by ``1/p``;
    in expectation over ``M_b`` this is an L2 loss weighted by the sampling density, whose
    minimiser is still the full k-space.

``restrict="overwrite"`` (the Noise2Noise reference implementation)
    The input's measured frequencies in ``FFT(pred)`` are overwritten by their measured values
    (:func:`medden.core.fourier.data_consistency`), the result is transformed back and compared in
    the image domain with the target's zero-filled, density-compensated image:
    ``mean |IFFT(R_a(FFT(pred))) - y_b|^2``, which by Parseval is the k-space L2 distance to
    ``k_b / p``, an unbiased estimate of the full k-space.

Both are normalised as the mean over real-valued image components: with a fully sampled
target (``M_b = 1``) ``restrict="target"`` equals ``torch.nn.functional.mse_loss(pred, y_b)``.
"""

from __future__ import annotations

import torch
from torch import nn

from medden.core.fourier import data_consistency, to_kspace
from medden.losses.checks import check_loss_inputs
from medden.losses.pixelwise import masked_mean

__all__ = ["FOURIER_RESTRICTIONS", "FourierDomainLoss"]

FOURIER_RESTRICTIONS = ("target", "overwrite")


def _check_kspace_batch(kspace: torch.Tensor, mask: torch.Tensor, complex_channels: int, name: str) -> None:
    if kspace.ndim != 5 or kspace.shape[-1] != 2 or kspace.shape[1] != complex_channels:
        raise ValueError(
            f"{name} must be (B, {complex_channels}, H, W, 2) complex k-space matching pred, got shape "
            f"{tuple(kspace.shape)}; real-only data cannot be k-space."
        )
    wanted = (kspace.shape[0], 1, *kspace.shape[2:4])
    if mask is None or tuple(mask.shape) != wanted:
        got = None if mask is None else tuple(mask.shape)
        raise ValueError(f"the sampling mask for {name} must have shape {wanted}, got {got}.")


class FourierDomainLoss(nn.Module):
    """Noise2Noise k-space loss; see the module docstring for the two ``restrict`` variants.

    Args:
        restrict: ``"target"`` or ``"overwrite"``.
        is_complex: ``pred`` holds complex images as channels, ``(B, 2C, H, W)`` (real parts,
            then imaginary parts, see :mod:`medden.core.fourier`); else real images ``(B, C, H, W)``.

    ``forward(pred, target, mask=None, input_kspace=None, input_mask=None)``:

    * ``pred``: the network's image, ``(B, C, H, W)`` or ``(B, 2C, H, W)`` float.
    * ``restrict="target"``: ``target`` is the target's raw measured k-space
      ``(B, C, H, W, 2)`` (zero where not measured) and ``mask`` its ``(B, 1, H, W)`` sampling
      mask; the input's k-space is not used.
    * ``restrict="overwrite"``: ``target`` is the target's zero-filled image in ``pred``'s
      layout, ``mask`` must be None, and ``input_kspace`` ``(B, C, H, W, 2)`` /
      ``input_mask`` ``(B, 1, H, W)`` are the input's measurements.

    Returns:
        0-dim tensor of ``pred``'s dtype, the mean squared error per real image component (0,
        still attached to the graph, when nothing is sampled).

    Example:
        >>> import torch.nn.functional as F
        >>> from medden.core.fourier import to_kspace
        >>> pred, clean = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
        >>> full = torch.ones(2, 1, 8, 8)
        >>> loss = FourierDomainLoss("target")(pred, to_kspace(clean), full)
        >>> bool(torch.isclose(loss, F.mse_loss(pred, clean)))
        True
    """

    def __init__(self, restrict: str = "target", is_complex: bool = False) -> None:
        super().__init__()
        if restrict not in FOURIER_RESTRICTIONS:
            raise ValueError(f"restrict must be one of {FOURIER_RESTRICTIONS}, got {restrict!r}.")
        self.restrict = restrict
        self.is_complex = bool(is_complex)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                input_kspace: torch.Tensor | None = None, input_mask: torch.Tensor | None = None) -> torch.Tensor:
        complex_channels = pred.shape[1] // 2 if self.is_complex else pred.shape[1]
        if self.restrict == "overwrite":
            if mask is not None:
                raise ValueError("restrict='overwrite' compares whole images: pass mask=None and the input's "
                                 "k-space and mask as input_kspace / input_mask.")
            check_loss_inputs(pred, target, None, spatial_dims=(2,))
            _check_kspace_batch(_required(input_kspace, "input_kspace"), input_mask, complex_channels, "input_kspace")
            return (data_consistency(pred, input_kspace, input_mask, self.is_complex) - target).square().mean()
        check_loss_inputs(pred, pred, None, spatial_dims=(2,))
        _check_kspace_batch(target, mask, complex_channels, "target")
        residual = (to_kspace(pred, self.is_complex) - target).square().sum(-1)  # |.|^2 per complex value
        # a complex value carries two real components of a complex image, one of a real image
        components = 2.0 if self.is_complex else 1.0
        return masked_mean(residual, mask.to(residual.dtype)) / components


def _required(value, name: str):
    if value is None:
        raise ValueError(f"restrict='overwrite' needs {name}: the input's measured k-space and its mask.")
    return value
