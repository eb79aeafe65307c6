"""Noise std from the flattest blocks reads correlated noise that the finest-detail estimate misses."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from medden.core.noise_estimation import estimate_noise_sigma, flat_region_noise_kernel, flat_region_sigma


def _correlated(rng, shape, blur):
    noise = gaussian_filter(rng.normal(0.0, 1.0, shape), (0, blur, blur))
    return noise / noise.std()


def test_white_and_correlated_noise_read_near_their_std_beside_anatomy():
    rng = np.random.default_rng(0)
    anatomy = np.zeros((1, 256, 256))
    anatomy[:, 64:192, 64:192] = 50.0  # an organ with sharp edges
    anatomy[:, :, :40] = np.linspace(0.0, 30.0, 40)  # a gentle ramp
    white = rng.normal(0.0, 2.0, anatomy.shape)
    assert flat_region_sigma(anatomy + white) == pytest.approx(2.0, rel=0.1)
    correlated = 2.0 * _correlated(rng, anatomy.shape, 1.0)  # like noise after an FBP kernel
    assert flat_region_sigma(anatomy + correlated) == pytest.approx(2.0, rel=0.25)
    assert estimate_noise_sigma(anatomy + correlated) < 0.5  # the finest detail misses most of it


def test_it_reads_the_noise_where_most_blocks_hold_texture():
    rng = np.random.default_rng(2)
    texture = np.zeros((1, 128, 128))
    texture[:, :, 40:] = 20.0 * np.sin(np.arange(88) * 1.3)  # fine stripes over 70 % of the image
    image = texture + rng.normal(0.0, 1.0, texture.shape)
    assert flat_region_sigma(image) == pytest.approx(1.0, rel=0.15)  # from the flat 30 %
    # choosing the flattest blocks reads low (their 20th percentile: 0.93 sigma); the chi-law correction undoes it
    assert flat_region_sigma(rng.normal(0.0, 1.0, (1, 256, 256))) == pytest.approx(1.0, rel=0.03)


def test_constant_padding_is_skipped_and_arguments_are_checked():
    rng = np.random.default_rng(1)
    image = np.full((1, 64, 64, 3), -3024.0)  # outside a CT's field of view
    image[:, 16:48, 16:48] = rng.normal(40.0, 5.0, (32, 32, 3))
    assert flat_region_sigma(image) == pytest.approx(5.0, rel=0.15)
    assert flat_region_sigma(np.zeros((1, 16, 16))) == 0.0
    with pytest.raises(ValueError, match="quantile"):
        flat_region_sigma(image, quantile=1.5)
    with pytest.raises(ValueError, match="at least 8 x 8"):
        flat_region_sigma(np.zeros((1, 4, 16)))


def _lag1(x):
    """Correlation of horizontally adjacent pixels of ``(H, W)`` ``x``."""
    return float(np.corrcoef(x[:, 1:].ravel(), x[:, :-1].ravel())[0, 1])


def _anatomy():
    anatomy = np.zeros((1, 256, 256))
    anatomy[:, 64:192, 64:192] = 50.0
    anatomy[:, :, :40] = np.linspace(0.0, 30.0, 40)
    return anatomy


def test_noise_kernel_of_white_noise_is_a_centred_symmetric_delta_of_its_std():
    rng = np.random.default_rng(0)
    image = _anatomy() + rng.normal(0.0, 2.0, (1, 256, 256))
    kernel = flat_region_noise_kernel(image)
    assert kernel.shape == (9, 9) and kernel.dtype == np.float64
    energy = kernel**2
    assert energy[4, 4] / energy.sum() > 0.95
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-12)  # zero phase: no shift of the noise
    # scaled to the flat-region std, exactly
    assert np.sqrt(energy.sum()) == pytest.approx(flat_region_sigma(image, block=16), rel=1e-9)
    assert np.sqrt(energy.sum()) == pytest.approx(2.0, rel=0.1)


def test_white_noise_through_the_kernel_is_correlated_like_the_image_noise():
    from scipy.ndimage import convolve

    rng = np.random.default_rng(1)
    correlated = 2.0 * _correlated(rng, (1, 256, 256), 1.0)  # lag-1 correlation 0.78
    kernel = flat_region_noise_kernel(_anatomy() + correlated)
    # the square root of the spectrum of noise made by a Gaussian filter of std 1 is that filter: mean r**2 of
    # kernel**2 is 1 (0.81 here); the spectrum itself (the autocorrelation) would be twice as wide (1.58)
    rows, cols = np.mgrid[-4:5, -4:5]
    assert 0.6 < ((rows**2 + cols**2) * kernel**2).sum() / (kernel**2).sum() < 1.2
    made = convolve(rng.normal(0.0, 1.0, (256, 256)), kernel)
    assert _lag1(made) == pytest.approx(_lag1(correlated[0]), abs=0.1)  # 0.70 vs 0.78 (the window smooths the spectrum)
    assert made.std() == pytest.approx(correlated.std(), rel=0.15)
    white = convolve(rng.normal(0.0, 1.0, (256, 256)), flat_region_noise_kernel(rng.normal(0.0, 2.0, (1, 256, 256))))
    assert abs(_lag1(white)) < 0.05


def test_noise_kernel_takes_2d_and_torch_images_and_checks_its_arguments():
    import torch

    rng = np.random.default_rng(2)
    image = rng.normal(0.0, 1.0, (64, 48))
    kernel = flat_region_noise_kernel(image, size=5)
    assert kernel.shape == (5, 5)
    np.testing.assert_array_equal(kernel, flat_region_noise_kernel(image[None], size=5))
    np.testing.assert_allclose(flat_region_noise_kernel(torch.from_numpy(image), size=5), kernel)
    assert not flat_region_noise_kernel(np.full((1, 32, 32), 7.0)).any()  # no noise to read: a zero kernel
    for kwargs, match in [({"block": 15}, "block must be even"), ({"size": 4}, "size odd"),
                          ({"size": 17}, "size odd and at most block"), ({"quantile": 0.0}, "quantile"),
                          ({"quantile": 1.0}, "quantile must lie in")]:
        with pytest.raises(ValueError, match=match):
            flat_region_noise_kernel(image, **kwargs)
    with pytest.raises(ValueError, match="at least 16 x 16"):
        flat_region_noise_kernel(np.zeros((1, 8, 64)))
