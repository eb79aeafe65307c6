"""Training losses for denoising without clean targets.

The loss convention
-------------------
Every loss in medden is a ``torch.nn.Module`` called as ``loss(pred, target, mask=None)``:

* ``pred`` and ``target``: batched images of the same shape ``(B, C, H, W)`` (2D) or
  ``(B, C, H, W, D)`` (3D), floating point (see :mod:`medden` for the array conventions).
  ``target`` is usually a second noisy realisation (Noise2Noise) or the noisy input itself
  (recorruption), never a clean image.
* ``mask``: ``None`` (every value observed), or float 0/1 of shape ``(B, 1, *spatial)``
  (broadcast over channels) or exactly ``pred``'s shape; 1 where the target pixel was
  observed. For Bernoulli noise this is the keep mask, so pixels that are missing (zero) in
  the target do not count. Boolean or integer masks are converted to ``pred``'s dtype;
  values other than 0 and 1 act as weights. Where ``mask == 0`` the target is never read,
  so it may hold anything, even NaN.
* Returns a 0-dim tensor of ``pred``'s dtype: the mean of the per-value loss over the
  observed pixel-channel values (the number of observed values is
  ``mask.expand_as(pred).sum()``). If nothing is observed the result is 0, still attached
  to the graph, never NaN.
* Shapes that do not match raise ``ValueError`` naming both shapes; non-tensors raise
  ``TypeError``.

:class:`PerceptualLoss` follows the same signature but averages over VGG16 feature values
instead of pixels, and is 2D only. Which loss suits which noise (Noise2Noise, Lehtinen et
al. 2018; recorruption, Jena 2019):

========================  =============================================================
noise                     loss
========================  =============================================================
Gaussian, Poisson         :class:`MaskedMSELoss` (the mean), optionally plus a small
                          :class:`PerceptualLoss` term via :class:`WeightedSumLoss`
Bernoulli (pixels lost)   :class:`MaskedMSELoss` with the target's keep mask
text overlay              :class:`MaskedL1Loss` (the median)
random-valued impulse     :class:`AnnealedL0Loss` (the mode)
undersampled MRI          :class:`FourierDomainLoss` (k-space, see :mod:`medden.losses.fourier`)
unpaired clean images     :class:`FlowPriorLoss` (blurred data term and a learned prior,
                          see :mod:`medden.losses.flow_prior`)
========================  =============================================================

:func:`noise2noise_loss` gives the table's choice by noise name. :class:`FourierDomainLoss`
keeps the ``(pred, target, mask)`` order but takes k-space targets; see its docstring.
"""

from medden.losses.composite import WeightedSumLoss, mse_plus_perceptual
from medden.losses.flow_prior import BLURS, FlowPriorLoss, blur_images
from medden.losses.fourier import FOURIER_RESTRICTIONS, FourierDomainLoss
from medden.losses.noise_map import AsymmetricNoiseLoss, CBDNetLoss, local_noise_level, total_variation
from medden.losses.perceptual import VGG16_LAYERS, PerceptualLoss
from medden.losses.pixelwise import (
    AnnealedL0Loss,
    MaskedL1Loss,
    MaskedMSELoss,
    MaskedPixelwiseLoss,
    annealed_gamma,
    masked_mean,
)

__all__ = [
    "MaskedPixelwiseLoss",
    "MaskedMSELoss",
    "MaskedL1Loss",
    "AnnealedL0Loss",
    "annealed_gamma",
    "masked_mean",
    "PerceptualLoss",
    "VGG16_LAYERS",
    "WeightedSumLoss",
    "mse_plus_perceptual",
    "FOURIER_RESTRICTIONS",
    "FourierDomainLoss",
    "AsymmetricNoiseLoss",
    "CBDNetLoss",
    "local_noise_level",
    "total_variation",
    "BLURS",
    "FlowPriorLoss",
    "blur_images",
    "NOISE2NOISE_LOSSES",
    "noise2noise_loss",
    "noise2noise_uses_mask",
]

#: the loss that recovers the right statistic for each noise (Noise2Noise, Lehtinen et al. 2018)
NOISE2NOISE_LOSSES = {
    "gaussian": MaskedMSELoss,
    "poisson": MaskedMSELoss,
    "poisson_gaussian": MaskedMSELoss,
    "rician": MaskedMSELoss,
    "bernoulli": MaskedMSELoss,
    "text": MaskedL1Loss,
    "impulse": AnnealedL0Loss,
}


def noise2noise_loss(noise: str, **kwargs):
    """The loss for Noise2Noise training under ``noise`` (a corruption name, e.g. ``"text"``).

    L2 for zero-mean noise (the mean), L2 on observed pixels for Bernoulli, L1 for text (the
    median), annealed L0 for random-valued impulse noise (the mode). ``kwargs`` go to the loss.

    Example:
        >>> type(noise2noise_loss("text")).__name__
        'MaskedL1Loss'
    """
    if noise not in NOISE2NOISE_LOSSES:
        raise ValueError(f"unknown noise {noise!r}; choose one of {sorted(NOISE2NOISE_LOSSES)}.")
    return NOISE2NOISE_LOSSES[noise](**kwargs)


def noise2noise_uses_mask(noise: str) -> bool:
    """Whether the target's observation mask enters the loss: only where missing pixels are
    visible in the data (Bernoulli: zeros). Text and impulse positions are unknown in real
    data, so their masks are never used."""
    if noise not in NOISE2NOISE_LOSSES:
        raise ValueError(f"unknown noise {noise!r}; choose one of {sorted(NOISE2NOISE_LOSSES)}.")
    return noise == "bernoulli"
