"""The 2.5D denoiser: a slice with its neighbours as channels; 2D bilinear weights carry over exactly."""

import pytest
import torch

from medden.networks import SliceStackDenoiser, general_denoiser_net, stack_denoiser_net, widen_to_stack


def _randomised(net, seed=0):
    """``net`` with every parameter drawn at random (the zero tail of a new net would hide the head)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return net.eval()


def test_a_widened_2d_model_gives_exactly_the_2d_output_whatever_the_neighbours():
    flat = _randomised(general_denoiser_net(architecture="bilinear", channels=(4, 8), full_channels=4))
    stack = stack_denoiser_net(neighbours=1, channels=(4, 8), full_channels=4).eval()
    stack.load_state_dict(widen_to_stack(flat.state_dict(), neighbours=1))  # strict: every key, every shape
    x = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = flat(x[:, 1:2])
        assert expected.abs().sum() > 0 and not torch.equal(expected, x[:, 1:2])  # the 2D model does something
        torch.testing.assert_close(stack(x), expected, rtol=0, atol=1e-6)
        other = x.clone()
        other[:, [0, 2]] = torch.rand(2, 2, 20, 24)  # other neighbours, same centre
        torch.testing.assert_close(stack(other), expected, rtol=0, atol=1e-6)


def test_widen_to_stack_puts_the_head_on_the_centre_channel_only():
    state = _randomised(general_denoiser_net(architecture="bilinear", channels=(4, 8), full_channels=4)).state_dict()
    wide = widen_to_stack(state, neighbours=2)
    head = wide["net.head.0.weight"]
    assert head.shape == (4, 5, 3, 3)
    assert torch.equal(head[:, 2], state["net.head.0.weight"][:, 0])
    assert not head[:, [0, 1, 3, 4]].any()
    assert all(torch.equal(wide[k], v) for k, v in state.items() if k != "net.head.0.weight")


@pytest.mark.parametrize("state", [
    general_denoiser_net(channels=(4, 8)).state_dict(),  # the pixel-shuffle model: no bilinear head
    general_denoiser_net(architecture="bilinear", conditioned=True, channels=(4, 8)).state_dict(),  # 2 channels in
    {},
], ids=["pixel_shuffle", "noise_conditioned", "empty"])
def test_widen_to_stack_refuses_what_is_not_a_one_channel_bilinear_model(state):
    with pytest.raises(ValueError, match="expected a one-channel 2D model"):
        widen_to_stack(state, neighbours=1)


def test_an_untrained_stack_denoiser_returns_the_centre_slice():
    net = stack_denoiser_net(neighbours=2, channels=(4, 8), full_channels=4)
    x = torch.rand(1, 5, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), x[:, 2:3])


def test_a_stack_of_the_wrong_size_is_refused():
    net = SliceStackDenoiser(torch.nn.Conv2d(3, 1, 1), neighbours=1)
    assert net(torch.rand(1, 3, 4, 4)).shape == (1, 1, 4, 4)
    with pytest.raises(ValueError, match="expected a stack of 3 slices as channels, got 1"):
        net(torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="neighbours"):
        stack_denoiser_net(neighbours=-1)
