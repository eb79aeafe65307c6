"""No-reference harm checks: noise that went up, a 2-pixel pattern the input lacked, a seam along a
straight line; and the size of the change next to the input's noise."""

import re

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medden.metrics import HarmFlag, harm_flags
from medden.metrics.harm import (NOISE_UP, PERIODIC_PATTERN, SEAM_MARGIN, SEAM_THRESHOLD, TILE_SEAM, change_to_noise,
                                 pattern_powers)

SIGMA = 0.05


def _phantom(shape=(1, 64, 64), sigma=SIGMA, seed=0):
    """A bright disk on a ramp in [0, 1] with Gaussian noise of std ``sigma``, float32."""
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    clean = 0.2 + 0.3 * xx / shape[2] + 0.4 * (((yy - 30) ** 2 + (xx - 34) ** 2) < 15**2)
    clean = np.broadcast_to(clean.reshape(1, *clean.shape, *([1] * (len(shape) - 3))), shape)
    noise = np.random.default_rng(seed).normal(0.0, sigma, shape)
    return (clean + noise).astype(np.float32)


def _step(shape, along_h, at, amplitude):
    """``amplitude`` on one side of the line along H (between W = at - 1 and at) or along W, else 0."""
    step = np.zeros(shape, np.float32)
    if along_h:
        step[:, :, at:] = amplitude
    else:
        step[:, at:] = amplitude
    return step


def _seam(before, after):
    return next(flag for flag in harm_flags(before, after, include_passed=True) if flag.name == TILE_SEAM)


def _pattern(shape, along_h, along_w):
    """``(-1)^h``, ``(-1)^w`` or ``(-1)^(h + w)`` broadcast to ``shape``."""
    h, w = np.ogrid[: shape[1], : shape[2]]
    sign = 1.0 - 2.0 * ((h * along_h + w * along_w) % 2)
    return np.broadcast_to(sign.reshape(1, *sign.shape, *([1] * (len(shape) - 3))), shape).astype(np.float32)


def _names(before, after, **kwargs):
    return [flag.name for flag in harm_flags(before, after, **kwargs)]


@pytest.mark.parametrize("to", [np.asarray, torch.from_numpy], ids=["numpy", "torch"])
@pytest.mark.parametrize("shape", [(1, 64, 64), (2, 48, 40, 20)], ids=["2d", "volume"])
def test_the_identity_flags_nothing(to, shape):
    image = _phantom(shape)
    assert harm_flags(to(image), to(image.copy())) == []


@pytest.mark.parametrize("shape", [(1, 64, 64), (2, 48, 40, 20)], ids=["2d", "volume"])
def test_added_white_noise_raises_noise_up_only(shape):
    image = _phantom(shape)
    noisier = image + np.random.default_rng(1).normal(0.0, 0.5 * SIGMA, shape).astype(np.float32)
    assert _names(image, noisier) == [NOISE_UP]


@pytest.mark.parametrize("along", [(True, False), (False, True), (True, True)], ids=["H", "W", "checkerboard"])
@pytest.mark.parametrize("shape", [(1, 64, 64), (1, 48, 40, 20)], ids=["2d", "volume"])
def test_a_small_two_pixel_pattern_raises_periodic_pattern(along, shape):
    image = _phantom(shape)
    patterned = image + 0.3 * SIGMA * _pattern(shape, *along)  # far below the noise: hard to see by eye
    assert PERIODIC_PATTERN in _names(image, patterned)


def test_a_pattern_negligible_next_to_the_noise_is_not_raised():
    image = _phantom()
    flags = harm_flags(image, image + 0.05 * SIGMA * _pattern(image.shape, True, True), include_passed=True)
    pattern = next(flag for flag in flags if flag.name == PERIODIC_PATTERN)
    assert not pattern.raised and 1.0 < pattern.value < pattern.threshold


def test_a_smoothed_denoised_like_output_flags_nothing():
    noisy = _phantom((1, 96, 96))
    assert harm_flags(noisy, gaussian_filter(noisy, (0, 1.0, 1.0))) == []


def test_only_the_measured_slices_count():
    image = _phantom((1, 32, 32, 40))
    patterned = image + SIGMA * _pattern(image.shape, False, True)
    measured = np.unique(np.linspace(0, 39, 16).round().astype(int))  # evenly_spaced(40, 16)
    patterned[..., measured] = image[..., measured]
    assert harm_flags(image, patterned) == []
    assert _names(image, patterned, max_slices=40) == [PERIODIC_PATTERN]


def test_float_rounding_on_a_flat_image_flags_nothing():
    flat = np.full((1, 32, 32), 100.0, np.float32)
    rounding = flat + 1e-5 * _pattern(flat.shape, True, True)  # a few float32 steps at 100
    assert harm_flags(flat, rounding) == []
    assert _names(flat, flat + 0.1 * _pattern(flat.shape, True, True)) == [NOISE_UP, PERIODIC_PATTERN]


def test_include_passed_returns_every_check_with_consistent_fields():
    image = _phantom()
    flags = harm_flags(image, image + 0.5 * SIGMA * _pattern(image.shape, False, True), include_passed=True)
    assert [flag.name for flag in flags] == [NOISE_UP, PERIODIC_PATTERN, TILE_SEAM]
    assert all(isinstance(flag, HarmFlag) and flag.raised == (flag.value > flag.threshold) for flag in flags)
    assert [flag.raised for flag in flags] == [False, True, False]
    assert "pattern" in flags[1].message and "along W" in flags[1].message


def test_the_noise_up_message_gives_both_levels_and_the_rise():
    image = _phantom()
    (flag,) = harm_flags(image, image + np.random.default_rng(1).normal(0.0, SIGMA, image.shape).astype(np.float32))
    assert "noisier" in flag.message and f"{flag.value - 1:+.0%}" in flag.message
    assert flag.threshold == pytest.approx(1.05)


@pytest.mark.parametrize("along_h", [True, False], ids=["along-H", "along-W"])
@pytest.mark.parametrize("seed", range(3))
def test_a_seam_of_a_quarter_sigma_in_a_denoised_image_raises_tile_seam(along_h, seed):
    # the change holds the whole input noise, so a line's step is measured to about sigma / sqrt(2 x 512)
    noisy, clean = _phantom((1, 512, 512), seed=seed), _phantom((1, 512, 512), sigma=0.0)
    seamed = clean + _step(clean.shape, along_h, 200, 0.25 * SIGMA)  # the perfect denoise, with a faint seam
    flag = _seam(noisy, seamed)
    assert flag.raised and [f.name for f in harm_flags(noisy, seamed)] == [TILE_SEAM]
    where = re.search(r"along ([HW]) \(between ([HW]) = (\d+) and", flag.message)
    assert where[1] == ("H" if along_h else "W") and abs(int(where[3]) - 199) <= 3  # the 8-pixel sides blur it


@pytest.mark.parametrize("to", [np.asarray, torch.from_numpy], ids=["numpy", "torch"])
def test_a_seam_in_every_slice_of_a_volume_raises_tile_seam(to):
    noisy, clean = _phantom((2, 96, 80, 6)), _phantom((2, 96, 80, 6), sigma=0.0)
    seamed = clean + _step(clean.shape, False, 64, 0.5 * SIGMA)  # tiles of 64 rows that do not agree
    assert _seam(to(noisy), to(seamed)).raised


def test_a_seam_in_an_image_the_denoiser_left_alone_raises_tile_seam():
    image = _phantom((1, 128, 128))
    assert _names(image, image + _step(image.shape, True, 64, 0.5 * SIGMA)) == [TILE_SEAM]


@pytest.mark.parametrize("shape", [(1, 256, 256), (1, 96, 80, 6)], ids=["2d", "volume"])
def test_a_good_denoise_and_gain_changes_raise_no_seam(shape):
    noisy, clean = _phantom(shape), _phantom(shape, sigma=0.0)
    spatial = [0.0, 1.0, 1.0] + [0.0] * (len(shape) - 3)
    drift = np.linspace(0.9, 1.1, shape[2], dtype=np.float32).reshape(1, 1, -1, *([1] * (len(shape) - 3)))
    for after in (clean, gaussian_filter(noisy, spatial), noisy * drift, 1.1 * noisy, clean * drift + 0.02):
        flag = _seam(noisy, after)
        assert not flag.raised, flag.message


@pytest.mark.parametrize("seed", range(4))
def test_white_or_correlated_noise_added_or_removed_reads_no_seam(seed):
    clean = _phantom((1, 128, 128), sigma=0.0)
    white = np.random.default_rng(seed).normal(0.0, SIGMA, clean.shape).astype(np.float32)
    correlated = gaussian_filter(white, (0.0, 2.0, 2.0)) * 4.0  # about the same std, 2-pixel correlation
    for noise in (white, correlated):
        assert _seam(clean + noise, clean).value < SEAM_THRESHOLD
        assert _seam(clean, clean + noise).value < SEAM_THRESHOLD


def test_a_straight_edge_of_the_input_that_the_denoiser_softens_is_no_seam():
    noisy = _phantom((1, 128, 128)) + _step((1, 128, 128), True, 70, 0.5)  # a straight edge of the image
    assert not _seam(noisy, gaussian_filter(noisy, (0.0, 1.0, 1.0))).raised


def test_a_change_of_the_outermost_pixels_is_no_seam():
    noisy, clean = _phantom((1, 128, 128)), _phantom((1, 128, 128), sigma=0.0)
    border = _step(clean.shape, True, 128 - SEAM_MARGIN, SIGMA) + _step(clean.shape, False, 128 - SEAM_MARGIN, SIGMA)
    assert _seam(noisy, clean + border).value == pytest.approx(_seam(noisy, clean).value)  # as padding does
    assert _seam(noisy, clean + _step(clean.shape, True, 128 - 2 * SEAM_MARGIN, SIGMA)).raised


def test_change_to_noise_reads_the_change_in_units_of_the_input_noise():
    shape = (1, 128, 128)
    noisy, clean = _phantom(shape), _phantom(shape, sigma=0.0)
    more = noisy + np.random.default_rng(3).normal(0.0, 2.0 * SIGMA, shape).astype(np.float32)
    assert change_to_noise(noisy, clean) == pytest.approx(1.0, abs=0.1)  # removes exactly the noise
    assert change_to_noise(noisy, more) == pytest.approx(2.0, abs=0.2)
    assert change_to_noise(noisy, noisy) == pytest.approx(0.0, abs=1e-3)
    assert change_to_noise(torch.from_numpy(noisy) * 1000.0, torch.from_numpy(clean) * 1000.0) == pytest.approx(
        change_to_noise(noisy, clean), rel=1e-3)  # in no unit


def test_change_to_noise_reads_noise_correlated_by_a_reconstruction_kernel():
    from scipy.ndimage import gaussian_filter

    shape = (1, 128, 128)
    clean = _phantom(shape, sigma=0.0)
    correlated = gaussian_filter(np.random.default_rng(4).normal(0.0, 1.0, shape), (0, 1, 1))
    noisy = (clean + SIGMA * correlated / correlated.std()).astype(np.float32)
    # removing exactly that noise is a change of 1 x the noise, though its finest detail reads far lower
    assert change_to_noise(noisy, clean) == pytest.approx(1.0, abs=0.25)


def test_change_to_noise_of_a_noise_free_input_is_finite():
    flat = np.full((1, 32, 32, 3), 100.0, np.float32)
    assert change_to_noise(flat, flat) == pytest.approx(1.0)
    negligible = 1e-5 * 100.0  # NEGLIGIBLE_OF_SCALE of the input's scale
    assert change_to_noise(flat, flat + 0.1 * _pattern(flat.shape, True, True)) == pytest.approx(
        (0.1 + negligible) / negligible, rel=1e-3)


@pytest.mark.parametrize("to", [np.asarray, torch.from_numpy], ids=["numpy", "torch"])
@pytest.mark.parametrize("along", [(True, False), (False, True), (True, True)], ids=["H", "W", "HW"])
def test_pattern_powers_read_the_squared_amplitude_of_each_pattern(to, along):
    ramp = np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(1, 64, 64)  # no 2-pixel pattern of its own
    image = ramp + 0.3 * _pattern((1, 64, 64), *along)
    powers = pattern_powers(to(image))
    key = "H" * along[0] + "W" * along[1]
    assert powers[key] == pytest.approx(0.09, rel=1e-3)
    assert all(power < 1e-6 for other, power in powers.items() if other != key)


@pytest.mark.parametrize("check", [harm_flags, change_to_noise], ids=["harm_flags", "change_to_noise"])
@pytest.mark.parametrize(
    ("before", "after", "error", "match"),
    [
        (np.zeros((64, 64)), np.zeros((64, 64)), ValueError, r"channel-first .* got shape \(64, 64\)"),
        (np.zeros((1, 64, 64)), np.zeros((1, 64, 32)), ValueError, r"\(1, 64, 64\) and \(1, 64, 32\)"),
        (np.zeros((1, 3, 64)), np.zeros((1, 3, 64)), ValueError, r"H, W >= 4.*\(1, 3, 64\)"),
        (np.full((1, 8, 8), np.nan), np.zeros((1, 8, 8)), ValueError, "before contains 64 non-finite"),
        (np.zeros((1, 8, 8)), np.zeros((1, 8, 8), np.complex64), TypeError, "after must be real"),
        ([[[0.0]]], np.zeros((1, 8, 8)), TypeError, "before must be a numpy.ndarray or torch.Tensor"),
    ],
    ids=["no-channel", "mismatch", "too-small", "nan", "complex", "list"],
)
def test_bad_inputs_are_refused_with_the_shapes(check, before, after, error, match):
    with pytest.raises(error, match=match):
        check(before, after)


@pytest.mark.parametrize("check", [harm_flags, change_to_noise], ids=["harm_flags", "change_to_noise"])
def test_max_slices_must_be_positive(check):
    with pytest.raises(ValueError, match="max_slices must be an int >= 1, got 0"):
        check(np.zeros((1, 8, 8, 2)), np.zeros((1, 8, 8, 2)), max_slices=0)
