"""Training pairs are scaled by the noisy input's range, as medden denoise scales a user's image."""

import numpy as np
import pytest
import torch

from medden.core.intensity import intensity_range
from medden.transforms import ScaleByNoisyRange, ScaleByNoisyRanged


def test_the_reference_range_maps_to_zero_and_one_and_is_applied_to_the_other_image():
    rng = np.random.default_rng(0)
    noisy = (200 + 800 * rng.random((1, 40, 50))).astype(np.float32)
    target = noisy + 5.0
    scaler = ScaleByNoisyRange(percentiles=(0.5, 99.5), smoothing=5)
    low, high = intensity_range(noisy, (0.5, 99.5), 5)
    np.testing.assert_allclose(scaler(noisy), (noisy - low) / (high - low), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scaler(target, reference=noisy), (target - low) / (high - low), rtol=1e-5, atol=1e-6)
    assert scaler(torch.as_tensor(noisy)).dtype == torch.float32  # the container type is kept


def test_the_dict_twin_uses_one_range_from_the_reference_key_for_every_key():
    rng = np.random.default_rng(1)
    clean = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (64, 1))[None]
    noisy = clean + 0.2 * rng.standard_normal(clean.shape).astype(np.float32)
    out = ScaleByNoisyRanged(keys=["input", "target"], reference_key="input")({"input": noisy, "target": clean})
    # the same affine map for both: the difference keeps its shape, only scaled
    ratio = (out["input"] - out["target"]) / (noisy - clean)
    assert np.ptp(ratio) < 1e-3 * abs(ratio.mean())
    # the clean image's own range would map it to exactly [0, 1]; the noisy range does not
    assert out["target"].min() > 0.01 and out["target"].max() < 0.99


def test_a_missing_reference_key_is_named():
    with pytest.raises(KeyError, match="reference_key 'input'"):
        ScaleByNoisyRanged(keys=["target"])({"target": np.zeros((1, 4, 4), np.float32)})


def test_a_range_narrower_than_min_range_is_widened_about_its_middle():
    rng = np.random.default_rng(2)
    air = 0.001 * rng.standard_normal((1, 64, 64)).astype(np.float32)
    air[0, :2, :2] = 0.8  # a few bright pixels in a crop of background
    blown_up = ScaleByNoisyRange(smoothing=0)(air)
    assert blown_up.max() > 100  # scaled by the noise alone
    kept = ScaleByNoisyRange(smoothing=0, min_range=0.1)(air)
    assert 5 < kept.max() < 10 and abs(float(np.median(kept)) - 0.5) < 0.05
    with pytest.raises(ValueError, match="min_range"):
        ScaleByNoisyRange(min_range=-1.0)
