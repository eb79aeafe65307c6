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
========================  =============================================================
"""

from medden.losses.composite import WeightedSumLoss
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
]
