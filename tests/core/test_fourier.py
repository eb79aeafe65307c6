"""k-space operators, the Fourier-domain Noise2Noise loss, data consistency and reconstruction."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medden.core.fourier import check_kspace, data_consistency, to_image, to_kspace
from medden.inference.kspace import density_weights, reconstruct_kspace, zero_filled_input
from medden.losses import FourierDomainLoss, noise2noise_loss, noise2noise_uses_mask
from medden.networks import KspaceDenoiser, general_denoiser_net
from medden.transforms import RadialBernoulliMask, RandKspacePair, RandKspaceUndersample, RandomLineMask

SHAPE = (32, 24)


def _radial_mask(batch, seed=0):
    mask_func = RadialBernoulliMask(edge_probability=0.1).set_random_state(seed)
    return torch.stack([torch.as_tensor(mask_func(SHAPE).mask)[None] for _ in range(batch)])


def _images(batch, channels, seed=0):
    return torch.rand(batch, channels, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("is_complex", [False, True])
def test_fft_round_trip_and_parseval(is_complex):
    x = _images(3, 2 if is_complex else 1)
    k = to_kspace(x, is_complex)
    assert k.shape == (3, 1, *SHAPE, 2)
    torch.testing.assert_close(to_image(k, is_complex), x)
    torch.testing.assert_close(k.square().sum(), x.square().sum())


@pytest.mark.parametrize("is_complex", [False, True])
def test_target_restricted_loss_equals_image_mse_under_a_full_mask(is_complex):
    pred, clean = _images(2, 2 if is_complex else 1), _images(2, 2 if is_complex else 1, seed=1)
    full = torch.ones(2, 1, *SHAPE, dtype=torch.float64)
    loss = FourierDomainLoss("target", is_complex)(pred, to_kspace(clean, is_complex), full)
    torch.testing.assert_close(loss, F.mse_loss(pred, clean))


def test_target_restricted_loss_is_the_mean_over_sampled_frequencies_only():
    pred, clean = _images(2, 1), _images(2, 1, seed=1)
    mask = _radial_mask(2).to(torch.float64)
    target = to_kspace(clean) * mask[..., None]
    target_with_garbage = target + (1 - mask[..., None]) * 1e6  # unsampled values are never read
    loss = FourierDomainLoss("target")(pred, target_with_garbage, mask)
    residual = (to_kspace(pred) - target).square().sum(-1)
    torch.testing.assert_close(loss, (residual * mask).sum() / mask.sum())


def test_overwrite_loss_is_the_reference_image_domain_mse():
    pred, target = _images(2, 1), _images(2, 1, seed=1)
    clean = _images(2, 1, seed=2)
    mask = _radial_mask(2, seed=3).to(torch.float64)
    input_kspace = to_kspace(clean) * mask[..., None]
    loss = FourierDomainLoss("overwrite")(pred, target, None, input_kspace, mask)
    expected = (to_image(torch.where(mask[..., None] > 0, input_kspace, to_kspace(pred))) - target).square().mean()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("is_complex", [False, True])
def test_zero_gradient_on_unsampled_frequencies(is_complex):
    channels = 2 if is_complex else 1
    pred = _images(2, channels).requires_grad_()
    # Hermitian-symmetric radial masks for real images; any mask for complex ones
    mask = _radial_mask(2) if not is_complex else (torch.rand(2, 1, *SHAPE) < 0.3).float()
    mask = mask.to(torch.float64)
    target = to_kspace(_images(2, channels, seed=1), is_complex) * mask[..., None]
    FourierDomainLoss("target", is_complex)(pred, target, mask).backward()
    spectrum_of_gradient = to_kspace(pred.grad, is_complex).abs().sum(-1)
    assert spectrum_of_gradient[mask.expand_as(spectrum_of_gradient) == 0].max() < 1e-12
    assert spectrum_of_gradient[mask.expand_as(spectrum_of_gradient) == 1].max() > 1e-6


def test_overwrite_loss_has_zero_gradient_on_the_input_frequencies():
    pred = _images(2, 2).requires_grad_()
    mask = (torch.rand(2, 1, *SHAPE, generator=torch.Generator().manual_seed(0)) < 0.3).to(torch.float64)
    input_kspace = to_kspace(_images(2, 2, seed=1), True) * mask[..., None]
    FourierDomainLoss("overwrite", is_complex=True)(pred, _images(2, 2, seed=2), None, input_kspace, mask).backward()
    spectrum_of_gradient = to_kspace(pred.grad, True).abs().sum(-1)
    assert spectrum_of_gradient[mask.expand_as(spectrum_of_gradient) == 1].max() < 1e-12


@pytest.mark.parametrize("is_complex", [False, True])
def test_data_consistency_keeps_measured_samples_exactly(is_complex):
    channels = 2 if is_complex else 1
    measured_image = _images(3, channels)
    mask = (_radial_mask(3) if not is_complex else (torch.rand(3, 1, *SHAPE) < 0.4).float()).to(torch.float64)
    kspace = to_kspace(measured_image, is_complex) * mask[..., None]
    estimate = _images(3, channels, seed=5)
    consistent = data_consistency(estimate, kspace, mask, is_complex)
    result = to_kspace(consistent, is_complex)
    sampled = mask[..., None].expand_as(result) > 0
    torch.testing.assert_close(result[sampled], kspace[sampled], atol=1e-12, rtol=0)
    torch.testing.assert_close(result[~sampled], to_kspace(estimate, is_complex)[~sampled], atol=1e-12, rtol=0)


def test_kspace_denoiser_is_the_network_alone_or_with_data_consistency():
    net = general_denoiser_net(channels=(4, 8))
    torch.nn.init.normal_(net.net.tail[0].weight, std=0.1)
    model = KspaceDenoiser(net).eval()
    x = torch.rand(2, 1, 32, 32)
    mask = RadialBernoulliMask().set_random_state(0)((32, 32)).mask
    mask = torch.as_tensor(mask)[None, None].expand(2, 1, 32, 32)
    kspace = to_kspace(torch.rand(2, 1, 32, 32)) * mask[..., None]
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x))
        torch.testing.assert_close(model(x, kspace, mask), data_consistency(net(x), kspace, mask))
    with pytest.raises(ValueError, match="needs the sampling mask"):
        model(x, kspace)


def test_undersampling_keeps_raw_samples_and_compensates_only_the_zero_filled_image():
    img = np.random.default_rng(0).uniform(size=(1, *SHAPE)).astype(np.float32)
    undersample = RandKspaceUndersample("radial_bernoulli", output="real").set_random_state(0)
    kspace, mask, zero_filled = undersample(img)
    pattern = undersample.pattern
    full = to_kspace(torch.as_tensor(img)[None])[0].numpy()
    np.testing.assert_allclose(kspace, full * pattern.mask[None, ..., None], atol=1e-6)
    weights = np.where(pattern.mask > 0, pattern.mask / pattern.density, 0)[None, None]
    expected = to_image(torch.as_tensor(full[None] * weights[..., None]))[0].numpy()
    np.testing.assert_allclose(zero_filled, expected, atol=1e-5)


def test_clean_target_pair_has_a_fully_sampled_target_and_independent_draws():
    img = np.random.default_rng(0).uniform(size=(1, 64, 64)).astype(np.float32)
    first, clean = RandKspacePair("radial_bernoulli", output="real", target_mask="full").set_random_state(0)(img)
    np.testing.assert_allclose(clean.image, img, atol=1e-5)
    assert first.mask.mean() < 0.5 and clean.mask.min() == 1
    a, b = RandKspacePair("random_lines", {"acceleration": 4}).set_random_state(1)(img)
    assert not np.array_equal(a.mask, b.mask)


def test_density_weights_match_the_training_compensation():
    pattern = RadialBernoulliMask().set_random_state(3)(SHAPE)
    weights = density_weights(pattern.mask[None], "radial_bernoulli")
    np.testing.assert_allclose(weights[0], np.where(pattern.mask > 0, 1 / pattern.density, 0), rtol=1e-6)
    np.testing.assert_array_equal(density_weights(pattern.mask[None]), pattern.mask[None])


def test_reconstruction_keeps_measurements_and_refuses_phase_for_a_real_model():
    clean = torch.rand(3, 1, 32, 32)
    mask = torch.as_tensor(RadialBernoulliMask().set_random_state(0)((32, 32)).mask)[None]
    kspace = (to_kspace(clean) * mask[None, ..., None]).numpy()
    recon = reconstruct_kspace(general_denoiser_net(channels=(4, 8)), kspace, mask.numpy(), mask.numpy())
    assert recon.shape == (3, 1, 32, 32) and recon.dtype == np.float32
    measured = mask[None, ..., None].expand(3, 1, 32, 32, 2) > 0
    torch.testing.assert_close(to_kspace(torch.as_tensor(recon))[measured], torch.as_tensor(kspace)[measured],
                               atol=1e-5, rtol=0)
    phased = to_kspace(torch.cat([clean, clean], dim=1), is_complex=True)
    with pytest.raises(ValueError, match="this k-space has phase"):
        zero_filled_input(phased, torch.ones(1, 32, 32))
    assert zero_filled_input(phased, torch.ones(1, 32, 32), is_complex=True).shape == (3, 2, 32, 32)


def test_reconstruction_accepts_sizes_the_network_cannot_take_directly():
    net = general_denoiser_net(channels=(4, 8))  # needs multiples of 4
    torch.nn.init.normal_(net.net.tail[0].weight, std=0.1)
    clean = torch.rand(2, 1, 30, 22)
    mask = torch.as_tensor(RadialBernoulliMask().set_random_state(1)((30, 22)).mask)[None]
    kspace = (to_kspace(clean) * mask[None, ..., None]).numpy()
    recon = reconstruct_kspace(net, kspace, mask.numpy(), mask.numpy())
    assert recon.shape == (2, 1, 30, 22)
    measured = mask[None, ..., None].expand(2, 1, 30, 22, 2) > 0
    torch.testing.assert_close(to_kspace(torch.as_tensor(recon))[measured], torch.as_tensor(kspace)[measured],
                               atol=1e-5, rtol=0)


def test_loss_by_noise_follows_noise2noise():
    assert type(noise2noise_loss("gaussian")).__name__ == "MaskedMSELoss"
    assert type(noise2noise_loss("text")).__name__ == "MaskedL1Loss"
    assert type(noise2noise_loss("impulse")).__name__ == "AnnealedL0Loss"
    assert noise2noise_uses_mask("bernoulli") and not noise2noise_uses_mask("text")
    with pytest.raises(ValueError, match="unknown noise 'speckle'"):
        noise2noise_loss("speckle")


def _kspace(shape=(2, 1, *SHAPE, 2)):
    return torch.zeros(shape)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: check_kspace(torch.zeros(2, 1, *SHAPE)), "must be complex with a trailing"),
        (lambda: check_kspace(_kspace().index_fill_(0, torch.tensor([0]), float("nan"))), "NaN or infinite"),
        (lambda: check_kspace(_kspace(), torch.ones(2, 1, 16, 24)), "does not match the k-space's"),
        (lambda: check_kspace(_kspace(), torch.zeros(2, 1, *SHAPE)), "all zero: nothing was measured"),
        (lambda: FourierDomainLoss("target")(torch.zeros(2, 1, *SHAPE), torch.zeros(2, 1, *SHAPE),
                                              torch.ones(2, 1, *SHAPE)), "real-only data cannot be k-space"),
        (lambda: FourierDomainLoss("target")(torch.zeros(2, 1, *SHAPE), _kspace(), torch.ones(2, 1, 16, 24)),
         "sampling mask for target must have shape"),
        (lambda: FourierDomainLoss("overwrite")(torch.zeros(2, 1, *SHAPE), torch.zeros(2, 1, *SHAPE)),
         "needs input_kspace"),
        (lambda: FourierDomainLoss("overwrite")(torch.zeros(2, 1, *SHAPE), torch.zeros(2, 1, *SHAPE),
                                                 torch.ones(2, 1, *SHAPE)), "pass mask=None"),
        (lambda: FourierDomainLoss("sideways"), "restrict must be one of"),
        (lambda: to_kspace(torch.zeros(1, 3, 8, 8), is_complex=True), "even channel count"),
        (lambda: RandomLineMask(0.1, 4)((8,)), "spatial_shape must be 2 or 3"),
    ],
)
def test_bad_input_gets_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
