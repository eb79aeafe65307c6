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


def _volume(depth=4):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:32, :40]
    base = 0.2 + 0.5 * (((yy - 16) ** 2 + (xx - 20) ** 2) < 120)
    clean = np.repeat(base[..., None], depth, axis=-1)
    return (clean + rng.normal(0, 0.08, clean.shape)).astype(np.float32)


@pytest.mark.parametrize("name", ["general_denoiser", "tv"])
def test_an_h_w_d_volume_without_a_channel_axis_is_refused_not_guessed(name):
    denoiser = make_denoiser(name, device="cpu") if name != "tv" else make_denoiser(name)
    with pytest.raises(ValueError, match=r"\(32, 40, 4\) is ambiguous.*image\[None\] for a \(1, H, W, D\) volume"):
        denoiser(_volume())


@pytest.mark.parametrize("name", ["general_denoiser", "general_denoiser_v3", "tv"])
def test_package_layouts_are_accepted_and_keep_their_shape(name):
    denoiser = make_denoiser(name, device="cpu") if name != "tv" else make_denoiser(name)
    volume = _volume()[None]
    before = volume.copy()
    out = denoiser(volume)
    np.testing.assert_array_equal(volume, before)
    assert out.shape == volume.shape and out.dtype == np.float32
    assert np.mean((out - volume) ** 2) > 1e-5
    plane = volume[0, ..., 0]
    np.testing.assert_allclose(denoiser(plane), denoiser(plane[None])[0], atol=1e-6)
    assert denoiser(plane).shape == plane.shape


def test_classical_volumes_are_denoised_slice_by_slice():
    denoiser = make_denoiser("tv")
    volume = _volume(3)[None]
    out = denoiser(volume)
    for k in range(3):
        np.testing.assert_allclose(out[..., k], denoiser(volume[..., k]), atol=1e-6)
    assert denoiser.weight == denoiser.denoiser.weight  # attributes read through


def test_rank_and_channel_count_errors_name_the_shape():
    denoiser = make_denoiser("tv")
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4, 5, 6\)"):
        denoiser(np.zeros((2, 3, 4, 5, 6), np.float32))
    with pytest.raises(ValueError, match=r"C = 1 or 3, got C = 2"):
        denoiser(np.zeros((2, 8, 8, 3), np.float32))


def test_a_2_5d_bundle_never_takes_colour_channels_for_neighbouring_slices():
    """Each channel of an RGB image (or of a multi-channel volume) is its own grey volume: the
    result per channel is exactly that channel denoised alone, whatever the other channels hold."""
    from medden.bundle import load_bundle
    from medden.bundle.bundle import sees_neighbouring_slices

    bundle = load_bundle("general_denoiser_v3", "cpu", backend="torch")
    assert sees_neighbouring_slices(bundle.inferer)
    image = _rgb()
    out = bundle.denoise(image)
    for c in range(3):
        np.testing.assert_allclose(out[c], bundle.denoise(image[c : c + 1])[0], atol=1e-6)
    volume = np.stack([_volume(4), 0.5 * _volume(4)[::-1]])  # two unrelated channels of a (2, H, W, 4) volume
    out = bundle.denoise(volume)
    for c in range(2):
        np.testing.assert_allclose(out[c], bundle.denoise(volume[c : c + 1])[0], atol=1e-6)
