"""Diagnostic fidelity measures: method-noise correlation and small-structure CNR."""

import numpy as np
import pytest

from medden.metrics.fidelity import contrast_to_noise, find_small_structures, method_noise_correlation


def _phantom(size=64):
    """A smooth ramp with one bright and one dark 3-pixel blob."""
    yy, xx = np.mgrid[:size, :size]
    image = 0.3 + 0.2 * xx / size
    image[(yy - 20) ** 2 + (xx - 40) ** 2 <= 9] = 0.9
    image[(yy - 44) ** 2 + (xx - 24) ** 2 <= 9] = 0.05
    return image[None].astype(np.float32)


def test_small_structures_are_found_where_they_are():
    structures = find_small_structures(_phantom())
    assert np.allclose(np.argwhere(structures.bright).mean(0), (20, 40), atol=1)
    assert np.allclose(np.argwhere(structures.dark).mean(0), (44, 24), atol=1)
    assert not (structures.bright & structures.bright_ring).any()


def test_small_structures_refuse_a_too_small_image():
    with pytest.raises(ValueError, match="too small for margin"):
        find_small_structures(np.zeros((1, 20, 20), np.float32))


def test_cnr_and_contrast_kept_tell_a_blurred_output_from_a_sharp_one():
    from scipy.ndimage import gaussian_filter

    clean = _phantom()
    noisy = clean + np.random.default_rng(0).normal(0, 0.05, clean.shape).astype(np.float32)
    blurred = gaussian_filter(clean, (0, 3, 3))
    sharp = contrast_to_noise(clean + 0.01 * (noisy - clean), clean)
    washed = contrast_to_noise(blurred, clean)
    assert sharp["contrast_kept_bright"] == pytest.approx(1.0, abs=0.05)
    assert washed["contrast_kept_bright"] < 0.6 and washed["contrast_kept_dark"] < 0.6
    assert contrast_to_noise(noisy, clean)["cnr_bright"] < sharp["cnr_bright"]
    assert contrast_to_noise(clean, clean)["cnr_dark"] == float("inf")


def test_method_noise_correlation_is_zero_for_pure_noise_removal_and_high_for_removed_anatomy():
    clean = _phantom()
    noise = np.random.default_rng(1).normal(0, 0.05, clean.shape).astype(np.float32)
    assert abs(method_noise_correlation(clean + noise, clean, clean)) < 0.05
    from scipy.ndimage import gaussian_filter

    over_smoothed = gaussian_filter(clean + noise, (0, 4, 4))
    assert method_noise_correlation(clean + noise, over_smoothed, clean) > 0.2
    with pytest.raises(ValueError, match="one shape"):
        method_noise_correlation(clean, clean, clean[:, :10])
