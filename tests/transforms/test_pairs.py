"""NoisyPair and Recorrupt: independence of draws, shared levels, masks, dict twins."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medden.core.keys import Keys
from medden.transforms import (
    NoisyPair,
    NoisyPaird,
    RandBernoulliNoise,
    RandBernoulliNoised,
    RandGaussianSigmaNoise,
    RandPoissonNoise,
    Recorrupt,
    Recorruptd,
)

from helpers import as_numpy, to_backend


def _clean(shape=(1, 96, 96)):
    return np.random.default_rng(0).uniform(0.2, 0.8, size=shape).astype(np.float32)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_n2n_pair_has_independent_noise_at_a_shared_level(backend):
    clean = _clean()
    pair = NoisyPair(RandGaussianSigmaNoise((0.05, 0.3))).set_random_state(0)
    first, second, _, _ = pair(to_backend(clean, backend))
    noise_a, noise_b = as_numpy(first) - clean, as_numpy(second) - clean
    assert abs(np.corrcoef(noise_a.ravel(), noise_b.ravel())[0, 1]) < 0.03
    assert abs(noise_a.std() / noise_b.std() - 1) < 0.03  # same sigma for both


def test_n2n_pair_levels_differ_without_sharing():
    clean = _clean()
    pair = NoisyPair(RandGaussianSigmaNoise((0.01, 0.5)), share_level=False).set_random_state(1)
    ratios = []
    for _ in range(5):
        a, b, _, _ = pair(clean)
        ratios.append((a - clean).std() / (b - clean).std())
    assert max(abs(np.log(ratios))) > 0.1


def test_n2c_pair_targets_the_clean_image():
    clean = (_clean() * 100).astype(np.uint8)
    noisy, target, noisy_mask, target_mask = NoisyPair(RandPoissonNoise(30.0), mode="n2c")(clean)
    assert target.dtype == np.float32
    np.testing.assert_array_equal(target, clean)
    assert noisy_mask is None and target_mask is None and not np.array_equal(noisy, target)


def test_bernoulli_pair_returns_independent_masks():
    a, b, mask_a, mask_b = NoisyPair(RandBernoulliNoise(0.5)).set_random_state(0)(_clean())
    assert mask_a.shape == mask_b.shape == (1, 96, 96)
    agreement = (mask_a == mask_b).mean()
    assert abs(agreement - 0.5) < 0.03  # independent p=0.5 masks agree half the time


def test_pair_mode_is_checked():
    with pytest.raises(ValueError, match="mode must be one of .* got 'n2v'"):
        NoisyPair(RandGaussianSigmaNoise(0.1), mode="n2v")
    with pytest.raises(TypeError, match="corruption must be a medden RandCorruption"):
        NoisyPair(lambda x: x)


def test_noisy_paird_matches_array_and_routes_keys():
    clean = _clean()
    expected = NoisyPair(RandBernoulliNoise((0.3, 0.7))).set_random_state(5)(clean)
    d = NoisyPaird("image", RandBernoulliNoise((0.3, 0.7))).set_random_state(5)({"image": clean})
    for key, value in zip((Keys.INPUT, Keys.TARGET, Keys.INPUT_MASK, Keys.TARGET_MASK), expected):
        np.testing.assert_array_equal(d[key], value)
    np.testing.assert_array_equal(d["image"], clean)
    with pytest.raises(ValueError, match="exactly one source image"):
        NoisyPaird(["a", "b"], RandBernoulliNoise(0.5))


def test_recorrupt_gaussian_adds_extra_noise_to_the_noisy_image():
    noisy = _clean((1, 128, 128))
    further, target, further_mask, target_mask = Recorrupt(RandGaussianSigmaNoise(0.1)).set_random_state(0)(noisy)
    np.testing.assert_array_equal(target, noisy)
    assert abs((further - noisy).std() - 0.1) < 0.005
    assert further_mask is None and target_mask is None


def test_recorrupt_bernoulli_masks_pixels_missing_in_the_target():
    clean = _clean((1, 128, 128))
    noisy, observed = RandBernoulliNoise(0.6).set_random_state(0).corrupt(clean)
    further, target, further_mask, target_mask = Recorrupt(RandBernoulliNoise(0.8)).set_random_state(1)(noisy)
    np.testing.assert_array_equal(target_mask, observed)  # inferred from y != 0
    assert np.all(further_mask <= target_mask)  # y' is missing wherever y is
    assert abs(further_mask.sum() / target_mask.sum() - 0.8) < 0.02
    np.testing.assert_array_equal(further, noisy * further_mask)


def test_recorrupt_uses_a_given_observed_mask_and_checks_its_shape():
    noisy = _clean((1, 32, 32))
    given = np.zeros((1, 32, 32), np.float32)
    given[..., :16] = 1
    _, _, further_mask, target_mask = Recorrupt(RandBernoulliNoise(0.5))(noisy, observed_mask=given)
    np.testing.assert_array_equal(target_mask, given)
    assert further_mask[..., 16:].sum() == 0
    with pytest.raises(ValueError, match=r"observed_mask must have shape \(1, 32, 32\)"):
        Recorrupt(RandBernoulliNoise(0.5))(noisy, observed_mask=given[..., :8])


def test_recorruptd_chains_after_bernoulli_noised_and_keeps_meta():
    affine = torch.diag(torch.tensor([0.9, 0.9, 1.0, 1.0], dtype=torch.float64))
    data = {"image": MetaTensor(torch.as_tensor(_clean((1, 64, 64))), affine=affine)}
    data = RandBernoulliNoised("image", 0.5).set_random_state(0)(data)
    out = Recorruptd("image", RandBernoulliNoise(0.7), observed_mask_key="image_mask").set_random_state(1)(data)
    np.testing.assert_array_equal(as_numpy(out[Keys.TARGET_MASK]), as_numpy(data["image_mask"]))
    assert isinstance(out[Keys.INPUT], MetaTensor)
    torch.testing.assert_close(out[Keys.INPUT].affine, affine)
    with pytest.raises(KeyError):
        Recorruptd("image", RandBernoulliNoise(0.7), observed_mask_key="absent")({"image": _clean()})


def test_pair_seeding_is_reproducible():
    a = NoisyPair(RandPoissonNoise((5, 50))).set_random_state(3)(_clean())
    b = NoisyPair(RandPoissonNoise((5, 50))).set_random_state(3)(_clean())
    for x, y in zip(a[:2], b[:2]):
        np.testing.assert_array_equal(x, y)
