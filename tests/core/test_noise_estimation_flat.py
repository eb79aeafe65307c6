"""Noise std from the flattest blocks reads correlated noise that the finest-detail estimate misses."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from medden.core.noise_estimation import estimate_noise_sigma, flat_region_sigma


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
