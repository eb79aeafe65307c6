"""Scanner-like noise: each transform's statistics against its physics, the NPS generator against
the CT physics, seeding, Noise2Noise pairs, dict twins and bad arguments."""

from functools import lru_cache

import numpy as np
import pytest
import torch

from medden.transforms import (
    CORRUPTIONS,
    NoisyPair,
    RandCTNoiseFromNPS,
    RandCTNoiseFromNPSd,
    RandDetectorBlurNoise,
    RandDetectorBlurNoised,
    RandLowDoseCTNoise,
    RandLowDoseCTNoised,
    RandMagnitudeMRNoise,
    RandMagnitudeMRNoised,
    filtered_back_project,
    magnitude_bias_corrected,
    make_corruption,
    parallel_beam_project,
    radial_power_spectrum,
)

from helpers import as_numpy, to_backend

# --- CT: a water disc (a 190 mm body at 2 mm pixels) with and without a dense (1000 HU) insert
SIDE, PIXEL_MM = 96, 2.0
_YY, _XX = np.mgrid[:SIDE, :SIDE] - (SIDE - 1) / 2
DISC = _XX**2 + _YY**2 < (0.45 * SIDE) ** 2
INSERT = (_XX - 22) ** 2 + _YY**2 < 8**2
ROIS = {  # (rows, columns)
    "centre": (slice(42, 54), slice(42, 54)),
    "periphery": (slice(40, 56), slice(7, 15)),  # inside the disc, near its left edge
    "insert": (slice(44, 52), slice(66, 74)),  # inside the dense insert
}
CT_CLASSES = {"physics": RandLowDoseCTNoise, "nps": RandCTNoiseFromNPS}


def _phantom(insert: bool) -> np.ndarray:
    """``(1, SIDE, SIDE)`` float32 slice in HU: air, water disc, optional dense insert."""
    hu = np.where(DISC, 0.0, -1000.0)
    if insert:
        hu = np.where(INSERT, 1000.0, hu)
    return hu.astype(np.float32)[None]


@lru_cache(maxsize=None)
def _ct_noise(kind: str, insert: bool, i0: float, count: int, filter_name: str = "shepp-logan",
              electronic_sigma: float = 0.0) -> np.ndarray:
    """``(count, SIDE, SIDE)`` noise realisations (output minus clean) of one CT transform."""
    transform = CT_CLASSES[kind](i0, pixel_mm=PIXEL_MM, filter_name=filter_name, electronic_sigma=electronic_sigma)
    transform.set_random_state(11)
    img = _phantom(insert)
    return np.stack([transform(img)[0] - img[0] for _ in range(count)])


def _roi_var(noise: np.ndarray, roi: str) -> float:
    rows, cols = ROIS[roi]
    return float(noise[:, rows, cols].var())


def _normalised_nps(noise: np.ndarray) -> torch.Tensor:
    """Radially averaged NPS of the central 48 x 48 region up to 0.5 cycles/pixel, mean 1."""
    centre = slice(24, 72)
    freqs, power = radial_power_spectrum(torch.as_tensor(noise[:, centre, centre]))
    power = power[freqs <= 0.5]
    return power / power.mean()


def test_projector_and_fbp_reconstruct_a_disc():
    disc = torch.as_tensor(DISC, dtype=torch.float32)[None]
    sinogram = parallel_beam_project(disc, 150)
    t = torch.arange(sinogram.shape[-1]) - (sinogram.shape[-1] - 1) / 2
    chord = 2 * torch.sqrt(torch.clamp((0.45 * SIDE) ** 2 - t**2, min=0))
    inner = t.abs() < 0.4 * SIDE
    assert (sinogram[0, :, inner] - chord[inner]).abs().max() < 1.5  # line integrals in pixels, every view
    torch.testing.assert_close(sinogram[0].sum(-1), disc.sum().expand(150), rtol=2e-3, atol=0)  # mass kept
    recon = filtered_back_project(sinogram, (SIDE, SIDE))[0]
    assert recon[40:56, 40:56].mean() == pytest.approx(1.0, abs=0.01)
    assert recon[:6, :6].abs().mean() < 0.02


def test_ct_physics_noise_is_unbiased_and_only_noise_is_added():
    noise = _ct_noise("physics", True, 5e4, 20)
    assert abs(noise[:, DISC].mean()) < 0.02 * noise[:, DISC].std()
    img = _phantom(True)
    nearly_noiseless = RandLowDoseCTNoise(1e13, pixel_mm=PIXEL_MM).set_random_state(0)(img)
    assert np.abs(nearly_noiseless - img).max() < 0.05  # HU: the clean image keeps its resolution


def test_ct_physics_variance_scales_as_one_over_i0():
    low, high = _ct_noise("physics", True, 5e4, 20), _ct_noise("physics", True, 5e5, 8)
    assert low[:, DISC].var() / high[:, DISC].var() == pytest.approx(10.0, rel=0.2)


def test_ct_physics_nps_is_ramp_like():
    nps = _normalised_nps(_ct_noise("physics", False, 5e4, 20)).numpy()
    smooth = np.convolve(nps, np.ones(3) / 3, mode="same")
    peak = int(np.argmax(smooth))
    assert nps[0] < 0.05 and nps[1] < 0.35 * smooth[peak]  # no power at DC, little near it
    assert nps[1] < smooth[3] < smooth[6] < smooth[peak]  # rising from DC
    assert 0.1 < peak / len(nps) * 0.5 < 0.4  # peak at mid frequency (cycles/pixel)
    assert smooth[-2] < 0.6 * smooth[peak]  # and falling towards Nyquist


def test_ct_physics_noise_follows_attenuation():
    plain, dense = _ct_noise("physics", False, 5e4, 20), _ct_noise("physics", True, 5e4, 20)
    assert _roi_var(plain, "centre") > 1.3 * _roi_var(plain, "periphery")  # longer chords through the centre
    assert _roi_var(dense, "insert") > 1.3 * _roi_var(plain, "insert")  # rays through the dense insert


def test_nps_generator_matches_physics_nps_shape():
    physics = _normalised_nps(_ct_noise("physics", False, 5e4, 20))
    generated = _normalised_nps(_ct_noise("nps", False, 5e4, 20))
    assert (physics - generated).norm() / physics.norm() < 0.12
    hann = _normalised_nps(_ct_noise("nps", False, 5e4, 20, "hann"))  # another kernel is told apart
    assert (physics - hann).norm() / physics.norm() > 0.3


@pytest.mark.parametrize("roi", sorted(ROIS))
def test_nps_generator_matches_physics_local_variance(roi):
    physics, generated = _ct_noise("physics", True, 5e4, 20), _ct_noise("nps", True, 5e4, 20)
    assert _roi_var(generated, roi) == pytest.approx(_roi_var(physics, roi), rel=0.25)


@pytest.mark.parametrize("i0, electronic_sigma, count", [(5e4, 0.0, 20), (5e5, 0.0, 8), (1e4, 30.0, 8)])
def test_nps_generator_matches_physics_absolute_level(i0, electronic_sigma, count):
    physics = _ct_noise("physics", True, i0, count, electronic_sigma=electronic_sigma)
    generated = _ct_noise("nps", True, i0, count, electronic_sigma=electronic_sigma)
    assert generated[:, DISC].std() == pytest.approx(physics[:, DISC].std(), rel=0.1)
    if electronic_sigma:  # electronic noise matters at low counts, in both
        quantum_only = _ct_noise("nps", True, i0, count)
        assert physics[:, DISC].std() > 1.2 * quantum_only[:, DISC].std()


def test_ct_noise_std_map_predicts_the_physics_and_follows_hu_units():
    physics = _ct_noise("physics", True, 5e4, 20)
    hu_map = RandCTNoiseFromNPS(5e4, pixel_mm=PIXEL_MM).noise_std_map(_phantom(True), i0=5e4)[0]
    for roi in ROIS:
        assert hu_map[ROIS[roi]].mean() ** 2 == pytest.approx(_roi_var(physics, roi), rel=0.25)
    scaled = RandCTNoiseFromNPS(5e4, pixel_mm=PIXEL_MM, hu_scale=2000.0, hu_offset=-1000.0)
    unit_map = scaled.noise_std_map((_phantom(True) + 1000.0) / 2000.0, i0=5e4)[0]  # image in [0, 1]
    np.testing.assert_allclose(unit_map * 2000.0, hu_map, rtol=1e-4)


# --- magnitude MR

def test_mr_single_coil_air_is_rayleigh():
    out = RandMagnitudeMRNoise(1.0, g_max_range=1.0).set_random_state(0)(np.zeros((1, 192, 192), np.float32))
    assert out.mean() == pytest.approx(np.sqrt(np.pi / 2), rel=0.02)  # the Rician noise floor
    assert out.std() == pytest.approx(np.sqrt(2 - np.pi / 2), rel=0.03)


@pytest.mark.parametrize("coils", [1, 4])
def test_mr_bright_signal_has_mean_a_and_local_std_sigma_g(coils):
    t = RandMagnitudeMRNoise(1.0, coils=coils, g_max_range=2.5).set_random_state(1)
    amplitude = 50.0
    out = t(np.full((1, 192, 192), amplitude, np.float32))[0]
    g = as_numpy(t.field.g_map)
    assert g.min() == pytest.approx(1.0, abs=1e-5) and g.max() == pytest.approx(2.5, abs=1e-5)
    np.testing.assert_allclose(as_numpy(t.last_sigma_map)[0], g * 1.0)
    assert out.mean() == pytest.approx(amplitude, rel=0.01)
    assert ((out - amplitude) / g).std() == pytest.approx(1.0, rel=0.03)
    low, high = g < 1.3, g > 2.0
    assert out[high].std() / out[low].std() == pytest.approx(g[high].mean() / g[low].mean(), rel=0.1)


@pytest.mark.parametrize("coils", [1, 4])
def test_mr_air_second_moment_is_noncentral_chi(coils):
    out = RandMagnitudeMRNoise(0.5, coils=coils, g_max_range=1.0).set_random_state(2)(np.zeros((1, 160, 160)))
    assert (out**2).mean() == pytest.approx(2 * coils * 0.5**2, rel=0.03)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_magnitude_bias_corrected_restores_the_second_moment(backend):
    t = RandMagnitudeMRNoise(1.0, coils=4, g_max_range=1.5).set_random_state(3)
    amplitude = 6.0
    out = t(to_backend(np.full((1, 192, 192), amplitude, np.float32), backend))
    assert as_numpy(out**2).mean() > 1.2 * amplitude**2  # the noise floor: + 2 L (sigma g)^2
    corrected = magnitude_bias_corrected(out, to_backend(as_numpy(t.last_sigma_map), backend), coils=4)
    assert type(corrected) is type(out) and corrected.shape == out.shape
    assert as_numpy(corrected**2).mean() == pytest.approx(amplitude**2, rel=0.03)
    assert magnitude_bias_corrected(np.zeros((1, 2, 2)), 1.0).max() == 0.0  # clipped at 0, no NaN


# --- radiography

def _psf_1d(sigma: float) -> np.ndarray:
    offsets = np.arange(-10, 11)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def test_detector_noise_mean_variance_and_correlation():
    x, peak, psf_sigma, read = 0.5, 20.0, 1.0, 0.02
    t = RandDetectorBlurNoise(peak, psf_sigma_range=psf_sigma, read_sigma_range=read).set_random_state(4)
    img = np.full((1, 128, 128), x, np.float32)
    noise = np.stack([t(img)[0] - x for _ in range(4)])
    kernel = _psf_1d(psf_sigma)
    expected_var = x / peak * (kernel**2).sum() ** 2 + read**2
    assert abs(noise.mean()) < 5 * np.sqrt((x / peak + read**2) / noise.size)  # the blur keeps the sum
    assert noise.var() == pytest.approx(expected_var, rel=0.05)
    expected_corr = x / peak * (kernel**2).sum() * (kernel[1:] * kernel[:-1]).sum() / expected_var
    for axis in (1, 2):
        corr = (noise * np.roll(noise, 1, axis=axis)).mean() / noise.var()
        assert corr == pytest.approx(expected_corr, abs=0.03) and corr > 0.3


def test_detector_noise_variance_follows_the_signal_which_is_not_blurred():
    img = np.zeros((1, 128, 128), np.float32)
    img[:, :, 64:] = 0.8
    img[:, :, :64] = 0.2
    t = RandDetectorBlurNoise(1e12, psf_sigma_range=1.5).set_random_state(5)
    np.testing.assert_allclose(t(img), img, atol=1e-4)  # noise-free limit: the edge stays sharp
    noise = RandDetectorBlurNoise(30.0, psf_sigma_range=1.0).set_random_state(5)(img) - img
    assert noise[:, :, 72:120].var() / noise[:, :, 8:56].var() == pytest.approx(4.0, rel=0.1)


# --- common behaviour of the four transforms: seeding, pairs, dict twins, errors

_CT_SLICE = _phantom(True)[:, 24:72, 24:72]
_MR_SLICE = np.random.default_rng(0).uniform(0.2, 0.8, (1, 48, 48)).astype(np.float32)
TRANSFORMS = {  # name: (array factory, dict factory, image)
    "low_dose_ct": (lambda: RandLowDoseCTNoise((2e4, 1e5), pixel_mm=PIXEL_MM),
                    lambda k: RandLowDoseCTNoised(k, (2e4, 1e5), pixel_mm=PIXEL_MM), _CT_SLICE),
    "ct_nps": (lambda: RandCTNoiseFromNPS((2e4, 1e5), pixel_mm=PIXEL_MM),
               lambda k: RandCTNoiseFromNPSd(k, (2e4, 1e5), pixel_mm=PIXEL_MM), _CT_SLICE),
    "mr_magnitude": (lambda: RandMagnitudeMRNoise((0.02, 0.1), coils=2),
                     lambda k: RandMagnitudeMRNoised(k, (0.02, 0.1), coils=2), _MR_SLICE),
    "detector_blur": (lambda: RandDetectorBlurNoise((10.0, 100.0), read_sigma_range=(0.0, 0.01)),
                      lambda k: RandDetectorBlurNoised(k, (10.0, 100.0), read_sigma_range=(0.0, 0.01)), _MR_SLICE),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_same_seed_same_output_other_seed_differs(name, backend):
    make, _, img = TRANSFORMS[name]
    img = to_backend(img, backend)
    first = make().set_random_state(7)(img)
    assert type(first) is type(img) and first.shape == img.shape and first.dtype == img.dtype
    np.testing.assert_array_equal(as_numpy(first), as_numpy(make().set_random_state(7)(img)))
    assert not np.array_equal(as_numpy(first), as_numpy(make().set_random_state(8)(img)))


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_noise2noise_pair_has_independent_noise_at_one_level(name):
    make, _, img = TRANSFORMS[name]
    transform = make()
    first, second, _, _ = NoisyPair(transform).set_random_state(9)(img)
    alone = make().set_random_state(9)
    alone(img)
    assert transform.level == alone.level  # the second realisation reused the first one's level
    assert abs(np.corrcoef((first - img).ravel(), (second - img).ravel())[0, 1]) < 0.15


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_dict_twin_routes_keys_and_forwards_the_seed(name):
    make_array, make_dict, img = TRANSFORMS[name]
    expected = make_array().set_random_state(3)(img)
    out = make_dict(["a", "b"]).set_random_state(3)({"a": img, "b": img.copy(), "meta": "kept"})
    np.testing.assert_array_equal(out["a"], expected)
    assert out["meta"] == "kept" and not np.array_equal(out["a"], out["b"])  # each key its own draw


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_global_random_generators_untouched_and_registered_by_name(name):
    make, _, img = TRANSFORMS[name]
    np_state, torch_state = np.random.get_state()[1].copy(), torch.random.get_rng_state().clone()
    make().set_random_state(1)(img)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert CORRUPTIONS[name] is type(make())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: RandLowDoseCTNoise(-1e4), r"i0_range must lie in \[0"),
        (lambda: RandLowDoseCTNoise(0.0), "i0_range must be > 0"),
        (lambda: RandCTNoiseFromNPS(1e4, filter_name="cosine"), "filter_name must be one of"),
        (lambda: RandCTNoiseFromNPS(1e4, pixel_mm=0), "pixel_mm must be"),
        (lambda: RandCTNoiseFromNPS(1e4, hu_scale=0), "hu_scale must be non-zero"),
        (lambda: RandCTNoiseFromNPS(1e4, electronic_sigma=-1), "electronic_sigma must be"),
        (lambda: RandLowDoseCTNoise(1e4)(np.zeros((2, 16, 16), np.float32)), r"one CT slice \(1, H, W\)"),
        (lambda: RandCTNoiseFromNPS(1e4)(np.zeros((1, 16, 16, 4), np.float32)), r"channel-first \(C, H, W\)"),
        (lambda: RandCTNoiseFromNPS(1e4).noise_std_map(np.zeros((1, 16, 16))), "i0 is needed"),
        (lambda: RandLowDoseCTNoise(1e4).corrupt(np.zeros((1, 16, 16)), level=-5.0), "i0 must be > 0"),
        (lambda: RandMagnitudeMRNoise(0.1, coils=0), "coils must be an int >= 1"),
        (lambda: RandMagnitudeMRNoise(0.1, g_max_range=0.5), r"g_max_range must lie in \[1"),
        (lambda: RandMagnitudeMRNoise(0.1)(np.zeros((16, 16))), r"channel-first \(C, H, W\)"),
        (lambda: RandDetectorBlurNoise(0.0), "peak_range must be > 0"),
        (lambda: RandDetectorBlurNoise(10.0, psf_sigma_range=-1.0), r"psf_sigma_range must lie in \[0"),
        (lambda: RandDetectorBlurNoise(10.0)(np.full((1, 16, 16), -0.5)), "must be non-negative"),
        (lambda: RandDetectorBlurNoise(10.0, psf_sigma_range=3.0)(np.ones((1, 8, 8))), "too small for psf_sigma"),
        (lambda: magnitude_bias_corrected(np.ones((1, 4, 4)), 0.1, coils=0), "coils must be an int >= 1"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()
