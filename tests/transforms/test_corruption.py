"""Corruption transforms: statistics, determinism, containers, meta and bad input."""

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from monai.data import MetaTensor

from medden.transforms import (
    RandBernoulliNoise,
    RandBernoulliNoised,
    RandGaussianSigmaNoise,
    RandGaussianSigmaNoised,
    RandImpulseNoise,
    RandImpulseNoised,
    RandPoissonGaussianNoise,
    RandPoissonGaussianNoised,
    RandPoissonNoise,
    RandPoissonNoised,
    RandRicianSigmaNoise,
    RandRicianSigmaNoised,
    RandTextOverlay,
    RandTextOverlayd,
    make_corruption,
)

from helpers import as_numpy, to_backend

BACKENDS = ["numpy", "torch"]
# (array factory, dict factory) pairs built with the same parameters
CORRUPTIONS = {
    "gaussian": (lambda: RandGaussianSigmaNoise((0.05, 0.2)), lambda k: RandGaussianSigmaNoised(k, (0.05, 0.2))),
    "poisson": (lambda: RandPoissonNoise((5.0, 50.0)), lambda k: RandPoissonNoised(k, (5.0, 50.0))),
    "poisson_gaussian": (lambda: RandPoissonGaussianNoise((5.0, 50.0), (0.0, 0.05)),
                         lambda k: RandPoissonGaussianNoised(k, (5.0, 50.0), (0.0, 0.05))),
    "rician": (lambda: RandRicianSigmaNoise((0.02, 0.1)), lambda k: RandRicianSigmaNoised(k, (0.02, 0.1))),
    "bernoulli": (lambda: RandBernoulliNoise((0.2, 0.8)), lambda k: RandBernoulliNoised(k, (0.2, 0.8))),
    "impulse": (lambda: RandImpulseNoise((0.1, 0.3)), lambda k: RandImpulseNoised(k, (0.1, 0.3))),
    "text": (lambda: RandTextOverlay((0.1, 0.3)), lambda k: RandTextOverlayd(k, (0.1, 0.3))),
}
SHAPES = [(1, 48, 40), (3, 32, 32), (1, 24, 20, 6)]


def _image(shape, seed=0):
    return np.random.default_rng(seed).uniform(0.1, 0.9, size=shape).astype(np.float32)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_same_seed_same_output_different_seed_differs(name, backend, shape):
    img = to_backend(_image(shape), backend)
    make = CORRUPTIONS[name][0]
    first = as_numpy(make().set_random_state(7)(img))
    again = as_numpy(make().set_random_state(7)(img))
    other = as_numpy(make().set_random_state(8)(img))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == tuple(shape) and first.dtype == np.float32


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_container_type_kept_and_input_not_modified(name, backend):
    img = to_backend(_image((1, 32, 32)), backend)
    before = copy.deepcopy(img)
    out, mask = CORRUPTIONS[name][0]().set_random_state(0).corrupt(img)
    assert type(out) is type(img)
    np.testing.assert_array_equal(as_numpy(img), as_numpy(before))
    if mask is not None:
        assert type(mask) is type(img) and tuple(mask.shape) == (1, 32, 32)
        assert set(np.unique(as_numpy(mask))) <= {0.0, 1.0}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_dict_twin_matches_array_and_draws_independently_per_key(name):
    make_array, make_dict = CORRUPTIONS[name]
    img = _image((1, 40, 40))
    expected, expected_mask = make_array().set_random_state(3).corrupt(img)
    out = make_dict(["a", "b"]).set_random_state(3)({"a": img, "b": img.copy(), "meta": "kept"})
    np.testing.assert_array_equal(out["a"], expected)
    assert out["meta"] == "kept"
    assert not np.array_equal(out["a"], out["b"]), "each key must get its own draw"
    if expected_mask is not None:
        np.testing.assert_array_equal(out["a_mask"], expected_mask)
        assert "b_mask" in out


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_metatensor_affine_survives(name):
    affine = torch.tensor([[0.5, 0, 0, 10], [0, 0.7, 0, -3], [0, 0, 2.0, 4], [0, 0, 0, 1]], dtype=torch.float64)
    img = MetaTensor(torch.as_tensor(_image((1, 24, 24, 4))), affine=affine, meta={"modality": "MR"})
    out, mask = CORRUPTIONS[name][0]().set_random_state(0).corrupt(img)
    assert isinstance(out, MetaTensor)
    torch.testing.assert_close(out.affine, affine)
    assert out.meta["modality"] == "MR"
    if mask is not None:
        torch.testing.assert_close(mask.affine, affine)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_global_random_generators_untouched(name):
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.random.get_rng_state().clone()
    CORRUPTIONS[name][0]().set_random_state(1)(_image((1, 32, 32)))
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)


@settings(max_examples=25, deadline=None)
@given(keep=st.floats(0.02, 0.98), seed=st.integers(0, 2**31 - 1))
def test_bernoulli_keep_fraction_matches_p(keep, seed):
    img = np.ones((2, 96, 96), np.float32)
    out, mask = RandBernoulliNoise(keep).set_random_state(seed).corrupt(img)
    n = mask.size
    tolerance = 5 * np.sqrt(keep * (1 - keep) / n)
    assert abs(mask.mean() - keep) < tolerance
    np.testing.assert_array_equal(out, img * mask)  # shared across channels, zero where dropped


@settings(max_examples=25, deadline=None)
@given(value=st.floats(0.05, 1.0), peak=st.floats(1.0, 100.0), seed=st.integers(0, 2**31 - 1))
def test_poisson_is_unbiased_with_variance_x_over_peak(value, peak, seed):
    img = np.full((1, 128, 128), value, np.float32)
    out = RandPoissonNoise(peak).set_random_state(seed)(img)
    n, var = out.size, value / peak
    assert abs(out.mean() - value) < 5 * np.sqrt(var / n)
    # variance of the sample variance of a Poisson/peak variable: var^2 * (2 + 1/(value*peak)) / n
    assert abs(out.var() - var) < 5 * var * np.sqrt((2 + 1 / (value * peak)) / n)


@settings(max_examples=25, deadline=None)
@given(sigma=st.floats(0.01, 0.5), seed=st.integers(0, 2**31 - 1))
def test_gaussian_is_unbiased_with_std_sigma(sigma, seed):
    img = _image((1, 128, 128), seed=1)
    noise = RandGaussianSigmaNoise(sigma).set_random_state(seed)(img) - img
    n = noise.size
    assert abs(noise.mean()) < 5 * sigma / np.sqrt(n)
    assert abs(noise.std() / sigma - 1) < 5 * np.sqrt(0.5 / n)


def test_level_drawn_within_range_and_fixable():
    t = RandGaussianSigmaNoise((0.1, 0.3)).set_random_state(0)
    levels = []
    for _ in range(50):
        t(_image((1, 8, 8)))
        levels.append(t.level)
    assert 0.1 <= min(levels) and max(levels) <= 0.3 and np.std(levels) > 0.03
    t.corrupt(_image((1, 8, 8)), level=0.25)
    assert t.level == 0.25


def test_prob_zero_returns_input_as_float_with_full_mask():
    img = np.arange(16, dtype=np.int16).reshape(1, 4, 4)
    out, mask = RandBernoulliNoise(0.5, prob=0.0).corrupt(img)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, img)
    np.testing.assert_array_equal(mask, np.ones((1, 4, 4)))


def test_impulse_replaces_fraction_with_values_in_range():
    img = np.full((3, 128, 128), 5.0, np.float32)  # outside value_range, so replaced pixels stand out
    out, mask = RandImpulseNoise(0.3, value_range=(-1.0, 1.0)).set_random_state(0).corrupt(img)
    replaced = mask[0] == 0
    assert abs(replaced.mean() - 0.3) < 5 * np.sqrt(0.21 / replaced.size)
    assert np.all(out[:, replaced] >= -1) and np.all(out[:, replaced] <= 1)
    np.testing.assert_array_equal(out[:, ~replaced], 5.0)


@pytest.mark.parametrize("coverage", [0.1, 0.3])
def test_text_overlay_reaches_coverage_and_keeps_other_pixels(coverage):
    img = np.full((1, 128, 128), -5.0, np.float32)
    out, mask = RandTextOverlay(coverage, value_range=(0.5, 1.0)).set_random_state(2).corrupt(img)
    text = mask[0] == 0
    assert coverage <= text.mean() < coverage + 0.15
    assert np.all((out[0, text] >= 0.5) & (out[0, text] <= 1.0))
    np.testing.assert_array_equal(out[0, ~text], -5.0)


def test_text_overlay_3d_draws_each_slice():
    out, mask = RandTextOverlay(0.2).set_random_state(0).corrupt(np.zeros((1, 64, 64, 3), np.float32))
    assert mask.shape == (1, 64, 64, 3)
    assert not np.array_equal(mask[..., 0], mask[..., 1])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RandGaussianSigmaNoise((0.3, 0.1)), "sigma_range must have low <= high"),
        (lambda: RandGaussianSigmaNoise(-0.1), r"sigma_range must lie in \[0"),
        (lambda: RandBernoulliNoise((0.5, 1.5)), r"keep_prob_range must lie in \[0, 1\]"),
        (lambda: RandImpulseNoise(-0.2), r"replace_prob_range must lie in \[0, 1\]"),
        (lambda: RandPoissonNoise(0.0), "peak_range must be > 0"),
        (lambda: RandBernoulliNoise(0.5, prob=2.0), r"prob must be a probability in \[0, 1\]"),
        (lambda: RandGaussianSigmaNoise((0.1, 0.2, 0.3)), r"sigma_range must be \(low, high\)"),
        (lambda: make_corruption("speckle"), "unknown corruption 'speckle'"),
    ],
)
def test_bad_parameters_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_bad_images_raise_clear_errors(name):
    t = CORRUPTIONS[name][0]()
    with pytest.raises(ValueError, match=r"channel-first .* got shape \(32, 32\)"):
        t(np.zeros((32, 32), np.float32))
    with pytest.raises(ValueError, match="contains 1 non-finite value"):
        bad = _image((1, 16, 16))
        bad[0, 3, 4] = np.nan
        t(bad)


def test_poisson_rejects_negative_intensities():
    with pytest.raises(ValueError, match="must be non-negative, got a minimum of -0.5"):
        RandPoissonNoise(10.0)(np.full((1, 8, 8), -0.5, np.float32))


def test_make_corruption_builds_by_name():
    t = make_corruption("bernoulli", keep_prob_range=(0.3, 0.3))
    assert isinstance(t, RandBernoulliNoise) and t.level_range == (0.3, 0.3)


def test_rician_matches_monai_and_rayleigh_background():
    """Same law as MONAI's RandRicianNoise at a fixed sigma; Rayleigh mean sigma*sqrt(pi/2) in air."""
    from monai.transforms import RandRicianNoise

    img = np.zeros((1, 256, 256), np.float32)
    img[:, :, 128:] = 0.6
    ours = RandRicianSigmaNoise(0.05).set_random_state(0)(img)
    monai_out = RandRicianNoise(prob=1.0, std=0.05, sample_std=False).set_random_state(0)(img)
    monai_out = np.asarray(monai_out)
    for half in (slice(0, 128), slice(128, 256)):
        assert abs(ours[:, :, half].mean() - monai_out[:, :, half].mean()) < 0.003
        assert abs(ours[:, :, half].std() - monai_out[:, :, half].std()) < 0.003
    assert ours[:, :, :128].mean() == pytest.approx(0.05 * np.sqrt(np.pi / 2), rel=0.02)
    assert ours.min() >= 0


def test_poisson_gaussian_variance_is_shot_plus_read_noise():
    img = np.full((1, 256, 256), 0.5, np.float32)
    out = RandPoissonGaussianNoise(20.0, 0.03).set_random_state(1)(img)
    assert out.mean() == pytest.approx(0.5, abs=0.005)
    assert out.var() == pytest.approx(0.5 / 20.0 + 0.03**2, rel=0.05)


def test_poisson_gaussian_pair_shares_peak_not_fields():
    from medden.transforms import NoisyPair

    img = np.full((1, 64, 64), 0.5, np.float32)
    a, b, _, _ = NoisyPair(RandPoissonGaussianNoise((5.0, 200.0), 0.01)).set_random_state(3)(img)
    assert not np.allclose(a, b)
    assert a.var() == pytest.approx(b.var(), rel=0.25)
