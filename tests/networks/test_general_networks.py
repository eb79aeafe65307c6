"""The default model's U-Nets: version 2 (bilinear) takes any size and cannot print a 2-pixel grid."""

import pytest
import torch

from medden.networks import BilinearResUNet, FastResUNet, general_denoiser_net


def _randomised(net: torch.nn.Module) -> torch.nn.Module:
    """Random weights everywhere, the zero-initialised output layer included (an untrained net is the identity)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
    return net.eval()


def _grid_amplitude(image: torch.Tensor) -> float:
    """Largest mean of ``image * p`` over the 2-pixel patterns p = (-1)^h, (-1)^w, (-1)^(h+w), away from the borders."""
    inner = image[0, 0, 24:-24, 24:-24].double()
    h = torch.arange(inner.shape[0])[:, None] % 2 * 2 - 1
    w = torch.arange(inner.shape[1])[None, :] % 2 * 2 - 1
    return max(float((inner * pattern).mean().abs()) for pattern in (h, w, h * w))


@pytest.mark.parametrize("unet", [FastResUNet, BilinearResUNet])
def test_untrained_unets_are_the_identity_map_of_a_residual_denoiser(unet):
    x = torch.rand(1, 1, 48, 64)
    with torch.no_grad():
        assert torch.equal(general_denoiser_net(architecture="pixel_shuffle" if unet is FastResUNet else "bilinear")(x), x)


def test_the_bilinear_unet_adds_no_two_pixel_pattern_where_the_pixel_shuffle_unet_does():
    smooth = torch.linspace(0.2, 0.8, 128)[None, :].repeat(128, 1)[None, None]  # a ramp: no pattern at all
    with torch.no_grad():
        old = _randomised(FastResUNet(channels=(8, 16, 32)))(smooth)
        new = _randomised(BilinearResUNet(channels=(8, 16, 32), full_channels=8))(smooth)
    # version 1's grid (printed into clean CT) is a coherent pattern, a large part of the output's spread;
    # version 2's output holds only the incoherent remainder of its (random, untrained) texture
    assert _grid_amplitude(old) > 0.2 * float(old.std())
    assert _grid_amplitude(new) < 0.01 * float(new.std())


def test_the_bilinear_unet_takes_any_size_and_keeps_it():
    net = _randomised(BilinearResUNet(channels=(4, 8), full_channels=4))
    for shape in [(1, 1, 17, 45), (2, 1, 64, 64), (1, 1, 5, 3)]:
        with torch.no_grad():
            assert net(torch.rand(shape)).shape == shape


def test_general_denoiser_net_names_a_bad_architecture():
    with pytest.raises(ValueError, match="architecture must be one of"):
        general_denoiser_net(architecture="transposed")
    with pytest.raises(ValueError, match="at least two levels"):
        BilinearResUNet(channels=(8,))
