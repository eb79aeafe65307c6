"""k-space masks and undersampling: fractions, symmetry, exact round trips, determinism."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from monai.data import MetaTensor

from medden.core.keys import Keys
from medden.transforms import (
    KSPACE_MASKS,
    EquispacedLineMask,
    FullMask,
    PoissonDiscMask,
    RadialBernoulliMask,
    RandKspacePair,
    RandKspacePaird,
    RandKspaceUndersample,
    RandKspaceUndersampled,
    RandomLineMask,
    apply_pattern,
    image_to_kspace,
    make_kspace_mask,
    reconstruct,
)

from helpers import as_numpy, to_backend


def _image(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=shape).astype(np.float32)


def _mirror(a):
    idx = [(2 * (n // 2) - np.arange(n)) % n for n in a.shape]
    return a[np.ix_(*idx)]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("shape, is_complex", [((1, 32, 24), False), ((2, 16, 12, 8), False),
                                                ((1, 32, 24, 2), True), ((1, 16, 12, 8, 2), True)])
def test_full_mask_reproduces_the_image_exactly(backend, shape, is_complex):
    img = to_backend(_image(shape), backend)
    output = "complex" if is_complex else "real"
    result = RandKspaceUndersample(FullMask(), is_complex=is_complex, output=output)(img)
    np.testing.assert_allclose(as_numpy(result.image), as_numpy(img), atol=1e-5)
    assert type(result.kspace) is type(img) and result.kspace.shape[-1] == 2
    assert np.all(as_numpy(result.mask) == 1)


def test_fft_is_orthonormal():
    img = _image((1, 32, 32))
    kspace = image_to_kspace(img)
    np.testing.assert_allclose((kspace**2).sum(), (img**2).sum(), rtol=1e-5)


@settings(max_examples=15, deadline=None)
@given(acceleration=st.floats(2.0, 8.0), n=st.integers(64, 320), seed=st.integers(0, 2**31 - 1))
def test_random_line_fraction_matches_acceleration(acceleration, n, seed):
    pattern = RandomLineMask(0.04, acceleration).set_random_state(seed)((16, n))
    n_center = max(1, round(n * 0.04))
    prob = (n / acceleration - n_center) / (n - n_center)
    sd = np.sqrt((n - n_center) * prob * (1 - prob)) / n
    assert abs(pattern.sampled_fraction((16, n)) - 1 / acceleration) < 5 * sd + 1e-9
    assert pattern.mask.shape == (1, n)


@settings(max_examples=15, deadline=None)
@given(acceleration=st.floats(2.0, 8.0), n=st.integers(64, 320), seed=st.integers(0, 2**31 - 1))
def test_equispaced_line_fraction_matches_acceleration(acceleration, n, seed):
    pattern = EquispacedLineMask(0.04, acceleration).set_random_state(seed)((16, n))
    assert abs(pattern.sampled_fraction((16, n)) * n - n / acceleration) <= 2.0  # within two lines


def test_line_masks_sample_the_centre_fully():
    for mask_cls in (RandomLineMask, EquispacedLineMask):
        mask = mask_cls(0.1, 4).set_random_state(0)((8, 100)).mask[0]
        assert mask[45:55].all()


@pytest.mark.parametrize("acceleration", [3.0, 6.0])
def test_poisson_disc_fraction_matches_acceleration(acceleration):
    pattern = PoissonDiscMask(acceleration, tolerance=0.2).set_random_state(0)((64, 64))
    assert abs(1 / pattern.sampled_fraction((64, 64)) - acceleration) < 0.2
    pattern3d = PoissonDiscMask(acceleration, tolerance=0.2).set_random_state(0)((10, 64, 64))
    assert pattern3d.mask.shape == (1, 64, 64)


@settings(max_examples=10, deadline=None)
@given(n=st.sampled_from([64, 65, 128, 256]), seed=st.integers(0, 2**31 - 1))
def test_radial_mask_is_hermitian_symmetric_and_keeps_about_ten_percent(n, seed):
    pattern = RadialBernoulliMask().set_random_state(seed)((n, n))
    np.testing.assert_array_equal(pattern.mask, _mirror(pattern.mask))
    expected = pattern.density.mean()  # the mask's expected fraction
    assert abs(pattern.mask.mean() - expected) < 5 * np.sqrt(expected / (n * n / 2))
    if n == 256:
        assert 0.09 < expected < 0.12  # the paper's ~10%
    assert pattern.mask[n // 2, n // 2] == 1  # DC always kept


def test_radial_density_compensation_is_unbiased():
    mask_func = RadialBernoulliMask().set_random_state(0)
    weights = [p.mask / p.density for p in (mask_func((32, 32)) for _ in range(4000))]
    mean_weight = np.mean(weights, axis=0)
    density = mask_func((32, 32)).density
    well_sampled = density > 0.3
    np.testing.assert_allclose(mean_weight[well_sampled], 1.0, atol=0.1)


def test_radial_zero_filled_real_image_stays_real():
    img = _image((1, 64, 64))
    result = RandKspaceUndersample("radial_bernoulli", output="complex").set_random_state(0)(img)
    assert np.abs(result.image[..., 1]).max() < 1e-5


def test_apply_pattern_and_reconstruct_compose():
    img = torch.as_tensor(_image((1, 32, 32)))
    pattern = RandomLineMask(0.1, 4).set_random_state(1)((32, 32))
    kspace = apply_pattern(image_to_kspace(img), pattern)
    unsampled = np.broadcast_to(pattern.mask, (32, 32)) == 0
    assert torch.all(kspace[0][torch.as_tensor(unsampled)] == 0)
    magnitude = reconstruct(kspace, "magnitude")
    assert magnitude.shape == (1, 32, 32) and torch.all(magnitude >= 0)


@pytest.mark.parametrize("name", sorted(KSPACE_MASKS))
def test_same_seed_same_mask_and_global_rng_untouched(name):
    np_state = np.random.get_state()[1].copy()
    first = make_kspace_mask(name).set_random_state(4)((64, 64)).mask
    again = make_kspace_mask(name).set_random_state(4)((64, 64)).mask
    other = make_kspace_mask(name).set_random_state(5)((64, 64)).mask
    np.testing.assert_array_equal(first, again)
    if name != "full":
        assert not np.array_equal(first, other)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)


def test_pair_draws_two_independent_masks():
    img = _image((1, 64, 64))
    first, second = RandKspacePair("radial_bernoulli", output="real").set_random_state(0)(img)
    assert not np.array_equal(first.mask, second.mask)
    both = (first.mask * second.mask).mean()
    assert both < 0.6 * min(first.mask.mean(), second.mask.mean())


def test_dict_twins_match_array_transforms():
    img = _image((1, 48, 48))
    expected = RandKspaceUndersample("random_lines").set_random_state(2)(img)
    d = RandKspaceUndersampled("image", "random_lines").set_random_state(2)({"image": img})
    for key, value in zip((Keys.KSPACE, Keys.KSPACE_MASK, Keys.ZERO_FILLED), expected):
        np.testing.assert_array_equal(d[key], value)
    first, second = RandKspacePair("radial_bernoulli").set_random_state(3)(img)
    d = RandKspacePaird("image", "radial_bernoulli").set_random_state(3)({"image": img})
    np.testing.assert_array_equal(d[Keys.ZERO_FILLED], first.image)
    np.testing.assert_array_equal(d[Keys.TARGET_KSPACE], second.kspace)
    np.testing.assert_array_equal(d[Keys.TARGET_KSPACE_MASK], second.mask)


def test_metatensor_meta_survives_undersampling():
    affine = torch.diag(torch.tensor([1.2, 1.2, 3.0, 1.0], dtype=torch.float64))
    img = MetaTensor(torch.as_tensor(_image((1, 32, 32, 4))), affine=affine)
    result = RandKspaceUndersample("radial_bernoulli").set_random_state(0)(img)
    assert isinstance(result.image, MetaTensor)
    torch.testing.assert_close(result.image.affine, affine)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: make_kspace_mask("spiral"), "unknown k-space mask 'spiral'"),
        (lambda: RandomLineMask(0.5, 4), "center_fraction=0.5 holds more than 1/acceleration"),
        (lambda: RandomLineMask(1.5, 1), r"center_fraction must be a probability in \[0, 1\], got 1.5"),
        (lambda: EquispacedLineMask(0.04, 0.5), "acceleration must be a finite number >= 1, got 0.5"),
        (lambda: PoissonDiscMask(1.0), "acceleration must be a finite number > 1, got 1.0"),
        (lambda: RadialBernoulliMask(edge_probability=1.2), "edge_probability must be a probability"),
        (lambda: RandKspaceUndersample("full", output="phase"), "output must be one of"),
        (lambda: RandKspaceUndersample("full")(np.zeros((16, 16), np.float32)), "channel-first"),
        (lambda: RandKspaceUndersample("full", is_complex=True)(np.zeros((1, 16, 16), np.float32)),
         r"complex image must be \(C, H, W\[, D\], 2\)"),
        (lambda: RandomLineMask()((16,)), "spatial_shape must be 2 or 3 positive sizes"),
        (lambda: RandKspaceUndersample("full")(np.full((1, 8, 8), np.inf, np.float32)), "non-finite"),
    ],
)
def test_bad_input_raises_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_kspace_noise_is_the_real_zero_filled_reconstruction_of_its_pattern():
    from medden.transforms import NoisyPair, RandKspaceNoise, make_corruption

    img = _image((1, 48, 40), seed=3)
    noise = make_corruption("kspace", edge_probability_range=0.05).set_random_state(5)
    assert isinstance(noise, RandKspaceNoise)
    noisy, mask = noise.corrupt(img)
    assert mask is None and noisy.shape == img.shape and noisy.dtype == np.float32
    pattern = noise.field
    assert 0.05 < pattern.mask.mean() < 0.6  # an undersampling, not everything or nothing
    expected = reconstruct(apply_pattern(image_to_kspace(torch.as_tensor(img)), pattern, compensate=True), "real")
    np.testing.assert_allclose(noisy, as_numpy(expected), atol=1e-6)
    # seeded: the same draw again; a second draw is a new pattern
    again, _ = make_corruption("kspace", edge_probability_range=0.05).set_random_state(5).corrupt(img)
    np.testing.assert_array_equal(noisy, again)
    assert not np.array_equal(noise.corrupt(img)[0], noisy)
    # a supervised pair keeps the clean image as target
    noisy_input, target, _, _ = NoisyPair(noise, mode="n2c").set_random_state(1)(img)
    np.testing.assert_array_equal(as_numpy(target), img)
    assert not np.allclose(as_numpy(noisy_input), img)


def test_kspace_noise_refuses_a_zero_edge_probability():
    from medden.transforms import RandKspaceNoise

    with pytest.raises(ValueError, match="edge_probability_range must be > 0"):
        RandKspaceNoise(0.0)
