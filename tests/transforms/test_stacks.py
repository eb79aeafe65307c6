"""Slice stacks for the 2.5D model: reflected indices, real-volume stacks, deformed stacks of one image, noisy pairs."""

import numpy as np
import pytest

from medden.transforms import (
    NoisyStackPair,
    NoisyStackPaird,
    RandGaussianSigmaNoise,
    RandPseudoStack,
    RandPseudoStackd,
    RandVolumeStack,
    RandVolumeStackd,
    stack_indices,
)


def _reflected(depth, neighbours, centre, step):
    """Reference: numpy's "reflect" padding (no repeated edge), read at ``centre + j * step``."""
    pad = neighbours * step + 1
    padded = np.pad(np.arange(depth), pad, mode="reflect")
    return [int(padded[pad + centre + j * step]) for j in range(-neighbours, neighbours + 1)]


def test_stack_indices_reflect_at_both_ends_without_repeating_the_edge_slice():
    assert stack_indices(5, 2, 0) == [2, 1, 0, 1, 2]  # slice 0's neighbour -1 is slice 1, not 0 again
    assert stack_indices(5, 2, 4) == [2, 3, 4, 3, 2]
    assert stack_indices(5, 1, 2) == [1, 2, 3]
    assert stack_indices(2, 2, 1) == [1, 0, 1, 0, 1]
    assert stack_indices(1, 2, 0) == [0] * 5  # a single image: itself 2n + 1 times
    for depth in range(2, 9):
        for neighbours in (1, 2):
            for step in (1, 2, 3):
                for centre in range(depth):
                    assert stack_indices(depth, neighbours, centre, step) == _reflected(depth, neighbours, centre, step)
    with pytest.raises(ValueError, match="depth must be at least 1"):
        stack_indices(0, 1, 0)


def test_stack_indices_at_step_2_keep_the_centre_parity():
    """Neighbour-slice pairs rely on it: the input stack of slice k never holds k - 1 or k + 1."""
    for depth in range(2, 12):
        for neighbours in (1, 2, 3):
            for centre in range(depth):
                picks = stack_indices(depth, neighbours, centre, 2)
                assert all(0 <= i < depth and i % 2 == centre % 2 for i in picks), (depth, neighbours, centre, picks)


def _volume(depth=9, size=(12, 10), seed=0):
    return np.random.default_rng(seed).random((1, *size, depth)).astype(np.float32)


def _which_slices(stack, volume):
    """Index of the volume slice each channel of ``stack`` is (exactly), else -1."""
    return [next((k for k in range(volume.shape[-1]) if np.array_equal(c, volume[0, ..., k])), -1) for c in stack]


def test_rand_volume_stack_takes_real_slices_at_the_drawn_step():
    volume = _volume()
    seen_steps = set()
    for seed in range(30):
        stack = RandVolumeStack(neighbours=2, steps=(1, 3)).set_random_state(seed)(volume)
        assert stack.shape == (5, 12, 10) and stack.dtype == np.float32
        picks = _which_slices(stack, volume)
        expected = [(step, idx) for step in (1, 3) for c in range(9)
                    for idx in (stack_indices(9, 2, c, step), stack_indices(9, 2, c, step)[::-1])]
        matches = {step for step, idx in expected if idx == picks}
        assert matches, picks
        seen_steps |= matches
    assert seen_steps == {1, 3}


def test_rand_volume_stack_is_seeded_and_checks_shapes():
    volume = _volume()
    first = [RandVolumeStack(2).set_random_state(7)(volume) for _ in range(2)]
    maker = RandVolumeStack(2).set_random_state(7)
    again = [maker(volume) for _ in range(3)]
    assert np.array_equal(first[0], first[1]) and np.array_equal(first[0], again[0])
    assert not all(np.array_equal(again[0], a) for a in again[1:])  # new draws on later calls
    twin = RandVolumeStackd(keys="clean", neighbours=2).set_random_state(7)
    assert np.array_equal(twin({"clean": volume})["clean"], first[0])
    for shape in ((12, 10, 9), (2, 12, 10, 9), (1, 12, 10)):
        with pytest.raises(ValueError, match=r"volume must be \(1, H, W, D\)"):
            RandVolumeStack(2)(np.zeros(shape, np.float32))


def _smooth_image(size=64, seed=0):
    from scipy.ndimage import gaussian_filter

    noise = np.random.default_rng(seed).standard_normal((size, size))
    return (gaussian_filter(noise, 3.0) * 10 + 0.5).astype(np.float32)[None]


def test_rand_pseudo_stack_keeps_the_image_at_the_centre_and_deforms_more_with_distance():
    image = _smooth_image()
    near, far = [], []
    for seed in range(6):
        stack = RandPseudoStack(2, shift_range=(1.5, 2.5), drift=0.03).set_random_state(seed)(image)
        assert stack.shape == (5, 64, 64) and stack.dtype == np.float32
        assert np.array_equal(stack[2], image[0])  # channel n is the image itself, exactly
        near += [np.abs(stack[1] - image[0]).mean(), np.abs(stack[3] - image[0]).mean()]
        far += [np.abs(stack[0] - image[0]).mean(), np.abs(stack[4] - image[0]).mean()]
    assert min(near) > 0
    assert np.mean(far) > 1.5 * np.mean(near), (np.mean(near), np.mean(far))


def test_rand_pseudo_stack_of_zero_amplitude_repeats_the_image():
    image = _smooth_image()
    stack = RandPseudoStack(2, shift_range=(0.0, 0.0), drift=0.0).set_random_state(0)(image)
    np.testing.assert_allclose(stack, np.repeat(image, 5, axis=0), rtol=0, atol=1e-5)  # grid round-off only


def test_rand_pseudo_stack_is_seeded_and_checks_its_arguments():
    image = _smooth_image()
    a = RandPseudoStack(1).set_random_state(3)(image)
    b = RandPseudoStack(1).set_random_state(3)(image)
    c = RandPseudoStack(1).set_random_state(4)(image)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(RandPseudoStackd(keys="clean", neighbours=1).set_random_state(3)({"clean": image})["clean"], a)
    with pytest.raises(ValueError, match=r"img must be \(1, H, W\)"):
        RandPseudoStack(1)(image[0])
    with pytest.raises(ValueError, match="shift_range"):
        RandPseudoStack(1, shift_range=(2.0, 1.0))


def test_noisy_stack_pair_noises_each_slice_independently_at_one_level():
    clean = np.full((5, 64, 64), 0.5, np.float32)
    pair = NoisyStackPair(RandGaussianSigmaNoise((0.02, 0.3)), mode="n2n", lone_prob=0.0).set_random_state(0)
    for _ in range(4):
        noisy, target, input_mask, target_mask = pair(clean)
        assert noisy.shape == (5, 64, 64) and target.shape == (1, 64, 64) and noisy.dtype == np.float32
        assert input_mask is None and target_mask is None
        noise = np.concatenate([noisy, target]) - 0.5  # 5 input slices and the target: 6 realisations
        stds = noise.reshape(6, -1).std(axis=1)
        assert stds.max() / stds.min() < 1.1, stds  # one level (drawn from 0.02-0.3) for every slice
        correlation = np.corrcoef(noise.reshape(6, -1))
        assert np.abs(correlation[~np.eye(6, dtype=bool)]).max() < 0.07, correlation  # independent draws


def test_noisy_stack_pair_targets_and_lone_stacks():
    clean = np.stack([np.full((16, 16), k, np.float32) for k in range(3)])  # slice k holds k
    noisy, target, _, _ = NoisyStackPair(RandGaussianSigmaNoise(0.01), mode="n2c", lone_prob=0.0)(clean)
    assert np.array_equal(target, clean[1:2])  # the clean centre
    assert np.abs(noisy.mean(axis=(1, 2)) - [0, 1, 2]).max() < 0.01  # slices kept in order
    lone = NoisyStackPair(RandGaussianSigmaNoise(0.1), mode="n2n", lone_prob=1.0).set_random_state(0)
    noisy, target, _, _ = lone(clean)
    assert all(np.array_equal(noisy[k], noisy[1]) for k in range(3))  # the noisy centre, repeated
    assert abs(noisy.mean() - 1.0) < 0.02 and not np.array_equal(target[0], noisy[1])
    with pytest.raises(ValueError, match=r"stack must be \(2n \+ 1, H, W\)"):
        lone(clean[:2])
    with pytest.raises(ValueError, match="mode must be"):
        NoisyStackPair(RandGaussianSigmaNoise(0.1), mode="n2v")


def test_noisy_stack_paird_is_seeded_and_writes_input_and_target():
    clean = np.full((3, 8, 8), 0.5, np.float32)
    twin = NoisyStackPaird(keys="clean", corruption=RandGaussianSigmaNoise(0.1)).set_random_state(2)
    out = twin({"clean": clean})
    noisy, target, _, _ = NoisyStackPair(RandGaussianSigmaNoise(0.1)).set_random_state(2)(clean)
    assert np.array_equal(out["input"], noisy) and np.array_equal(out["target"], target)
    assert "input_mask" not in out and np.array_equal(out["clean"], clean)
