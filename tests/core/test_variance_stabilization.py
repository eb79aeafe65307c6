"""Generalised Anscombe transform: stabilises Poisson-Gaussian variance, inverse is unbiased."""

import numpy as np
import pytest
import torch

from medden.anchors import anscombe, inverse_anscombe, with_anscombe
from medden.core.variance_stabilization import generalized_anscombe, inverse_generalized_anscombe


@pytest.mark.parametrize("counts, sigma, gain", [(5.0, 0.0, 1.0), (10.0, 2.0, 1.0), (30.0, 3.0, 1.0),
                                                 (20.0, 4.0, 2.5)])
def test_variance_is_about_one_and_the_inverse_of_the_mean_is_unbiased(counts, sigma, gain):
    rng = np.random.default_rng(0)
    z = gain * rng.poisson(counts, 200_000) + rng.normal(0.0, sigma, 200_000)
    stabilised = generalized_anscombe(z, gain, sigma)
    assert abs(stabilised.var() - 1.0) < 0.06
    estimate = inverse_generalized_anscombe(stabilised.mean(), gain, sigma)
    assert abs(estimate - gain * counts) < 0.01 * gain * counts


def test_classical_anscombe_is_the_special_case_and_torch_matches_numpy():
    counts = np.linspace(0, 80, 41)
    np.testing.assert_allclose(anscombe(counts), 2 * np.sqrt(counts + 0.375))
    np.testing.assert_allclose(inverse_anscombe(anscombe(counts)), inverse_generalized_anscombe(anscombe(counts)))
    as_torch = generalized_anscombe(torch.as_tensor(counts), 2.0, 1.5, 0.3)
    assert isinstance(as_torch, torch.Tensor)
    np.testing.assert_allclose(as_torch.numpy(), generalized_anscombe(counts, 2.0, 1.5, 0.3))
    back = inverse_generalized_anscombe(as_torch, 2.0, 1.5, 0.3)
    np.testing.assert_allclose(back.numpy(), inverse_generalized_anscombe(generalized_anscombe(counts, 2.0, 1.5, 0.3),
                                                                         2.0, 1.5, 0.3))
    assert float(inverse_generalized_anscombe(np.array(-5.0))) == 0.0


def test_with_anscombe_handles_read_noise():
    rng = np.random.default_rng(2)
    clean = np.full((1, 32, 32), 0.4)
    peak, read_sigma = 20.0, 0.05
    noisy = rng.poisson(clean * peak) / peak + rng.normal(0.0, read_sigma, clean.shape)
    mean_filter = with_anscombe(lambda image, sigma: np.full_like(image, image.mean()), peak, read_sigma)
    assert abs(float(mean_filter(noisy).mean()) - 0.4) < 0.01


@pytest.mark.parametrize("call, error, match", [
    (lambda: generalized_anscombe(np.ones(3), gain=0.0), ValueError, "gain must be a finite number > 0"),
    (lambda: generalized_anscombe(np.ones(3), sigma=-1.0), ValueError, "sigma"),
    (lambda: with_anscombe(lambda i, s: i, peak=10.0, read_sigma=-0.1), ValueError, "read_sigma"),
])
def test_bad_parameters_are_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_variance_stabilized_network_round_trips_and_passes_gradients():
    from medden.networks import VarianceStabilized

    model = VarianceStabilized(torch.nn.Identity(), peak=255.0, read_sigma=0.01)
    y = torch.linspace(0.2, 1.0, 64).reshape(1, 1, 8, 8).requires_grad_()
    out = model(y)
    assert out.shape == y.shape
    torch.testing.assert_close(out, y, atol=5e-3, rtol=0)  # the unbiased inverse is nearly algebraic at high counts
    out.sum().backward()
    assert torch.isfinite(y.grad).all() and (y.grad > 0).all()
    with pytest.raises(ValueError, match="peak must be a finite number > 0"):
        VarianceStabilized(torch.nn.Identity(), peak=0.0)
