"""SliceStackInferer: every slice denoised from its own reflected stack; bundles see it as a volume inferer."""

import pytest
import torch

from medden.bundle.bundle import runs_on_volumes
from medden.inference import ResidualGuardInferer, SelfEnsembleInferer, SliceStackInferer

WEIGHTS = torch.tensor([1.0, 10.0, 100.0])  # n = 1: below, centre, above


def _weighted_sum(stacks):
    """A network whose output is computable by hand: ``1 * below + 10 * centre + 100 * above``."""
    assert stacks.ndim == 4 and stacks.shape[1] == 3
    return (stacks * WEIGHTS[None, :, None, None]).sum(dim=1, keepdim=True)


def _volume(batch=2, depth=6, seed=0):
    return torch.rand(batch, 1, 5, 4, depth, generator=torch.Generator().manual_seed(seed))


def test_each_output_slice_is_the_network_on_that_slices_stack_reflected_at_the_ends():
    volume = _volume()
    out = SliceStackInferer(neighbours=1, sw_batch_size=4)(volume, _weighted_sum)
    assert out.shape == volume.shape
    v = volume[:, 0]
    for k in range(6):
        lower = 1 if k == 0 else k - 1  # slice 0's neighbour -1 is slice 1 (the edge is not repeated)
        upper = 4 if k == 5 else k + 1  # and slice 5's neighbour +1 is slice 4
        expected = 1 * v[..., lower] + 10 * v[..., k] + 100 * v[..., upper]
        torch.testing.assert_close(out[:, 0, ..., k], expected)


def test_two_neighbours_a_side_at_the_ends():
    volume = _volume(batch=1, depth=4)
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    network = lambda s: (s * weights[None, :, None, None]).sum(dim=1, keepdim=True)  # noqa: E731
    out = SliceStackInferer(neighbours=2)(volume, network)
    v = volume[0, 0]
    for k, picks in {0: (2, 1, 0, 1, 2), 1: (1, 0, 1, 2, 3), 3: (1, 2, 3, 2, 1)}.items():
        expected = sum(w * v[..., i] for w, i in zip(weights, picks))
        torch.testing.assert_close(out[0, 0, ..., k], expected)


def test_a_single_image_is_a_volume_of_one_slice():
    image = torch.rand(2, 1, 5, 4)
    out = SliceStackInferer(neighbours=1)(image, _weighted_sum)
    assert out.shape == image.shape
    torch.testing.assert_close(out, 111.0 * image)  # its stack repeats it


def test_batching_of_stacks_does_not_change_the_result():
    volume = _volume(depth=10)
    one = SliceStackInferer(neighbours=1, sw_batch_size=1)(volume, _weighted_sum)
    seven = SliceStackInferer(neighbours=1, sw_batch_size=7)(volume, _weighted_sum)
    torch.testing.assert_close(one, seven, rtol=0, atol=0)


def test_multi_channel_volumes_and_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="one-channel volumes, got 2 channels"):
        SliceStackInferer(neighbours=1)(torch.rand(1, 2, 5, 4, 3), _weighted_sum)
    with pytest.raises(ValueError, match="sw_batch_size"):
        SliceStackInferer(neighbours=1, sw_batch_size=0)
    with pytest.raises(TypeError, match="network must be callable"):
        SliceStackInferer(neighbours=1)(_volume(), None)


def test_bundles_run_it_on_whole_volumes_also_when_wrapped():
    stacks = SliceStackInferer(neighbours=1)
    assert runs_on_volumes(stacks)
    assert runs_on_volumes(ResidualGuardInferer(base_inferer=stacks))
    assert runs_on_volumes(SelfEnsembleInferer(base_inferer=ResidualGuardInferer(base_inferer=stacks)))
    assert not runs_on_volumes(SelfEnsembleInferer())


def test_a_lone_network_takes_single_images_and_one_slice_volumes_but_not_deeper_ones():
    lone = lambda x: x * 7.0  # noqa: E731  (a 2D network: (B, 1, H, W) in and out)
    inferer = SliceStackInferer(neighbours=1, sw_batch_size=1, lone_network=lone)
    image = torch.rand(3, 1, 5, 4)
    torch.testing.assert_close(inferer(image, _weighted_sum), image * 7.0)
    torch.testing.assert_close(inferer(image[..., None], _weighted_sum), image[..., None] * 7.0)
    two = _volume(batch=1, depth=2)  # two slices are a volume: their stacks go through the stack network
    torch.testing.assert_close(inferer(two, _weighted_sum), SliceStackInferer(neighbours=1)(two, _weighted_sum))
    with pytest.raises(TypeError, match="lone_network must be callable"):
        SliceStackInferer(lone_network="not a network")


def test_single_image_network_is_found_through_wrappers():
    from medden.bundle.bundle import single_image_network

    lone = torch.nn.Identity()
    inferer = ResidualGuardInferer(SelfEnsembleInferer(1, SliceStackInferer(1, lone_network=lone)))
    assert single_image_network(inferer) is lone and single_image_network(SliceStackInferer(1)) is None
