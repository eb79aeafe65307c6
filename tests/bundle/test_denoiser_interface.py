"""One callable interface for learned and classical denoisers."""

import numpy as np
import pytest

from medden.bundle.denoiser_interface import BundleDenoiser, make_denoiser


def _rgb():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :48]
    base = 0.3 + 0.4 * (((yy - 20) ** 2 + (xx - 24) ** 2) < 150)
    return np.stack([base, 0.8 * base, 0.5 * base]).astype(np.float32) + rng.normal(0, 0.08, (3, 40, 48)).astype(
        np.float32)


def test_grey_bundle_denoises_rgb_channel_by_channel_and_leaves_the_input_alone():
    denoiser = make_denoiser("general_denoiser", device="cpu")
    assert isinstance(denoiser, BundleDenoiser) and denoiser.name == "general_denoiser"
    image = _rgb()
    before = image.copy()
    out = denoiser(image)
    np.testing.assert_array_equal(image, before)
    assert out.shape == image.shape and out.dtype == np.float32
    # the channels are denoised independently: one channel alone gives the same result,
    # up to the intensity scaling, which is measured over the whole image
    one = denoiser(image[1:2])
    assert np.corrcoef(one.ravel(), out[1].ravel())[0, 1] > 0.99
    assert np.mean((out - before) ** 2) > 1e-5  # it changed something


def test_rgb_bundle_refuses_grey_images():
    denoiser = BundleDenoiser("recorruption_camelyon_gaussian", device="cpu")
    assert denoiser.bundle.image_channels == 3
    assert denoiser(_rgb()).shape == (3, 40, 48)
    with pytest.raises(ValueError, match="takes 3-channel images, got 1 channel"):
        denoiser(_rgb()[:1])


def test_classical_names_and_unknown_names():
    assert make_denoiser("tv").name == "TV"
    with pytest.raises(FileNotFoundError, match=r"unknown bundle 'wiener'.*Classical denoisers: bm3d, nlm"):
        make_denoiser("wiener")
