"""PSNR/SSIM helpers against reference formulas."""

import numpy as np
import pytest
import torch

from medden.metrics.image_quality import psnr, ssim


def test_psnr_matches_the_formula_and_uses_the_given_range():
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 2, (1, 32, 32))
    pred = target + rng.normal(0, 0.1, target.shape)
    mse = np.mean((pred - target) ** 2)
    assert psnr(pred, target, data_range=2.0).item() == pytest.approx(10 * np.log10(4 / mse), rel=1e-6)
    assert psnr(pred, target, data_range=1.0).item() == pytest.approx(10 * np.log10(1 / mse), rel=1e-6)


def test_psnr_batched_returns_one_value_per_image():
    target = torch.rand(3, 1, 16, 16)
    values = psnr(target + 0.01 * torch.arange(1, 4).view(3, 1, 1, 1), target, 1.0)
    assert values.shape == (3,) and values[0] > values[1] > values[2]


def test_ssim_agrees_with_scikit_image():
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    rng = np.random.default_rng(1)
    target = rng.uniform(0, 1, (64, 64))
    pred = np.clip(target + rng.normal(0, 0.1, target.shape), 0, 1)
    reference = structural_similarity(pred, target, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
    assert ssim(pred[None], target[None], 1.0, win_size=11).item() == pytest.approx(reference, abs=2e-3)
    assert ssim(target[None], target[None], 1.0).item() == pytest.approx(1.0)


def test_metrics_reject_bad_input():
    x = np.zeros((1, 16, 16))
    with pytest.raises(ValueError, match="data_range must be a finite number > 0, got 0"):
        psnr(x, x, 0)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(x, np.zeros((1, 16, 8)), 1.0)
    with pytest.raises(ValueError, match=r"every spatial side must be >= win_size=7"):
        ssim(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), 1.0)


def test_volumes_need_spatial_dims_3():
    vol = torch.rand(1, 16, 16, 16)
    assert psnr(vol + 0.01, vol, 1.0, spatial_dims=3).shape == (1,)
    assert ssim(vol, vol, 1.0, spatial_dims=3).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        psnr(vol, vol, 1.0, spatial_dims=4)
