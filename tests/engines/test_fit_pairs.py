"""What --fit learns from: held-out tiles, neighbour-slice and recorruption pairs, the held-out loss, the choice of scheme."""

import json

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medden.engines.fit_pairs import (
    WHITE_NOISE_CENTRE_ENERGY,
    NeighbourSlicePairs,
    RecorruptionPairs,
    choose_fit_pairs,
    has_magnitude_floor,
    held_out_loss,
    held_out_tiles,
    slice_signal_bias,
    untrusted_noise,
)

ALPHA = 0.5


def test_held_out_tiles_hold_out_a_seeded_fifth_of_whole_tiles():
    tiles = held_out_tiles(100, 130, tile=32)  # a 4 x 5 grid, edge tiles smaller
    assert tiles.shape == (100, 130) and tiles.dtype == np.int64
    assert np.unique(tiles).tolist() == [-1, 0, 1, 2, 3]  # round(0.2 * 20) tiles; -1 marks training pixels
    for tile in range(4):
        rows, cols = np.nonzero(tiles == tile)
        top, left = rows.min(), cols.min()
        assert top % 32 == 0 and left % 32 == 0  # on the grid
        assert rows.max() == min(top + 32, 100) - 1 and cols.max() == min(left + 32, 130) - 1  # the whole tile
        assert (tiles[top : rows.max() + 1, left : cols.max() + 1] == tile).all()
    assert np.array_equal(held_out_tiles(100, 130, seed=3), held_out_tiles(100, 130, seed=3))
    assert not all(np.array_equal(held_out_tiles(100, 130, seed=3), held_out_tiles(100, 130, seed=s)) for s in range(4, 8))


@pytest.mark.parametrize("shape, fraction, held", [
    ((32, 32), 0.2, 1),  # one tile: it is held out (the only case with no training pixel)
    ((64, 32), 0.01, 1),  # at least one
    ((64, 32), 1.0, 1),  # never all of two or more
    ((96, 96), 0.99, 8),
])
def test_held_out_tiles_hold_out_at_least_one_and_never_all(shape, fraction, held):
    tiles = held_out_tiles(*shape, fraction=fraction)
    assert len(np.unique(tiles[tiles >= 0])) == held


def _squares(depth=7, size=32, offset=0.0):
    """A noise-free ``(depth, size, size)`` volume whose slice ``k`` holds ``offset + k**2`` everywhere."""
    return np.stack([np.full((size, size), offset + k * k, np.float32) for k in range(depth)])


def test_neighbour_slice_targets_are_the_mean_of_the_slices_either_side():
    pairs = NeighbourSlicePairs([_squares()], neighbours=2)
    batch = next(pairs.batches(patch=16, batch_size=40, rng=np.random.default_rng(0)))
    assert batch["input"].shape == (40, 5, 16, 16)
    assert batch["target"].shape == batch["target_mask"].shape == (40, 1, 16, 16)
    centres = set()
    for x, target in zip(batch["input"], batch["target"]):
        slices = [round(float(c[0, 0]) ** 0.5) for c in x]
        assert all(torch.equal(c, torch.full_like(c, s * s)) for c, s in zip(x, slices))
        k = slices[2]
        centres.add(k)
        # ((k-1)^2 + (k+1)^2) / 2 = k^2 + 1: made of slices k - 1 and k + 1, not of slice k
        assert torch.equal(target, torch.full_like(target, k * k + 1.0))
        assert all((s - k) % 2 == 0 for s in slices), slices  # the input never holds k - 1 or k + 1
    assert centres == {1, 2, 3, 4, 5}  # every slice with two neighbours, and only those
    flat = next(NeighbourSlicePairs([_squares()]).batches(16, 4, np.random.default_rng(0)))
    assert flat["input"].shape == (4, 1, 16, 16)


def test_neighbour_slice_samples_never_mix_two_volumes():
    pairs = NeighbourSlicePairs([_squares(5), _squares(6, offset=1000.0)], neighbours=1)
    batch = next(pairs.batches(patch=16, batch_size=60, rng=np.random.default_rng(1)))
    seen = set()
    for x, target in zip(batch["input"], batch["target"]):
        values = torch.cat([x.flatten(), target.flatten()])
        assert bool((values < 500).all()) or bool((values > 500).all())  # all of the first volume or of the second
        seen.add(bool(values[0] > 500))
    assert seen == {False, True}


def _coordinates(depth=5, height=80, width=96):
    """Slice ``k`` pixel ``(r, c)`` holds ``k * 10**4 + r * width + c``: a target tells where it came from."""
    r, c = np.mgrid[:height, :width]
    return np.stack([k * 10_000 + r * width + c for k in range(depth)]).astype(np.float32)


def _mask_matches_tiles(batch, tiles):
    """Whether each target pixel's mask is 1 exactly where its source pixel trains (``tiles < 0``)."""
    width = tiles.shape[1]
    where = batch["target"].numpy().astype(np.int64) % 10_000
    expected = tiles[where // width, where % width] < 0
    return np.array_equal(batch["target_mask"].numpy() == 1, expected) and set(np.unique(batch["target_mask"])) <= {0, 1}


@pytest.mark.parametrize("patch", [40, 80, 104])  # a part, the whole height, more than the slice (reflected)
def test_training_targets_are_masked_on_every_held_out_pixel(patch):
    volume = _coordinates()
    pairs = NeighbourSlicePairs([volume], neighbours=1)
    tiles = pairs.tiles[0]
    assert 0 < (tiles >= 0).mean() < 0.5
    batch = next(pairs.batches(patch=patch, batch_size=12, rng=np.random.default_rng(2)))
    assert _mask_matches_tiles(batch, tiles)
    assert 0 < float(batch["target_mask"].mean()) < 1
    recorruption = RecorruptionPairs([volume], neighbours=1)
    recorruption.kernels = [torch.zeros_like(k) for k in recorruption.kernels]  # no recorruption: target = slice
    batch = next(recorruption.batches(patch=patch, batch_size=12, rng=np.random.default_rng(2)))
    assert _mask_matches_tiles(batch, recorruption.tiles[0])


def _noisy_volume(depth=6, size=64, sigma=0.05, seed=0):
    rng = np.random.default_rng(seed)
    return (0.5 + sigma * rng.standard_normal((depth, size, size))).astype(np.float32)


@pytest.mark.parametrize("scheme", [NeighbourSlicePairs, RecorruptionPairs])
def test_held_out_items_are_fixed_recorrupted_whole_slices(scheme):
    volume = _noisy_volume(depth=6)
    pairs = scheme([volume], neighbours=1)
    items = pairs.held_out_items()
    again = scheme([volume], neighbours=1).held_out_items()
    assert len(items) == 4
    for item, later, other in zip(items, pairs.held_out_items(), again):  # the same draws every call, every instance
        assert item.input.shape == (1, 3, 64, 64) and item.target.shape == (1, 1, 64, 64)
        assert np.array_equal(item.tiles, pairs.tiles[0])
        assert torch.equal(item.input, later.input) and torch.equal(item.target, later.target)
        assert torch.equal(item.input, other.input) and torch.equal(item.target, other.target)
    # slice 0's stack (1, 0, 1): the reflected slice carries the same draw; input - target = (alpha + 1/alpha) z
    first = items[0]
    assert torch.equal(first.input[0, 0], first.input[0, 2])
    z = (first.input[0, 1] - first.target[0, 0]) / (ALPHA + 1 / ALPHA)
    torch.testing.assert_close(first.input[0, 1], torch.from_numpy(volume[0]) + ALPHA * z)
    assert 0.035 < float(z.std()) < 0.065  # drawn at the volume's noise level (0.05)
    other_seed = scheme([volume], neighbours=1, seed=1).held_out_items()
    assert not torch.equal(items[0].target, other_seed[0].target)


def test_held_out_loss_is_the_mean_squared_error_of_each_held_out_tile_and_nothing_else():
    pairs = NeighbourSlicePairs([_noisy_volume(size=80)])
    items = pairs.held_out_items()
    identity = torch.nn.Identity()
    losses = held_out_loss(identity, items)
    expected = []
    for item in items:
        error = ((item.input - item.target) ** 2)[0, 0].numpy()
        expected += [error[item.tiles == t].mean() for t in range(item.tiles.max() + 1)]
    assert losses.dtype == np.float64 and len(losses) == len(expected) == 4 * (pairs.tiles[0].max() + 1)
    np.testing.assert_allclose(losses, expected, rtol=1e-6)

    class WrongWhereItTrains(torch.nn.Module):
        def forward(self, x):
            return x + 100.0 * torch.from_numpy(pairs.tiles[0] < 0).float()

    wrong = WrongWhereItTrains().train()
    np.testing.assert_allclose(held_out_loss(wrong, items), losses, rtol=1e-6)
    assert wrong.training  # its mode is given back


def _lag(a, b, shift):
    """Correlation of ``a`` with ``b`` shifted ``shift`` pixels along the last axis (``(H, W)`` arrays)."""
    return float(np.corrcoef(a[:, shift:].ravel(), b[:, : b.shape[1] - shift].ravel())[0, 1])


def _r2r_noises(noise):
    """Input and target noise (minus the clean 0.5) of 8 whole-image recorruption samples of ``0.5 + noise``."""
    pairs = RecorruptionPairs([(0.5 + noise).astype(np.float32)[None]], alpha=ALPHA)
    batch = next(pairs.batches(patch=noise.shape[0], batch_size=8, rng=np.random.default_rng(0)))
    return pairs, (batch["input"][:, 0] - 0.5).numpy(), (batch["target"][:, 0] - 0.5).numpy()


def test_recorruption_of_white_noise_is_plain_r2r_with_uncorrelated_input_and_target_noise():
    noise = 0.05 * np.random.default_rng(0).standard_normal((128, 128))
    pairs, inputs, targets = _r2r_noises(noise)
    assert pairs.describe()["noise_kernel_centre_energy"] > 0.95  # a delta
    for shift in (0, 1):
        assert abs(np.mean([_lag(a, t, shift) for a, t in zip(inputs, targets)])) < 0.03
    z = (inputs - targets) / (ALPHA + 1 / ALPHA)
    assert z.std() == pytest.approx(0.05, rel=0.05)


def test_recorruption_of_correlated_noise_draws_noise_correlated_alike():
    rng = np.random.default_rng(0)
    noise = gaussian_filter(rng.standard_normal((128, 128)), 1.0)
    noise = 0.05 * noise / noise.std()  # lag-1 correlation 0.78, as after a smooth CT kernel
    pairs, inputs, targets = _r2r_noises(noise)
    assert pairs.describe()["noise_kernel_centre_energy"] < 0.6
    z = (inputs - targets) / (ALPHA + 1 / ALPHA)
    assert np.mean([_lag(s, s, 1) for s in z]) == pytest.approx(_lag(noise, noise, 1), abs=0.15)  # 0.68 vs 0.78
    # input and target noise nearly independent also at lag 1 (0.11; white z of the same std: 0.31)
    assert abs(np.mean([_lag(a, t, 1) for a, t in zip(inputs, targets)])) < 0.2


def test_recorruption_stacks_draw_once_per_distinct_slice():
    volume = np.full((4, 32, 32), 0.5, np.float32)
    pairs = RecorruptionPairs([volume], neighbours=1)
    pairs.kernels = [torch.ones(1, 1, 1, 1) * 0.1]  # white noise of std 0.1
    batch = next(pairs.batches(patch=32, batch_size=40, rng=np.random.default_rng(0)))
    distinct = 0
    for x in batch["input"]:
        noise = (x - 0.5).reshape(3, -1).numpy()
        if np.array_equal(noise[0], noise[2]):  # slice 0 or 3: its reflected neighbour is one slice, one draw
            continue
        distinct += 1
        assert np.abs(np.corrcoef(noise)[np.triu_indices(3, 1)]).max() < 0.1  # three slices, three draws
    assert 10 < distinct < 40
    single = RecorruptionPairs([volume[:1]], neighbours=2)
    x = next(single.batches(patch=16, batch_size=2, rng=np.random.default_rng(0)))["input"]
    assert all(torch.equal(x[:, j], x[:, 0]) for j in range(5))  # a single image: one draw, repeated


def test_choose_fit_pairs_by_depth_and_slice_bias():
    steady = _noisy_volume(depth=8, size=128)  # neighbours differ by noise only
    chosen = choose_fit_pairs([steady], neighbours=1)
    assert isinstance(chosen, NeighbourSlicePairs) and chosen.neighbours == 1
    changing = steady + _squares(8, 128) * 0.05  # a curved change along the slices: a biased neighbour target
    assert slice_signal_bias([changing])["target_bias_to_noise"] > 0.5  # 1: the bias is the noise variance
    assert isinstance(choose_fit_pairs([changing]), RecorruptionPairs)
    for depth in (1, 2):
        assert isinstance(choose_fit_pairs([_noisy_volume(depth=depth)]), RecorruptionPairs)
    mixed = choose_fit_pairs([_noisy_volume(depth=1), steady])
    assert isinstance(mixed, RecorruptionPairs) and len(mixed.volumes) == 2
    with pytest.raises(ValueError, match="no images"):
        choose_fit_pairs([])
    with pytest.raises(ValueError, match="at least 3 slices"):
        NeighbourSlicePairs([_noisy_volume(depth=2)])
    with pytest.raises(ValueError, match="at least 16 x 16"):
        RecorruptionPairs([np.zeros((1, 8, 64), np.float32)])


def test_slice_signal_bias_sees_curvature_not_a_straight_change():
    noise = _noisy_volume(depth=8, size=96) - 0.5
    k = np.arange(8, dtype=np.float32)[:, None, None]
    straight = slice_signal_bias([noise + 0.05 * k])
    curved = slice_signal_bias([noise + 0.025 * k**2])  # (x[k-1] + x[k+1]) / 2 - x[k] = 0.025 everywhere
    # noise variance 0.05**2: a step of 0.05 is 1 of it, a target bias of 0.025 is 0.25 of it
    assert straight["target_bias_to_noise"] < 0.05 and straight["step_change_to_noise"] == pytest.approx(1.0, rel=0.15)
    assert curved["target_bias_to_noise"] == pytest.approx(0.25, rel=0.15)
    assert straight["noise_sigma"] == pytest.approx(0.05, rel=0.1)


@pytest.mark.parametrize("scheme", [NeighbourSlicePairs, RecorruptionPairs])
def test_describe_is_plain_json(scheme):
    description = scheme([_noisy_volume(depth=4)], neighbours=1).describe()
    assert json.loads(json.dumps(description)) == description
    assert description["scheme"] == scheme.name and description["slices"] == [4]


def _magnitude_volume(sigma=0.05, seed=0):
    """``(1, 64, 64, 4)`` magnitude MR: a bright square in air, the modulus of complex Gaussian noise (Rayleigh air)."""
    rng = np.random.default_rng(seed)
    signal = np.zeros((64, 64, 4))
    signal[16:48, 16:48] = 1.0
    noisy = np.abs(signal + sigma * (rng.standard_normal(signal.shape) + 1j * rng.standard_normal(signal.shape)))
    return noisy.astype(np.float32)[None]


def test_has_magnitude_floor_finds_rayleigh_air_only():
    magnitude = _magnitude_volume()
    assert has_magnitude_floor([magnitude])
    gaussian = magnitude.copy()
    gaussian[magnitude < 0.5] = np.random.default_rng(1).normal(0, 0.05, int((magnitude < 0.5).sum()))
    assert not has_magnitude_floor([gaussian])  # zero-mean air with negative values: not magnitude data
    assert has_magnitude_floor([gaussian, magnitude])


def test_untrusted_noise_names_correlated_noise_and_magnitude_floors():
    white = RecorruptionPairs([_noisy_volume(depth=2)])
    assert untrusted_noise(white, magnitude_floor=False) is None
    assert "Rician noise floor" in untrusted_noise(white, magnitude_floor=True)
    rng = np.random.default_rng(3)
    correlated = np.stack([0.5 + gaussian_filter(rng.standard_normal((64, 64)), 1.0) * 0.1 for _ in range(2)])
    reason = untrusted_noise(RecorruptionPairs([correlated.astype(np.float32)]), magnitude_floor=False)
    assert reason is not None and "correlated between pixels" in reason and f"< {WHITE_NOISE_CENTRE_ENERGY}" in reason
