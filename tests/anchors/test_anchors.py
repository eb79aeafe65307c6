"""Classical anchors: the callable denoiser interface, the Anscombe route, the registry and CS-MRI."""

import warnings

import numpy as np
import pytest

from medden.anchors import (
    CLASSICAL_DENOISERS,
    AnscombeDenoiser,
    BM3DDenoiser,
    NLMDenoiser,
    RicianNLMDenoiser,
    TVDenoiser,
    classical_denoiser,
    l1_wavelet_recon,
    nlm_denoise,
    with_anscombe,
)
from medden.transforms import RadialBernoulliMask, image_to_kspace, reconstruct

SIZE = 48
SIGMA = 0.08
GAUSSIAN = ["nlm", "bm3d", "tv"]


def psnr(estimate, clean):
    return 10 * np.log10(1.0 / np.mean((np.asarray(estimate, np.float64) - clean) ** 2))


def smooth_image(channels=1, size=SIZE):
    """A blob on a ramp in [0.2, 0.8], ``(channels, size, size)`` float32; RGB channels differ."""
    yy, xx = np.mgrid[:size, :size] / (size - 1)
    grey = 0.2 + 0.3 * xx + 0.3 * np.exp(-((yy - 0.5) ** 2 + (xx - 0.4) ** 2) / 0.05)
    return (grey[None] * np.array([1.0, 0.85, 0.7][:channels])[:, None, None]).astype(np.float32)


def gaussian_noisy(clean, sigma=SIGMA, seed=0):
    rng = np.random.default_rng(seed)
    return (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)


def rician_phantom(sigma, size=64, seed=0):
    """A bright disc in dark air, and its magnitude image ``|x + sigma (n1 + i n2)|``."""
    yy, xx = np.mgrid[:size, :size] - size / 2
    clean = np.where(yy**2 + xx**2 < (size / 3) ** 2, 0.5 + 0.3 * (xx / size), 0.0)[None]
    rng = np.random.default_rng(seed)
    noisy = np.hypot(clean + sigma * rng.standard_normal(clean.shape), sigma * rng.standard_normal(clean.shape))
    return clean, noisy.astype(np.float32)


@pytest.mark.parametrize("name", GAUSSIAN)
@pytest.mark.parametrize("channels", [1, 3])
def test_gaussian_denoisers_improve_psnr_and_keep_the_interface(name, channels):
    clean = smooth_image(channels)
    noisy = gaussian_noisy(clean)
    before = noisy.copy()
    denoiser = classical_denoiser(name, sigma=SIGMA)
    out = denoiser(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert psnr(out, clean) > psnr(noisy, clean) + 5.0
    np.testing.assert_array_equal(noisy, before)  # the input is untouched
    assert isinstance(denoiser.name, str) and denoiser.name


@pytest.mark.parametrize("name", GAUSSIAN)
def test_sigma_none_is_estimated_per_image(name):
    clean = smooth_image()
    denoiser = classical_denoiser(name)
    for sigma in (0.04, 0.1):
        assert denoiser.noise_sigma(gaussian_noisy(clean, sigma)) == pytest.approx(sigma, rel=0.15)
    noisy = gaussian_noisy(clean)
    assert psnr(denoiser(noisy), clean) > psnr(noisy, clean) + 5.0
    assert classical_denoiser(name, sigma=0.3).noise_sigma(noisy) == 0.3


@pytest.mark.parametrize("name", GAUSSIAN + ["rician_nlm"])
@pytest.mark.parametrize("shape", [(SIZE, SIZE), (2, SIZE, SIZE), (1, 1, SIZE, SIZE)])
def test_bad_shapes_are_refused(name, shape):
    with pytest.raises(ValueError, match=r"image must be a grey \(1, H, W\)"):
        classical_denoiser(name, sigma=0.1)(np.zeros(shape, np.float32))


def test_bad_values_are_refused():
    image = smooth_image()
    image[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        NLMDenoiser(0.1)(image)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0, got -1.0"):
        TVDenoiser(sigma=-1.0)
    with pytest.raises(ValueError, match="weight"):
        TVDenoiser(weight=0.0)


def test_tv_weight_follows_sigma_unless_given():
    from skimage.restoration import denoise_tv_chambolle

    noisy = gaussian_noisy(smooth_image())
    reference = denoise_tv_chambolle(noisy[0].astype(np.float64), weight=0.75 * 0.1)
    np.testing.assert_allclose(TVDenoiser(sigma=0.1)(noisy)[0], reference, atol=1e-6)
    np.testing.assert_allclose(TVDenoiser(sigma=0.1, weight=0.2)(noisy), TVDenoiser(sigma=0.5, weight=0.2)(noisy))


def test_at_sigma_returns_a_copy():
    nlm = NLMDenoiser()
    fixed = nlm.at_sigma(0.2)
    assert fixed.sigma == 0.2 and nlm.sigma is None and isinstance(fixed, NLMDenoiser)


def test_function_forms_match_the_classes():
    noisy = gaussian_noisy(smooth_image())
    np.testing.assert_array_equal(nlm_denoise(noisy, SIGMA), NLMDenoiser(SIGMA)(noisy))
    np.testing.assert_array_equal(nlm_denoise(noisy), NLMDenoiser()(noisy))


def test_rician_nlm_beats_the_noisy_input_and_gaussian_nlm():
    clean, noisy = rician_phantom(0.06)
    before = noisy.copy()
    rician = RicianNLMDenoiser()
    assert rician.noise_sigma(noisy) == pytest.approx(0.06, rel=0.1)  # measured in the air
    out = rician(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    np.testing.assert_array_equal(noisy, before)
    assert psnr(out, clean) > psnr(noisy, clean) + 6.0
    # the Rician model removes the bias of dark magnitude pixels that a Gaussian model keeps
    assert psnr(out, clean) > psnr(RicianNLMDenoiser(0.06, rician=False)(noisy), clean) + 2.0


def test_rician_nlm_without_air_uses_the_wavelet_estimate_and_refuses_rgb():
    noisy = gaussian_noisy(smooth_image(), 0.05)
    assert RicianNLMDenoiser().noise_sigma(noisy) == pytest.approx(0.05, rel=0.15)
    with pytest.raises(ValueError, match=r"grey \(1, H, W\) image, got shape \(3, 48, 48\); pass one channel"):
        RicianNLMDenoiser(0.05)(smooth_image(3))


def test_rician_nlm_is_deterministic_on_one_plane():
    """dipy pads by reflection and would read past a one-slice volume (garbage, overflow warnings)."""
    noisy = rician_phantom(0.06, size=32)[1]
    denoiser = RicianNLMDenoiser(0.06)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = denoiser(noisy)
        junk = [np.full(n, 1e300) for n in (32 * 32, 44 * 44, 44 * 44 * 13)]  # freed memory a stray read finds
        del junk
        np.testing.assert_array_equal(denoiser(noisy), first)
    with pytest.raises(ValueError, match="at least 7x7 pixels, got 6x40"):
        denoiser(np.ones((1, 6, 40), np.float32))


@pytest.mark.parametrize("channels", [1, 3])
def test_anscombe_denoiser_improves_poisson_images(channels):
    clean, peak = smooth_image(channels), 20.0
    noisy = (np.random.default_rng(1).poisson(clean * peak) / peak).astype(np.float32)
    before = noisy.copy()
    denoiser = AnscombeDenoiser(NLMDenoiser(), peak)
    out = denoiser(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32 and denoiser.name == "NLM+Anscombe"
    assert psnr(out, clean) > psnr(noisy, clean) + 5.0
    assert abs(float(out.mean() - clean.mean())) < 0.01  # the unbiased inverse keeps the mean
    np.testing.assert_array_equal(noisy, before)


def test_anscombe_denoiser_matches_with_anscombe_and_ignores_the_inner_sigma():
    clean, peak, read = smooth_image(), 30.0, 0.02
    rng = np.random.default_rng(2)
    noisy = (rng.poisson(clean * peak) / peak + rng.normal(0, read, clean.shape)).astype(np.float32)
    from_function = with_anscombe(nlm_denoise, peak, read)
    from_object = AnscombeDenoiser(NLMDenoiser(sigma=0.5), peak, read_sigma=read)
    np.testing.assert_array_equal(from_function(noisy), from_object(noisy))  # both at sigma 1
    assert from_function.name == from_object.name == "NLM+Anscombe"
    assert AnscombeDenoiser(TVDenoiser(), peak, name="TV (VST)").name == "TV (VST)"
    with pytest.raises(ValueError, match="peak"):
        AnscombeDenoiser(NLMDenoiser(), 0.0)
    with pytest.raises(TypeError, match="denoiser must be"):
        AnscombeDenoiser("nlm", peak)


def test_registry_builds_by_name_and_lists_names_on_error():
    assert set(CLASSICAL_DENOISERS) == {"nlm", "bm3d", "tv", "rician_nlm"}
    tv = classical_denoiser("tv", sigma=0.1, weight=0.05)
    assert isinstance(tv, TVDenoiser) and (tv.sigma, tv.weight) == (0.1, 0.05)
    assert isinstance(classical_denoiser("bm3d"), BM3DDenoiser)
    assert {classical_denoiser(n).name for n in CLASSICAL_DENOISERS} == {"NLM", "BM3D", "TV", "Rician NLM"}
    with pytest.raises(ValueError, match=r"unknown classical denoiser 'wiener'.*\['bm3d', 'nlm', 'rician_nlm', 'tv'\]"):
        classical_denoiser("wiener")


def _undersampled_phantom(size=64, seed=0):
    """A head-like phantom in air (an ellipse with a gradient and two inner blobs), its k-space
    ``(1, H, W, 2)`` and a radial Bernoulli mask keeping about 30% of it."""
    yy, xx = (np.mgrid[:size, :size] - (size - 1) / 2) / size
    clean = np.where((yy / 0.4) ** 2 + (xx / 0.3) ** 2 < 1, 0.5 + 0.4 * yy, 0.0)
    clean[(yy / 0.12) ** 2 + ((xx - 0.1) / 0.06) ** 2 < 1] = 0.2
    clean[((yy + 0.15) / 0.08) ** 2 + ((xx + 0.1) / 0.08) ** 2 < 1] = 0.9
    clean = clean[None].astype(np.float32)
    mask_fn = RadialBernoulliMask(edge_probability=0.2)
    mask_fn.set_random_state(seed)
    return clean, np.asarray(image_to_kspace(clean)), mask_fn((size, size)).mask


def test_l1_wavelet_recon_beats_zero_filling():
    clean, kspace, mask = _undersampled_phantom()
    zero_filled = np.asarray(reconstruct(kspace * mask[None, ..., None]))  # the project's convention
    complex_kspace = kspace[0, ..., 0] + 1j * kspace[0, ..., 1]
    out = l1_wavelet_recon(complex_kspace, mask)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert psnr(out, clean) > psnr(zero_filled, clean) + 2.0
    # one iteration from zero with step 1 is the zero-filled image, soft-thresholded by lamda
    first = l1_wavelet_recon(complex_kspace, mask, lamda=1e-12, max_iter=1)
    np.testing.assert_allclose(first, zero_filled, atol=1e-5)
    # the default lamda scales with the data, so the reconstruction does too
    np.testing.assert_allclose(l1_wavelet_recon(100 * complex_kspace, mask, max_iter=20) / 100,
                               l1_wavelet_recon(complex_kspace, mask, max_iter=20), atol=1e-4)


def test_l1_wavelet_recon_refuses_bad_input():
    _, kspace, mask = _undersampled_phantom()
    complex_kspace = kspace[0, ..., 0] + 1j * kspace[0, ..., 1]
    with pytest.raises(ValueError, match=r"kspace must be a complex \(H, W\) array"):
        l1_wavelet_recon(kspace, mask)
    with pytest.raises(ValueError, match="mask must be an array of 0/1"):
        l1_wavelet_recon(complex_kspace, mask[None])
    with pytest.raises(ValueError, match="lamda"):
        l1_wavelet_recon(complex_kspace, mask, lamda=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        l1_wavelet_recon(complex_kspace, mask, max_iter=0)


def test_missing_optional_packages_are_named_with_the_install_command(monkeypatch):
    import sys

    from medden.anchors import BM3DDenoiser, RicianNLMDenoiser

    monkeypatch.setitem(sys.modules, "bm3d", None)
    monkeypatch.setitem(sys.modules, "dipy.denoise.nlmeans", None)
    with pytest.raises(ModuleNotFoundError, match=r"BM3D needs bm3d: pip install 'medden\[bench\]'"):
        BM3DDenoiser()
    with pytest.raises(ModuleNotFoundError, match="RicianNLMDenoiser needs dipy: pip install dipy"):
        RicianNLMDenoiser(sigma=0.1)(np.zeros((1, 16, 16), np.float32))


def test_dipy_nlm_on_gaussian_noise_is_not_biased_by_negative_values():
    # dipy biases values below zero; Gaussian noise around dark air makes many of them
    from medden.anchors import RicianNLMDenoiser

    yy, xx = np.mgrid[:64, :64]
    clean = (0.6 * (((yy - 32) ** 2 + (xx - 32) ** 2) < 400)).astype(np.float32)[None]  # an object in air
    noisy = clean + np.random.default_rng(3).normal(0, 0.08, clean.shape).astype(np.float32)
    out = RicianNLMDenoiser(sigma=0.08, rician=False)(noisy)
    background = clean[0] == 0
    assert abs(float(out[0][background].mean())) < 0.02  # no offset in the air
    assert psnr(out, clean) > psnr(noisy, clean) + 6
