"""Tests for the supervised-denoising zoo (medden.networks.zoo) and CBDNet's losses."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medden.losses import (
    AsymmetricNoiseLoss,
    CBDNetLoss,
    MaskedMSELoss,
    local_noise_level,
    total_variation,
)
from medden.networks import (
    DENOISER_NETWORKS,
    CBDNet,
    PadToMultiple,
    count_parameters,
    denoiser_network,
    model_size_bytes,
)

#: small settings per registry name, so every network runs in milliseconds on one CPU thread
TINY = {
    "autoencoder": {"features": (4, 8, 8)},
    "dncnn": {"depth": 3, "features": 8},
    "ridnet": {"features": 8, "n_blocks": 1, "reduction": 4},
    "cbdnet": {"features": (4, 8, 8), "convs": (1, 1, 2), "estimator_features": 4},
    "pridnet": {"features": 4, "pool_sizes": (1, 2, 4), "level_channels": (4, 8)},
    "fast_resunet": {"channels": (4, 8), "blocks": 1},
    "basic_unet": {"features": (4, 4, 8, 8, 16, 4)},
    "direct_unet": {"depth": 2, "base_filters": 4},
    "resnet": {"features": 4, "n_blocks": 1},
}


def test_every_registry_name_has_tiny_settings():
    assert set(TINY) == set(DENOISER_NETWORKS)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", sorted(TINY))
def test_shape_dtype_and_gradient_on_odd_sizes(name, channels):
    torch.manual_seed(0)
    net = denoiser_network(name, in_channels=channels, **TINY[name])
    with torch.no_grad():  # zero-initialised output layers (FastResUNet) would block the gradient
        for parameter in net.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.1)
    for shape in [(2, channels, 37, 45), (1, channels, 17, 23)]:
        x = torch.rand(shape)
        out = net(x)
        assert out.shape == x.shape and out.dtype == torch.float32
        assert torch.isfinite(out).all()
    first = next(p for p in net.parameters() if p.ndim == 4)  # the first convolution's weight
    net.zero_grad()
    net(torch.rand(1, channels, 17, 23)).square().mean().backward()
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["dncnn", "ridnet", "cbdnet", "pridnet"])
def test_residual_networks_return_input_when_the_correction_is_zero(name):
    net = denoiser_network(name, in_channels=1, **TINY[name])
    last_conv = [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.weight.zero_()
        last_conv.bias.zero_()
    x = torch.rand(1, 1, 19, 21)
    torch.testing.assert_close(net(x), x)


def test_cbdnet_noise_map_shape_and_non_negative():
    torch.manual_seed(0)
    net = CBDNet(in_channels=3, **TINY["cbdnet"])
    x = torch.rand(2, 3, 21, 27) - 0.5
    denoised, noise_map = net(x, return_noise_map=True)
    assert denoised.shape == noise_map.shape == x.shape
    assert (noise_map >= 0).all()
    torch.testing.assert_close(net(x), denoised)


class _Recorder(nn.Module):
    """Doubles its input and records the shapes it saw."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        return 2 * x


def test_pad_to_multiple_pads_replicates_and_crops_back():
    inner = _Recorder()
    net = PadToMultiple(inner, 8)
    x = torch.rand(2, 3, 37, 45)
    torch.testing.assert_close(net(x), 2 * x)
    assert inner.seen == [(2, 3, 40, 48)]


def test_pad_to_multiple_is_a_no_op_for_divisible_sizes():
    inner = _Recorder()
    x = torch.rand(1, 1, 16, 24)
    torch.testing.assert_close(PadToMultiple(inner, 8)(x), 2 * x)
    assert inner.seen == [(1, 1, 16, 24)]


def test_pad_to_multiple_uses_replicate_padding():
    # equals the convolution of the centred, edge-replicated image, cropped to the input window
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    net = PadToMultiple(conv, 4)
    x = torch.arange(15.0).reshape(1, 1, 3, 5)
    padded = F.pad(x, (1, 2, 0, 1), mode="replicate")  # 3x5 -> 4x8, centred (left 1, right 2)
    torch.testing.assert_close(net(x), conv(padded)[..., 0:3, 1:6])


def test_pad_to_multiple_traces_and_generalises_to_other_sizes():
    net = PadToMultiple(nn.Sequential(nn.AvgPool2d(4), nn.Upsample(scale_factor=4)), 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # recent torch marks torch.jit.trace deprecated
        traced = torch.jit.trace(net, torch.rand(1, 1, 37, 45))
    x = torch.rand(2, 1, 20, 30)
    torch.testing.assert_close(traced(x), net(x))


@pytest.mark.parametrize("multiple", [0, -2])
def test_pad_to_multiple_rejects_bad_multiple(multiple):
    with pytest.raises(ValueError, match="multiple must be an int >= 1"):
        PadToMultiple(nn.Identity(), multiple)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown denoiser network 'unet9'.*'cbdnet'.*'ridnet'"):
        denoiser_network("unet9")


def test_in_channels_below_one_is_refused():
    with pytest.raises(ValueError, match="in_channels must be an int >= 1, got 0"):
        denoiser_network("dncnn", in_channels=0)


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="depth must be an int >= 2, got 1"):
        denoiser_network("dncnn", depth=1)
    with pytest.raises(ValueError, match="convs must have 3 entries"):
        denoiser_network("cbdnet", convs=(1, 1))
    with pytest.raises(TypeError, match="n_blocks must be an int"):
        denoiser_network("ridnet", n_blocks=2.5)


def test_parameter_count_and_size_match_a_hand_count():
    conv = nn.Conv2d(3, 5, kernel_size=3)
    expected = 5 * 3 * 3 * 3 + 5  # weights plus biases
    assert count_parameters(conv) == expected == 140
    assert model_size_bytes(conv) == 4 * expected
    conv.bias.requires_grad_(False)
    assert count_parameters(conv, trainable_only=True) == expected - 5


def test_paper_sized_parameter_counts():
    # DnCNN's 17 layers of 64 (Zhang et al.), RIDNet ~1.5M (Anwar & Barnes), CBDNet ~4.4M (Guo et al.)
    assert count_parameters(denoiser_network("dncnn")) == 556_097
    assert 1_450_000 < count_parameters(denoiser_network("ridnet")) < 1_550_000
    assert 4_300_000 < count_parameters(denoiser_network("cbdnet")) < 4_400_000


def test_asymmetric_loss_penalises_under_estimates_more():
    loss = AsymmetricNoiseLoss(alpha=0.3)
    true = torch.full((1, 1, 4, 4), 0.2)
    under, over = loss(true - 0.1, true), loss(true + 0.1, true)
    torch.testing.assert_close(under, torch.tensor(0.7 * 0.01))
    torch.testing.assert_close(over, torch.tensor(0.3 * 0.01))
    assert under > over


def test_asymmetric_loss_ignores_unobserved_pixels():
    true = torch.zeros(1, 1, 1, 2)
    est = torch.tensor([[[[0.5, 9.0]]]])
    mask = torch.tensor([[[[1.0, 0.0]]]])
    torch.testing.assert_close(AsymmetricNoiseLoss(alpha=0.3)(est, true, mask), torch.tensor(0.3 * 0.25))


def test_cbdnet_loss_is_mse_without_noise_maps():
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(CBDNetLoss()(pred, target), F.mse_loss(pred, target))


def test_cbdnet_loss_adds_the_weighted_noise_map_terms():
    torch.manual_seed(0)
    pred, target = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
    est, true = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
    loss = CBDNetLoss(asymmetric_weight=0.5, tv_weight=0.05, alpha=0.3)
    expected = (MaskedMSELoss()(pred, target) + 0.5 * AsymmetricNoiseLoss(0.3)(est, true)
                + 0.05 * total_variation(est))
    torch.testing.assert_close(loss(pred, target, noise_map=est, true_noise_map=true), expected)
    # with the estimate only, the asymmetric term is dropped
    torch.testing.assert_close(loss(pred, target, noise_map=est),
                               MaskedMSELoss()(pred, target) + 0.05 * total_variation(est))
    with pytest.raises(ValueError, match="true_noise_map was given without noise_map"):
        loss(pred, target, true_noise_map=true)


def test_total_variation_of_constant_and_ramp():
    assert total_variation(torch.full((2, 3, 5, 7), 0.4)).item() == 0.0
    ramp = torch.arange(6.0).reshape(1, 1, 1, 6).expand(1, 1, 4, 6)  # horizontal steps of 1
    torch.testing.assert_close(total_variation(ramp), torch.tensor(1.0))


def test_local_noise_level_recovers_gaussian_sigma():
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(1, 1, 64, 64, generator=generator)
    noisy = clean + 0.1 * torch.randn(1, 1, 64, 64, generator=generator)
    level = local_noise_level(noisy, clean.requires_grad_(), window=7)
    assert level.shape == clean.shape and not level.requires_grad
    assert abs(level.mean().item() - 0.1) < 0.005


def test_local_noise_level_rejects_even_window():
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="window must be an odd integer >= 1, got 6; use e.g. 7"):
        local_noise_level(x, x, window=6)
