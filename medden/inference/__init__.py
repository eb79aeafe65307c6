"""Inference for networks trained without clean data: refinement, bias correction, tuning.

* :func:`iterative_refinement` / :func:`refinement_path` and :class:`RefinementInferer`:
  the recorruption paper's ``x <- x + eta * (f(x) - x)``, repeated ``k`` times.
* :func:`noisier2noise_correction` and :class:`Noisier2NoiseInferer`: the closed-form
  correction ``((1 + alpha^2) f(z) - z) / alpha^2``.
* :func:`tune_refinement`: choose ``eta`` and ``k`` on ``(noisy, clean)`` validation pairs;
  :func:`tune_noisier2noise_alpha`: choose the Noisier2Noise ``alpha`` the same way.
* :func:`denoise_image`: a whole image in its own intensity units.
* :class:`SliceStackInferer`: a 2.5D network over a volume, each slice with its neighbours.
* :class:`SelfEnsembleInferer`: the average over the eight flips and quarter turns (slower, better).
* :class:`ResidualGuardInferer` / :func:`guard_residual`: do no harm: the change averages to zero
  over large regions and stays within a few times the input's noise.
* :func:`posterior_statistics` and :class:`PosteriorMeanInferer`: a ladder VAE's posterior
  mean/median (MMSE/MMAE) and per-pixel std; :func:`denoise_image_with_uncertainty` gives
  the estimate and its std map for a whole image.

Loops over files (NIfTI, tile and fastMRI ``.h5`` folders) are applications:
:mod:`medden.apps.folders`.

The inferers subclass ``monai.inferers.Inferer``; each network evaluation goes through a
``base_inferer``, so MONAI's ``SlidingWindowInferer`` (large images) and ``SliceInferer``
(2D network over a 3D volume) are used directly, without wrappers. Batches are
``(B, C, H, W)`` or ``(B, C, H, W, D)`` floating tensors (see :mod:`medden`).
"""

from medden.inference.ensemble import ENSEMBLE_VIEWS, SelfEnsembleInferer
from medden.inference.guard import ResidualGuardInferer, guard_residual
from medden.inference.noisier2noise import (
    Noisier2NoiseInferer,
    noisier2noise_correction,
)
from medden.inference.posterior import (
    PosteriorMeanInferer,
    PosteriorStatistics,
    denoise_image_with_uncertainty,
    posterior_statistics,
)
from medden.inference.refinement import (
    RefinementInferer,
    iterative_refinement,
    keep_observed_pixels,
    refinement_path,
)
from medden.inference.stacks import SliceStackInferer
from medden.inference.tuning import TUNING_METRICS, RefinementChoice, tune_noisier2noise_alpha, tune_refinement
from medden.inference.volumes import denoise_image

__all__ = [
    "iterative_refinement",
    "keep_observed_pixels",
    "refinement_path",
    "RefinementInferer",
    "noisier2noise_correction",
    "Noisier2NoiseInferer",
    "tune_refinement",
    "tune_noisier2noise_alpha",
    "RefinementChoice",
    "TUNING_METRICS",
    "denoise_image",
    "ENSEMBLE_VIEWS",
    "SelfEnsembleInferer",
    "SliceStackInferer",
    "ResidualGuardInferer",
    "guard_residual",
    "posterior_statistics",
    "PosteriorStatistics",
    "PosteriorMeanInferer",
    "denoise_image_with_uncertainty",
]
