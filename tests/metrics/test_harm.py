"""No-reference harm checks: noise that went up, and a 2-pixel pattern the input lacked."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medden.metrics import HarmFlag, harm_flags
from medden.metrics.harm import NOISE_UP, PERIODIC_PATTERN

SIGMA = 0.05


def _phantom(shape=(1, 64, 64)):
    """A bright disk on a ramp in [0, 1] with Gaussian noise of std SIGMA, float32."""
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    clean = 0.2 + 0.3 * xx / shape[2] + 0.4 * (((yy - 30) ** 2 + (xx - 34) ** 2) < 15**2)
    clean = np.broadcast_to(clean.reshape(1, *clean.shape, *([1] * (len(shape) - 3))), shape)
    noise = np.random.default_rng(0).normal(0.0, SIGMA, shape)
    return (clean + noise).astype(np.float32)


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


def test_include_passed_returns_both_checks_with_consistent_fields():
    image = _phantom()
    flags = harm_flags(image, image + 0.5 * SIGMA * _pattern(image.shape, False, True), include_passed=True)
    assert [flag.name for flag in flags] == [NOISE_UP, PERIODIC_PATTERN]
    assert all(isinstance(flag, HarmFlag) and flag.raised == (flag.value > flag.threshold) for flag in flags)
    assert [flag.raised for flag in flags] == [False, True]
    assert "pattern" in flags[1].message and "along W" in flags[1].message


def test_the_noise_up_message_gives_both_levels_and_the_rise():
    image = _phantom()
    (flag,) = harm_flags(image, image + np.random.default_rng(1).normal(0.0, SIGMA, image.shape).astype(np.float32))
    assert "noisier" in flag.message and f"{flag.value - 1:+.0%}" in flag.message
    assert flag.threshold == pytest.approx(1.05)


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
def test_bad_inputs_are_refused_with_the_shapes(before, after, error, match):
    with pytest.raises(error, match=match):
        harm_flags(before, after)


def test_max_slices_must_be_positive():
    with pytest.raises(ValueError, match="max_slices must be an int >= 1, got 0"):
        harm_flags(np.zeros((1, 8, 8, 2)), np.zeros((1, 8, 8, 2)), max_slices=0)
