"""R2RPair (one shared draw for input and target) and RandExtraPoissonGaussianNoise, with their dict twins."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medden.core.keys import Keys
from medden.core.noise_estimation import wavelet_noise_sigma
from medden.transforms import (
    R2RPair,
    R2RPaird,
    RandExtraPoissonGaussianNoise,
    RandExtraPoissonGaussianNoised,
    RandPoissonGaussianNoise,
)

from helpers import as_numpy, to_backend


def _noisy(shape=(1, 96, 96), sigma=0.1, seed=0):
    rng = np.random.default_rng(seed)
    clean = np.tile(np.linspace(0.2, 0.8, shape[-1], dtype=np.float32), (*shape[:-1], 1))
    return clean, (clean + sigma * rng.standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_r2r_pair_matches_the_reference_formula_under_a_seed(backend):
    _, y = _noisy((1, 16, 16))
    inputs, target, input_mask, target_mask = R2RPair(alpha=0.5).set_random_state(7)(to_backend(y, backend), 0.1)
    z = torch.randn((1, 16, 16), generator=torch.Generator().manual_seed(7)).numpy() * np.float32(0.1)
    np.testing.assert_allclose(as_numpy(inputs), y + 0.5 * z, rtol=0, atol=1e-7)
    np.testing.assert_allclose(as_numpy(target), y - z / 0.5, rtol=0, atol=1e-7)
    assert type(inputs) is type(to_backend(y, backend)) and as_numpy(inputs).dtype == np.float32
    assert input_mask is None and target_mask is None


def test_r2r_pair_input_and_target_share_one_draw():
    _, y = _noisy()
    inputs, target, _, _ = R2RPair(alpha=2.0).set_random_state(0)(y, 0.1)
    # shared z: target - y = -(input - y) / alpha**2, pixel for pixel
    np.testing.assert_allclose(target - y, -(inputs - y) / 4.0, atol=1e-6)


def test_r2r_pair_noises_are_uncorrelated_and_unbiased_for_gaussian_noise():
    clean, y = _noisy((1, 256, 256), sigma=0.1)
    inputs, target, _, _ = R2RPair(alpha=0.5).set_random_state(1)(y, 0.1)
    input_noise, target_noise = (inputs - clean).ravel(), (target - clean).ravel()
    assert abs(np.corrcoef(input_noise, target_noise)[0, 1]) < 0.02  # the point of R2R
    assert abs(input_noise.mean()) < 0.005 and abs(target_noise.mean()) < 0.01  # mean preserved
    assert input_noise.std() == pytest.approx(0.1 * np.sqrt(1 + 0.5**2), rel=0.02)
    assert target_noise.std() == pytest.approx(0.1 * np.sqrt(1 + 1 / 0.5**2), rel=0.02)


def test_r2r_pair_draws_randomize_apply_and_seeding():
    _, y = _noisy((1, 8, 8))
    pair = R2RPair().set_random_state(3)
    first = pair(y, 0.1)
    np.testing.assert_array_equal(pair(y, 0.1, randomize=False).input, first.input)  # reuses the draw
    assert not np.array_equal(pair(y, 0.1).input, first.input)  # a new draw
    np.testing.assert_array_equal(R2RPair().set_random_state(3)(y, 0.1).input, first.input)
    from_state = R2RPair().set_random_state(state=np.random.RandomState(5))(y, 0.1).input
    np.testing.assert_array_equal(R2RPair().set_random_state(state=np.random.RandomState(5))(y, 0.1).input, from_state)
    with pytest.raises(RuntimeError, match="randomize"):
        R2RPair().apply(y, 0.1)


def test_r2r_pair_estimates_sigma_when_not_given():
    _, y = _noisy()
    sigma = float(wavelet_noise_sigma(torch.from_numpy(y)[None])[0])
    np.testing.assert_array_equal(R2RPair().set_random_state(0)(y).input, R2RPair().set_random_state(0)(y, sigma).input)


def test_r2r_pair_keeps_meta_and_leaves_the_global_generators_alone():
    _, y = _noisy((1, 8, 8))
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    inputs = R2RPair().set_random_state(0)(MetaTensor(torch.from_numpy(y), affine=torch.eye(4) * 2), 0.1).input
    assert isinstance(inputs, MetaTensor) and float(inputs.affine[0, 0]) == 2.0
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])


@pytest.mark.parametrize("make, error, match", [
    (lambda: R2RPair(alpha=0.0), ValueError, "alpha"),
    (lambda: R2RPair()(np.zeros((1, 4, 4), np.float32), -0.1), ValueError, "sigma"),
    (lambda: R2RPair()(np.zeros((4, 4), np.float32), 0.1), ValueError, "channel-first"),
    (lambda: R2RPair()(np.full((1, 4, 4), np.nan, np.float32), 0.1), ValueError, "non-finite"),
    (lambda: R2RPaird(["a", "b"]), ValueError, "exactly one"),
])
def test_r2r_pair_errors_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_r2r_paird_routes_keys_like_the_array_class():
    _, y = _noisy((1, 8, 8))
    out = R2RPaird(Keys.IMAGE).set_random_state(2)({Keys.IMAGE: y, Keys.NOISE_SIGMA: 0.1})
    expected = R2RPair().set_random_state(2)(y, 0.1)
    np.testing.assert_array_equal(out[Keys.INPUT], expected.input)
    np.testing.assert_array_equal(out[Keys.TARGET], expected.target)
    estimated = R2RPaird(Keys.IMAGE).set_random_state(2)({Keys.IMAGE: y})  # no sigma key: estimated
    np.testing.assert_array_equal(estimated[Keys.INPUT], R2RPair().set_random_state(2)(y).input)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_extra_poisson_gaussian_is_poisson_gaussian_where_y_is_non_negative(backend):
    _, y = _noisy((1, 32, 32), sigma=0.0)
    extra = RandExtraPoissonGaussianNoise(30.0, 0.02).set_random_state(4)(to_backend(y, backend))
    reference = RandPoissonGaussianNoise(30.0, 0.02).set_random_state(4)(y)
    np.testing.assert_allclose(as_numpy(extra), reference, atol=1e-6)


def test_extra_poisson_gaussian_accepts_negative_values_and_adds_zero_mean_noise():
    y = np.full((1, 256, 256), -0.05, np.float32)
    y[:, :128] = 0.5
    out = RandExtraPoissonGaussianNoise(30.0, 0.02).set_random_state(0)(y)
    extra = out - y
    bright, dark = extra[:, :128], extra[:, 128:]
    assert abs(bright.mean()) < 0.005 and abs(dark.mean()) < 0.002
    assert bright.var() == pytest.approx(0.5 / 30.0 + 0.02**2, rel=0.05)  # y+ / peak + s**2
    assert dark.var() == pytest.approx(0.02**2, rel=0.05)  # y+ = 0: read noise only


def test_extra_poisson_gaussian_dict_twin_draws_per_key():
    _, y = _noisy((1, 16, 16), sigma=0.0)
    out = RandExtraPoissonGaussianNoised(["a", "b"], 30.0, 0.01).set_random_state(0)({"a": y, "b": y})
    assert out["a"].shape == y.shape and not np.array_equal(out["a"], out["b"])  # independent draws
