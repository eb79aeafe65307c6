"""Tests for medden.networks.ladder_vae: KL terms, ELBO, posterior sampling, sizes, checkpoints."""

import io
import math

import pytest
import torch
from torch import nn

from medden.networks.ladder_vae import LadderVAE, VAEKeys, gaussian_kl

LATENT = 4


class _GaussianNoise(nn.Module):
    """Pixel-wise Gaussian noise model ``N(x; s, sigma^2)`` (closed form, fixed sigma)."""

    def __init__(self, sigma: float = 0.1) -> None:
        super().__init__()
        self.register_buffer("sigma", torch.tensor(sigma))

    def log_likelihood(self, observed: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        return (-0.5 * ((observed - signal) / self.sigma) ** 2 - torch.log(self.sigma)
                - 0.5 * math.log(2 * math.pi))


def _vae(seed: int = 0, **kwargs) -> LadderVAE:
    torch.manual_seed(seed)
    options = {"n_groups": 2, "n_filters": 8, "latent_channels": LATENT, "noise_model": _GaussianNoise()}
    options.update(kwargs)
    return LadderVAE(**options)


def _batch(shape=(2, 1, 16, 16), seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    clean = torch.linspace(0, 1, shape[-1]).expand(shape)
    return clean + 0.1 * torch.randn(shape, generator=generator)


def _posterior_is_prior(vae: LadderVAE, monkeypatch) -> None:
    for group in vae.groups:
        monkeypatch.setattr(group, "posterior",
                            lambda top_down, bottom_up, g=group: g.prior(top_down, bottom_up.shape[:1] + bottom_up.shape[2:]))


def test_gaussian_kl_matches_torch_distributions():
    generator = torch.Generator().manual_seed(0)
    mu_q, lv_q, mu_p, lv_p = (torch.randn(3, 5, generator=generator) for _ in range(4))
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mu_q, torch.exp(0.5 * lv_q)),
                                                 torch.distributions.Normal(mu_p, torch.exp(0.5 * lv_p)))
    torch.testing.assert_close(gaussian_kl(mu_q, lv_q, mu_p, lv_p), expected)
    assert torch.equal(gaussian_kl(mu_q, lv_q, mu_q, lv_q), torch.zeros_like(mu_q))


def test_kl_per_group_non_negative_and_sums_to_total():
    vae = _vae()
    with torch.no_grad():  # move away from the initialisation so q and p differ a lot
        for parameter in vae.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    out = vae(_batch())
    assert len(out[VAEKeys.KL_PER_GROUP]) == 2
    assert all(kl.item() >= 0 for kl in out[VAEKeys.KL_PER_GROUP])
    assert out[VAEKeys.KL].item() > 0
    torch.testing.assert_close(out[VAEKeys.KL], torch.stack(out[VAEKeys.KL_PER_GROUP]).sum())
    torch.testing.assert_close(out[VAEKeys.KL], out[VAEKeys.KL_RAW])  # free_bits=0


def test_kl_is_zero_when_posterior_equals_prior(monkeypatch):
    vae = _vae()
    _posterior_is_prior(vae, monkeypatch)
    out = vae(_batch())
    assert out[VAEKeys.KL].item() == 0.0
    assert all(kl.item() == 0.0 for kl in out[VAEKeys.KL_PER_GROUP])


def test_free_bits_floor_per_group_and_channel(monkeypatch):
    free_bits, shape = 0.5, (2, 1, 16, 16)
    vae = _vae(free_bits=free_bits)
    _posterior_is_prior(vae, monkeypatch)
    out = vae(_batch(shape))
    # raw KL is 0, so each group reports its floor: free_bits per latent variable, i.e.
    # free_bits * channels * latent positions (8x8, then 4x4), per observed value (16 * 16)
    for kl, positions in zip(out[VAEKeys.KL_PER_GROUP], (64, 16)):
        assert kl.item() == pytest.approx(free_bits * LATENT * positions / 256)
    assert out[VAEKeys.KL_RAW].item() == 0.0
    torch.testing.assert_close(out[VAEKeys.ELBO_LOSS], out[VAEKeys.KL] - out[VAEKeys.LOG_LIKELIHOOD])


def test_free_bits_never_lowers_kl():
    x = _batch()
    low, high = _vae(free_bits=0.0), _vae(free_bits=0.05)
    out_low = low(x, generator=torch.Generator().manual_seed(3))
    out_high = high(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out_low[VAEKeys.KL_RAW], out_high[VAEKeys.KL_RAW])
    assert out_high[VAEKeys.KL].item() >= out_high[VAEKeys.KL_RAW].item()
    for kl, positions in zip(out_high[VAEKeys.KL_PER_GROUP], (64, 16)):
        assert kl.item() >= 0.05 * LATENT * positions / 256 - 1e-7


def test_elbo_loss_is_negative_log_likelihood_plus_kl():
    vae, x = _vae(), _batch()
    out = vae(x)
    torch.testing.assert_close(out[VAEKeys.ELBO_LOSS], out[VAEKeys.KL] - out[VAEKeys.LOG_LIKELIHOOD])
    expected_ll = vae.noise_model.log_likelihood(x, out[VAEKeys.SIGNAL]).mean()
    torch.testing.assert_close(out[VAEKeys.LOG_LIKELIHOOD], expected_ll)
    assert out[VAEKeys.SIGNAL].shape == x.shape


def test_data_normalisation_is_undone():
    # the same network, fed data scaled by (mean, std), must produce the scaled signal
    x = _batch()
    plain, scaled = _vae(), _vae(data_mean=100.0, data_std=20.0)
    signal = plain(x, generator=torch.Generator().manual_seed(0))[VAEKeys.SIGNAL]
    signal_scaled = scaled(100.0 + 20.0 * x, generator=torch.Generator().manual_seed(0))[VAEKeys.SIGNAL]
    torch.testing.assert_close(signal_scaled, 100.0 + 20.0 * signal, rtol=1e-4, atol=1e-3)


def test_sample_posterior_draws_distinct_samples():
    vae, x = _vae().eval(), _batch()
    samples = vae.sample_posterior(x, n_samples=8)
    assert samples.shape == (8, *x.shape)
    flat = samples.flatten(1)
    distances = torch.cdist(flat, flat) + torch.eye(8) * 1e9
    assert distances.min().item() > 1e-4
    assert not torch.allclose(vae.sample_posterior(x, 1)[0], vae.sample_posterior(x, 1)[0])


def test_sample_posterior_generator_reproducible_and_global_rng_untouched():
    vae, x = _vae().eval(), _batch()
    state = torch.get_rng_state()
    first = vae.sample_posterior(x, 2, generator=torch.Generator().manual_seed(7))
    second = vae.sample_posterior(x, 2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, second)
    assert torch.equal(torch.get_rng_state(), state)


def test_mean_of_posterior_samples_converges():
    vae, x = _vae().eval(), _batch((1, 1, 16, 16))
    samples = vae.sample_posterior(x, n_samples=256, generator=torch.Generator().manual_seed(0))
    single = samples.var(dim=0).mean()
    assert single.item() > 0
    for n in (4, 16):
        means = samples.reshape(256 // n, n, *samples.shape[1:]).mean(dim=1)  # 256/n means of n samples
        ratio = (means.var(dim=0).mean() / single).item()
        assert 0.7 / n < ratio < 1.4 / n, f"variance of the mean of {n} samples shrank by {ratio:.3f}, not ~1/{n}"


def test_training_steps_decrease_elbo_loss():
    vae, x = _vae(), _batch()
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)

    def evaluate() -> float:
        with torch.no_grad():
            return vae(x, generator=torch.Generator().manual_seed(0))[VAEKeys.ELBO_LOSS].item()

    before = evaluate()
    for _ in range(25):
        optimizer.zero_grad()
        vae(x)[VAEKeys.ELBO_LOSS].backward()
        optimizer.step()
    after = evaluate()
    assert after < before - 0.1 * abs(before), (before, after)


@pytest.mark.parametrize("height, width", [(13, 19), (3, 5), (1, 1), (20, 20)])
def test_any_size_keeps_shape(height, width):
    vae = _vae().eval()
    x = _batch((2, 1, height, width))
    out = vae(x)
    assert out[VAEKeys.SIGNAL].shape == x.shape
    assert torch.isfinite(out[VAEKeys.ELBO_LOSS])
    assert vae.sample_posterior(x, 3).shape == (3, *x.shape)
    assert vae.sample_prior(2, (height, width)).shape == (2, 1, height, width)


def test_total_downsampling():
    assert _vae().total_downsampling == 4
    assert _vae(n_groups=3).total_downsampling == 8


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_raises(bad):
    vae, x = _vae(), _batch()
    x[0, 0, 3, 4] = bad
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        vae(x)
    with pytest.raises(ValueError, match="non-finite"):
        vae.sample_posterior(x, 2)


def test_bad_arguments_raise():
    with pytest.raises(TypeError, match="noise_model must be a torch.nn.Module"):
        LadderVAE(n_groups=2, n_filters=8, noise_model=None)
    with pytest.raises(ValueError, match="free_bits must be a finite number >= 0, got -"):
        _vae(free_bits=-1.0)
    with pytest.raises(ValueError, match=r"x must be \(B, 1, H, W\)"):
        _vae()(torch.zeros(16, 16))


def test_state_dict_round_trip_weights_only():
    vae, x = _vae(data_mean=0.5, data_std=2.0), _batch()
    buffer = io.BytesIO()
    torch.save(vae.state_dict(), buffer)
    buffer.seek(0)
    restored = _vae(seed=123)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.data_mean.item() == 0.5 and restored.data_std.item() == 2.0
    expected = vae(x, generator=torch.Generator().manual_seed(0))[VAEKeys.SIGNAL]
    actual = restored(x, generator=torch.Generator().manual_seed(0))[VAEKeys.SIGNAL]
    torch.testing.assert_close(actual, expected)
