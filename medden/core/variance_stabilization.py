"""Variance stabilisation for Poisson and Poisson-Gaussian noise: the generalised Anscombe
transform and its exact unbiased inverse (closed-form approximation).

Model: ``z = gain * p + n`` with ``p ~ Poisson(y / gain)`` and ``n ~ N(mean, sigma^2)``, so
``E[z] = y + mean``. The generalised Anscombe transform (GAT)

    ``f(z) = (2 / gain) * sqrt(max(gain * z + 3/8 * gain^2 + sigma^2 - gain * mean, 0))``

makes the noise roughly Gaussian with unit variance, so a Gaussian denoiser (BM3D, or a
network trained for Gaussian noise) can work at sigma 1. Its algebraic inverse is biased at
low counts; :func:`inverse_generalized_anscombe` returns instead the ``y`` whose transform has
expected value ``D`` (Makitalo and Foi, IEEE TIP 2011 and 2013: the exact unbiased inverse of
the Anscombe transform in closed form, with ``sigma`` handled by subtracting
``(sigma / gain)^2``, accurate unless counts are very low and ``sigma`` large).

With ``gain=1, sigma=0, mean=0`` these are the classical Anscombe transform ``2 sqrt(z + 3/8)``
and its exact unbiased inverse. This module imports nothing else from medden except
:mod:`medden.core.validation`, so every layer may use it. Inputs are numpy arrays or torch tensors
of any shape; outputs have the input's container type (float64 numpy, or the tensor's dtype).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from medden.core.validation import check_positive, check_range

__all__ = ["generalized_anscombe", "inverse_generalized_anscombe"]

_ROOT = math.sqrt(1.5)


def _ops(x):
    """(array, sqrt, maximum-with-scalar) for numpy or torch input."""
    if isinstance(x, torch.Tensor):
        return x, torch.sqrt, torch.clamp_min
    return np.asarray(x, np.float64), np.sqrt, np.maximum


def _check(gain: float, sigma: float) -> tuple[float, float]:
    return check_positive(gain, "gain"), check_range(sigma, "sigma", 0.0)[0]


def generalized_anscombe(z, gain: float = 1.0, sigma: float = 0.0, mean: float = 0.0):
    """The GAT of ``z`` (see the module docstring); negative arguments of the root map to 0.

    Example:
        >>> float(generalized_anscombe(np.array(1.0)))  # 2 * sqrt(1 + 3/8)
        2.345207879911715
    """
    gain, sigma = _check(gain, sigma)
    z, sqrt, maximum = _ops(z)
    return (2.0 / gain) * sqrt(maximum(gain * z + 0.375 * gain**2 + sigma**2 - gain * mean, 0.0))


def inverse_generalized_anscombe(d, gain: float = 1.0, sigma: float = 0.0, mean: float = 0.0):
    """Exact unbiased inverse of :func:`generalized_anscombe` (closed form), clipped at 0.

    Returns ``y`` (the noise-free signal, ``E[z] - mean``) whose transform has mean ``d``.
    Values of ``d`` below the transform of zero counts map to 0.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = rng.poisson(3.0, 100_000) + rng.normal(0.0, 1.0, 100_000)  # 3 counts, read noise 1
        >>> round(float(inverse_generalized_anscombe(generalized_anscombe(z, sigma=1.0).mean(), sigma=1.0)), 1)
        3.0
    """
    gain, sigma = _check(gain, sigma)
    d, _, maximum = _ops(d)
    d = maximum(d, 2.0 * math.sqrt(0.375))
    counts = d**2 / 4 + _ROOT / (4 * d) - 11 / (8 * d**2) + 5 * _ROOT / (8 * d**3) - 1 / 8 - (sigma / gain) ** 2
    return gain * maximum(counts, 0.0)
