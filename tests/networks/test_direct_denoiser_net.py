"""Tests for medden.networks.direct_denoiser: sizes, parameter count, gradients, checkpoints."""

import io
from itertools import pairwise

import pytest
import torch
from torch import nn

from medden.networks.direct_denoiser import DirectDenoiser


def _conv(a: int, b: int) -> int:
    return 9 * a * b + b  # 3x3 kernel plus bias


def _residual(a: int, b: int) -> int:
    return _conv(a, b) + _conv(b, b) + (a * b + b if a != b else 0)  # 1x1 projection when widths differ


def _expected_parameters(in_channels: int, out_channels: int, depth: int, base: int) -> int:
    widths = [base * 2 ** level for level in range(depth + 1)]
    count = _conv(in_channels, widths[0]) + _conv(widths[0], out_channels)
    count += sum(_residual(w, w) for w in widths)  # a residual block at every level, bottom included
    count += sum(_conv(a, b) + _conv(b, a) for a, b in pairwise(widths))  # stride-2 down, conv after upsampling
    count += sum(_residual(2 * w, w) for w in widths[:-1])  # residual block after each concatenation
    return count


def test_parameter_count_matches_the_seed_description():
    net = DirectDenoiser()
    count = sum(p.numel() for p in net.parameters())
    assert count == _expected_parameters(1, 1, 4, 32)
    assert 11_500_000 < count < 12_500_000  # "approximately 12 million parameters"


def test_layout_of_the_seed_description():
    net = DirectDenoiser(depth=2, base_filters=8)
    upsamplers = [m for m in net.modules() if isinstance(m, nn.Upsample)]
    assert len(upsamplers) == 2 and all(m.mode == "nearest" for m in upsamplers)
    strided = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert [m.out_channels for m in strided] == [16, 32]
    assert not any(isinstance(m, (nn.ConvTranspose2d, nn.MaxPool2d, nn.BatchNorm2d)) for m in net.modules())


@pytest.mark.parametrize("height, width", [(13, 19), (3, 5), (1, 2), (16, 16), (20, 20)])
def test_any_size_keeps_shape(height, width):
    net = DirectDenoiser(in_channels=2, out_channels=1, depth=2, base_filters=8)
    out = net(torch.randn(2, 2, height, width))
    assert out.shape == (2, 1, height, width)
    assert torch.isfinite(out).all()


def test_padding_is_cropped_back_to_the_input_window():
    # 14 is not a multiple of 4: the call must equal the U-Net on the centred reflection-padded
    # 16 x 16 image (which needs no padding), cropped back to the input's window
    torch.manual_seed(0)
    net = DirectDenoiser(depth=2, base_filters=8)
    x = torch.randn(1, 1, 14, 14)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    torch.testing.assert_close(net(x), net(padded)[..., 1:15, 1:15])


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = DirectDenoiser(depth=2, base_filters=8)
    net(torch.randn(2, 1, 13, 19)).pow(2).mean().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_state_dict_round_trip_weights_only():
    torch.manual_seed(0)
    net, x = DirectDenoiser(depth=2, base_filters=8), torch.randn(1, 1, 13, 19)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    restored = DirectDenoiser(depth=2, base_filters=8)
    assert not torch.allclose(restored(x), net(x))
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(restored(x), net(x))


@pytest.mark.parametrize("name", ["in_channels", "out_channels", "depth", "base_filters"])
def test_bad_arguments_raise(name):
    with pytest.raises(ValueError, match=f"{name} must be an int >= 1, got 0"):
        DirectDenoiser(**{name: 0})
    with pytest.raises(ValueError, match=r"x must be \(B, C, H, W\)"):
        DirectDenoiser(depth=1, base_filters=4)(torch.zeros(1, 8, 8))
