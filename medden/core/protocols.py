"""The seeds' protocol numbers, written once.

Each constant is a noise level, range or schedule that a seed paper prescribes (see
``../shared/seeds/`` and the "Protocol numbers" paragraph of the design notes). Code imports
them; bundle configs refer to them as ``"$medden.core.protocols.NAME"`` (MONAI's
``ConfigParser`` evaluates the expression), so a protocol number never drifts between a
config, a benchmark and a default.

Intensities are on the [0, 1] scale: a Gaussian sigma of "20 pixels on a scale of 255" is
``20 / 255``. Ranges are ``(low, high)`` tuples, the form every ``*_range`` argument of
:mod:`medden.transforms` accepts. Poisson levels are the peak ``lambda`` of
``Poisson(lambda * x) / lambda``; Bernoulli levels are the probability of *keeping* a pixel.

Example:
    >>> from medden.core import protocols
    >>> protocols.RECORRUPTION_GAUSSIAN_SIGMA_VAL == 20 / 255
    True
    >>> protocols.N2N_POISSON_PEAK_TRAIN
    (0.001, 50.0)
"""

from __future__ import annotations

__all__ = [
    "FLOW_PRIOR_SIGMA_TEST",
    "N2N_BERNOULLI_KEEP_PROB_TEST",
    "N2N_BERNOULLI_KEEP_PROB_TRAIN",
    "N2N_GAUSSIAN_SIGMA_TEST",
    "N2N_GAUSSIAN_SIGMA_TRAIN",
    "N2N_MRI_EDGE_PROBABILITY",
    "N2N_MRI_EDGE_RADIUS",
    "N2N_POISSON_PEAK_TEST",
    "N2N_POISSON_PEAK_TRAIN",
    "N2N_TEXT_COVERAGE_TEST",
    "N2N_TEXT_COVERAGE_TRAIN",
    "RECORRUPTION_CAMELYON_PERCEPTUAL_WEIGHT",
    "RECORRUPTION_CAMELYON_REFINE_ETA",
    "RECORRUPTION_CAMELYON_REFINE_STEPS",
    "RECORRUPTION_EXTRA_SIGMA",
    "RECORRUPTION_GAUSSIAN_SIGMA_TRAIN",
    "RECORRUPTION_GAUSSIAN_SIGMA_VAL",
    "RECORRUPTION_IXI_REFINE_STEPS",
    "RECORRUPTION_JSRT_PERCEPTUAL_WEIGHT",
    "RECORRUPTION_JSRT_REFINE_ETA",
    "RECORRUPTION_JSRT_REFINE_STEPS",
]

# Noise2Noise (Lehtinen et al. 2018; seed noise2noise-slides)

#: Noise2Noise, Gaussian: training sigma drawn per example from [0, 50] on the 255 scale.
N2N_GAUSSIAN_SIGMA_TRAIN: tuple[float, float] = (0.0, 50 / 255)
#: Noise2Noise, Gaussian: test sigma, 25 on the 255 scale.
N2N_GAUSSIAN_SIGMA_TEST: float = 25 / 255
#: Noise2Noise, Poisson: training peak lambda drawn from [0.001, 50].
N2N_POISSON_PEAK_TRAIN: tuple[float, float] = (0.001, 50.0)
#: Noise2Noise, Poisson: test peak lambda 30.
N2N_POISSON_PEAK_TEST: float = 30.0
#: Noise2Noise, multiplicative Bernoulli: training drop probability p in [0, 0.95], written as
#: the keep probability 1 - p in [0.05, 1].
N2N_BERNOULLI_KEEP_PROB_TRAIN: tuple[float, float] = (0.05, 1.0)
#: Noise2Noise, multiplicative Bernoulli: test p = 0.5 (keep and drop probabilities are equal).
N2N_BERNOULLI_KEEP_PROB_TEST: float = 0.5
#: Noise2Noise, text removal: fraction of pixels covered by text in [0, 0.5] during training.
N2N_TEXT_COVERAGE_TRAIN: tuple[float, float] = (0.0, 0.5)
#: Noise2Noise, text removal: test coverage 0.25.
N2N_TEXT_COVERAGE_TEST: float = 0.25
#: Noise2Noise MRI: keep probability of the radial Bernoulli k-space mask
#: ``m(r) = p_edge ** (r / h)`` at the edge radius ``h`` (about 10% of a 256 x 256 k-space kept).
N2N_MRI_EDGE_PROBABILITY: float = 0.025
#: Noise2Noise MRI: the edge radius ``h`` in pixels (of a 256 x 256 k-space) where ``m = p_edge``.
N2N_MRI_EDGE_RADIUS: int = 127

# Recorruption (seed jena-recorruption-manifold-denoising)

#: Recorruption, Camelyon16: sigma of the noisy images y, drawn from [3, 50] on the 255 scale.
RECORRUPTION_GAUSSIAN_SIGMA_TRAIN: tuple[float, float] = (3 / 255, 50 / 255)
#: Recorruption, Camelyon16: sigma' of the extra noise making y' from y, in [0, 25] on the 255 scale.
RECORRUPTION_EXTRA_SIGMA: tuple[float, float] = (0.0, 25 / 255)
#: Recorruption, Camelyon16: validation sigma, fixed at 20 on the 255 scale (medden's Gaussian test level).
RECORRUPTION_GAUSSIAN_SIGMA_VAL: float = 20 / 255
#: Recorruption, Camelyon16: weight of the VGG16 relu2_2 perceptual term beside MSE.
RECORRUPTION_CAMELYON_PERCEPTUAL_WEIGHT: float = 0.5
#: Recorruption, Camelyon16: iterative-refinement steps at test time.
RECORRUPTION_CAMELYON_REFINE_STEPS: int = 10
#: Recorruption, Camelyon16: iterative-refinement step size eta.
RECORRUPTION_CAMELYON_REFINE_ETA: float = 0.01
#: Recorruption, IXI (Bernoulli): iterative-refinement steps at test time.
RECORRUPTION_IXI_REFINE_STEPS: int = 10
#: Recorruption, JSRT (Poisson): weight of the VGG16 relu2_2 perceptual term beside MSE.
RECORRUPTION_JSRT_PERCEPTUAL_WEIGHT: float = 0.2
#: Recorruption, JSRT (Poisson): iterative-refinement steps at test time.
RECORRUPTION_JSRT_REFINE_STEPS: int = 100
#: Recorruption, JSRT (Poisson): iterative-refinement step size eta.
RECORRUPTION_JSRT_REFINE_ETA: float = 0.01

# Unpaired flow prior (Kattakinda et al.; seed kattakinda-unpaired-flow-prior-denoising)

#: Unpaired flow prior: the comparison's Gaussian noise level, sigma 25 on the 255 scale.
FLOW_PRIOR_SIGMA_TEST: float = 25 / 255
