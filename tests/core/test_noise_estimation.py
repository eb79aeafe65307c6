"""No-reference noise and quality figures against known noise levels and reference formulas."""

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medden.core.noise_estimation import (
    MIN_BACKGROUND_VOXELS,
    edge_preservation,
    estimate_noise_sigma,
    find_background,
    residual_whiteness,
    rician_background_sigma,
    wavelet_noise_sigma,
)
from medden.transforms import RandRicianSigmaNoise

SIGMAS = (0.01, 0.05, 0.1)
RAYLEIGH_STD_FACTOR = math.sqrt(2 - math.pi / 2)  # std of Rayleigh(sigma) / sigma ~ 0.655


def smooth_image(h: int = 128, w: int = 128) -> np.ndarray:
    """A smooth (H, W) image in about [0.1, 1]: a slow sinusoid on a ramp."""
    yy, xx = np.mgrid[:h, :w] / 64.0
    return 0.5 + 0.3 * np.sin(2 * np.pi * 0.7 * xx) * np.cos(2 * np.pi * 0.5 * yy) + 0.1 * xx


def phantom(h: int = 128, w: int = 128) -> np.ndarray:
    """A (H, W) unit-intensity disc with darker inserts in zero background (air)."""
    yy, xx = np.mgrid[:h, :w]
    img = np.zeros((h, w))
    img[(yy - 64) ** 2 + (xx - 60) ** 2 < 40**2] = 1.0
    img[50:70, 50:60] = 0.4
    img[80:90, 70:100] = 0.7
    return img


def as_container(arr: np.ndarray, kind: str):
    return torch.as_tensor(arr) if kind == "torch" else arr


# ---------------------------------------------------------------- wavelet_noise_sigma


@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_wavelet_sigma_recovers_gaussian_sigma_on_a_smooth_image(sigma, dtype):
    rng = np.random.default_rng(0)
    noisy = smooth_image()[None, None] + rng.normal(0, sigma, (1, 1, 128, 128))
    estimate = wavelet_noise_sigma(torch.as_tensor(noisy, dtype=dtype))
    assert estimate.shape == (1,) and estimate.dtype == dtype
    assert estimate.item() == pytest.approx(sigma, rel=0.1)


def test_wavelet_sigma_gives_each_image_of_a_batch_its_own_sigma():
    rng = np.random.default_rng(1)
    sigmas = np.array([0.02, 0.1, 0.05])
    noisy = smooth_image()[None, None] + sigmas[:, None, None, None] * rng.normal(size=(3, 2, 128, 128))
    estimate = wavelet_noise_sigma(torch.as_tensor(noisy, dtype=torch.float32))
    assert estimate.shape == (3,)
    np.testing.assert_allclose(estimate.numpy(), sigmas, rtol=0.1)


def test_wavelet_sigma_is_the_mad_of_pywavelets_haar_diagonal_detail():
    pywt = pytest.importorskip("pywt")
    rng = np.random.default_rng(2)
    image = rng.normal(size=(31, 42))  # odd height: the last row goes; 15 x 21 details (odd: one median)
    _, (_, _, diagonal) = pywt.dwt2(image[:30], "haar")
    reference = np.median(np.abs(diagonal)) / 0.6745
    torch_image = torch.as_tensor(image)[None, None]
    assert wavelet_noise_sigma(torch_image).item() == pytest.approx(reference, rel=1e-12)


def test_wavelet_sigma_ignores_gradients_and_scripts():
    images = torch.rand(2, 1, 17, 16, requires_grad=True)
    estimate = wavelet_noise_sigma(images)
    assert not estimate.requires_grad
    scripted = torch.jit.script(wavelet_noise_sigma)
    torch.testing.assert_close(scripted(images), estimate)


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (torch.zeros(1, 8, 8), ValueError, r"\(B, C, H, W\) batch, got shape \[1, 8, 8\]"),
        (torch.zeros(1, 1, 8, 8, dtype=torch.int64), TypeError, "floating tensor, got torch.int64"),
        (torch.zeros(1, 1, 1, 8), ValueError, "H, W >= 2"),
        (torch.tensor([[[[0.0, math.inf], [math.nan, 1.0]]]]), ValueError, "2 non-finite value"),
    ],
)
def test_wavelet_sigma_rejects_bad_input(images, error, match):
    with pytest.raises(error, match=match):
        wavelet_noise_sigma(images)


# ---------------------------------------------------------------- estimate_noise_sigma


@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_estimate_noise_sigma_recovers_gaussian_sigma(sigma, kind):
    rng = np.random.default_rng(3)
    volume = smooth_image()[None, ..., None] + rng.normal(0, sigma, (1, 128, 128, 6))
    assert estimate_noise_sigma(as_container(volume, kind)) == pytest.approx(sigma, rel=0.1)
    assert estimate_noise_sigma(as_container(volume[..., 0], kind)) == pytest.approx(sigma, rel=0.1)


def test_estimate_noise_sigma_uses_at_most_max_slices_evenly_spaced_and_every_channel():
    rng = np.random.default_rng(4)
    slice_sigmas = np.array([0.01, 0.08, 0.08, 0.08, 0.01])  # only the end slices are quiet
    volume = smooth_image(64, 64)[None, ..., None] + slice_sigmas * rng.normal(size=(1, 64, 64, 5))
    assert estimate_noise_sigma(volume, max_slices=2) == pytest.approx(0.01, rel=0.15)  # slices 0 and 4
    assert estimate_noise_sigma(volume) == pytest.approx(slice_sigmas.mean(), rel=0.1)
    two_channels = np.stack([smooth_image(64, 64)] * 2)[..., None] + np.array([0.02, 0.06])[:, None, None, None] * (
        rng.normal(size=(2, 64, 64, 3))
    )
    assert estimate_noise_sigma(two_channels) == pytest.approx(0.04, rel=0.1)


def test_estimate_noise_sigma_rejects_bad_input():
    with pytest.raises(ValueError, match="channel-first"):
        estimate_noise_sigma(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="1 non-finite"):
        estimate_noise_sigma(np.pad(np.full((1, 1, 1), np.nan), ((0, 0), (0, 7), (0, 7))))
    with pytest.raises(ValueError, match="max_slices must be an int >= 1, got 0"):
        estimate_noise_sigma(np.zeros((1, 8, 8)), max_slices=0)


# ---------------------------------------------------------------- rician_background_sigma


def rician_phantom(sigma: float, seed: int = 0) -> np.ndarray:
    clean = np.repeat(phantom()[None, ..., None], 3, axis=-1).astype(np.float32)
    return RandRicianSigmaNoise(sigma).set_random_state(seed)(clean)


@pytest.mark.parametrize("sigma", (0.02, 0.05, 0.1))
def test_rician_background_sigma_recovers_sigma_where_the_naive_std_is_off_by_rayleigh(sigma):
    noisy = rician_phantom(sigma)
    air = find_background(noisy)
    assert air.shape == noisy.shape[1:] and not (air & (phantom()[..., None] > 0)).any()
    naive = float(noisy[:, air].std())
    assert naive / sigma == pytest.approx(RAYLEIGH_STD_FACTOR, rel=0.05)
    assert rician_background_sigma(noisy) == pytest.approx(sigma, rel=0.1)
    true_air = np.broadcast_to(phantom()[..., None] == 0, air.shape)
    assert rician_background_sigma(noisy, background=true_air) == pytest.approx(sigma, rel=0.1)


def test_rician_background_sigma_accepts_torch_and_a_channel_axis_on_the_mask():
    noisy = rician_phantom(0.05)[..., 0]
    air = torch.as_tensor(phantom() == 0)[None].float()
    assert rician_background_sigma(torch.as_tensor(noisy), background=air) == pytest.approx(0.05, rel=0.1)


def test_rician_background_sigma_refuses_what_it_cannot_measure():
    rng = np.random.default_rng(5)
    enclosed = 1.0 + 0.01 * rng.random((1, 64, 64))
    enclosed[:, 20:40, 20:40] = 0.1  # a dark insert that touches no border is not air
    with pytest.raises(ValueError, match="only 0 background .* found, need at least"):
        rician_background_sigma(enclosed)
    signal_in_air = np.ones((1, 64, 64))
    signal_in_air[:, :, :32] = 0.2 + 0.01 * rng.random((64, 32))  # dark, but signal, not noise
    with pytest.raises(ValueError, match=r"does not look like Rayleigh noise: std/mean 0\.01"):
        rician_background_sigma(signal_in_air)
    left = np.broadcast_to(np.arange(64) < 28, (64, 64))
    assert rician_background_sigma(signal_in_air, background=left) > 0  # a given mask is trusted
    noisy = rician_phantom(0.05)[..., 0]
    few = np.zeros(noisy.shape[1:], bool)
    few[:5, :5] = True
    with pytest.raises(ValueError, match=f"only 25 .* in the background mask, need at least {MIN_BACKGROUND_VOXELS}"):
        rician_background_sigma(noisy, background=few)
    zero_filled = noisy * (phantom() > 0)  # the air masked to 0, as in nibabel's example4d
    with pytest.raises(ValueError, match="100% of the background voxels are exactly 0"):
        rician_background_sigma(zero_filled)


def test_rician_background_sigma_rejects_bad_input():
    image = np.ones((1, 16, 16))
    with pytest.raises(ValueError, match="non-negative magnitude image, got a minimum of -1"):
        rician_background_sigma(-image)
    with pytest.raises(ValueError, match="channel-first"):
        rician_background_sigma(image[0])
    with pytest.raises(ValueError, match="non-finite"):
        rician_background_sigma(np.where(np.eye(16) > 0, np.inf, 1.0)[None])
    with pytest.raises(ValueError, match=r"spatial shape \(16, 16\)"):
        rician_background_sigma(image, background=np.ones((8, 8)))
    with pytest.raises(ValueError, match="only 0/1"):
        rician_background_sigma(image, background=np.full((16, 16), 0.5))
    with pytest.raises(ValueError, match="two distinct non-zero intensities"):
        rician_background_sigma(image)


# ---------------------------------------------------------------- residual_whiteness


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_residual_whiteness_is_low_for_white_noise_and_high_for_lost_structure(kind):
    rng = np.random.default_rng(6)
    clean = phantom()[None]
    noisy = clean + rng.normal(0, 0.05, clean.shape)
    perfect = residual_whiteness(as_container(noisy, kind), as_container(clean, kind))
    blurred = residual_whiteness(as_container(noisy, kind), as_container(gaussian_filter(noisy, (0, 3, 3)), kind))
    assert 0 <= perfect < 0.05 < 0.2 < blurred <= 1
    assert residual_whiteness(noisy, noisy - smooth_image()[None]) > 0.9  # all structure, no noise


def test_residual_whiteness_matches_the_autocorrelation_formula():
    residual = np.random.default_rng(7).normal(size=(1, 20, 30))
    r = residual - residual.mean()
    energy = np.sum(r**2)
    lags = [abs(np.sum(r[:, :-1] * r[:, 1:])) / energy, abs(np.sum(r[:, :, :-1] * r[:, :, 1:])) / energy]
    assert residual_whiteness(residual, np.zeros_like(residual), max_lag=1) == pytest.approx(np.mean(lags))


def test_residual_whiteness_rejects_bad_input():
    image = np.random.default_rng(8).random((1, 8, 8))
    with pytest.raises(ValueError, match="whiteness is undefined"):
        residual_whiteness(image, image)
    with pytest.raises(ValueError, match=r"shapes differ: \(1, 8, 8\) vs \(1, 8, 9\)"):
        residual_whiteness(image, np.zeros((1, 8, 9)))
    with pytest.raises(ValueError, match="max_lag must be below the in-plane size"):
        residual_whiteness(image, np.zeros_like(image), max_lag=8)
    with pytest.raises(TypeError, match="max_lag must be an int"):
        residual_whiteness(image, np.zeros_like(image), max_lag=1.5)


# ---------------------------------------------------------------- edge_preservation


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_edge_preservation_is_one_for_identity_and_falls_with_blur(kind):
    rng = np.random.default_rng(9)
    noisy = phantom()[None, ..., None] + rng.normal(0, 0.05, (1, 128, 128, 2))

    def score(blur: float) -> float:
        blurred = gaussian_filter(noisy, (0, blur, blur, 0))
        return edge_preservation(as_container(noisy, kind), as_container(blurred, kind))

    assert edge_preservation(noisy, noisy) == pytest.approx(1.0)
    mild, heavy = score(0.7), score(3.0)
    assert 0.85 < mild < 1.0 and heavy < 0.65 and mild > heavy


def test_edge_preservation_rejects_bad_input():
    image = phantom()[None]
    with pytest.raises(ValueError, match="no edges"):
        edge_preservation(np.ones((1, 16, 16)), np.ones((1, 16, 16)))
    with pytest.raises(ValueError, match="shapes differ"):
        edge_preservation(image, image[:, :64])
    with pytest.raises(ValueError, match=r"edge_fraction must be a finite number in \(0, 1\], got 0"):
        edge_preservation(image, image, edge_fraction=0)
    with pytest.raises(ValueError, match="smoothing must be a finite number >= 0"):
        edge_preservation(image, image, smoothing=-1.0)
    with pytest.raises(ValueError, match="non-finite"):
        edge_preservation(image, np.full_like(image, np.nan))


def test_report_estimator_skips_constant_slices():
    rng = np.random.default_rng(5)
    volume = np.zeros((1, 48, 48, 6), np.float32)
    volume[..., 2:4] = rng.normal(0.5, 0.05, (1, 48, 48, 2))  # only two slices hold signal and noise
    assert estimate_noise_sigma(volume) == pytest.approx(0.05, rel=0.1)
    assert estimate_noise_sigma(np.zeros((1, 16, 16, 3), np.float32)) == 0.0
