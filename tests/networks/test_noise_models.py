"""Noise models p(x | s) against closed forms, numerical integration and synthetic calibration data."""

import math

import pytest
import torch

from medden.networks import (
    NOISE_MODELS,
    GaussianMixtureNoiseModel,
    GaussianNoiseModel,
    NoiseModel,
    PoissonGaussianNoiseModel,
    build_noise_model,
    estimate_poisson_gaussian,
)

PEAK, READ = 100.0, 0.05  # synthetic shot + read noise: Var(x | s) = s / PEAK + READ^2


@pytest.fixture(autouse=True)
def one_thread():
    """Tensors here are tiny: with a second busy process on the machine, intra-op threads only
    fight over cores (a 300-step fit went from 1 s to 20 s on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def poisson_gaussian(clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """True (discrete) Poisson counts scaled back to intensity, plus Gaussian read noise."""
    counts = torch.poisson(clean * PEAK, generator=generator)
    return counts / PEAK + READ * torch.randn(clean.shape, generator=generator)


def true_variance(signal: torch.Tensor) -> torch.Tensor:
    return signal / PEAK + READ**2


def phantom(batch: int = 4, size: int = 128) -> torch.Tensor:
    """``(B, 1, size, size)`` in [0.05, 0.95]: ramps, a disc and flat inserts (so with edges)."""
    yy, xx = torch.meshgrid(torch.arange(size) / size, torch.arange(size) / size, indexing="ij")
    img = 0.05 + 0.9 * xx
    img = torch.where((yy - 0.5) ** 2 + (xx - 0.47) ** 2 < 0.31**2, 0.95 - 0.9 * yy, img)
    img[..., 64:90, 40:56] = 0.4
    img[..., 100:112, 60:100] = 0.7
    return img.expand(batch, 1, size, size).clone()


def smooth_images(batch: int = 2, size: int = 96) -> torch.Tensor:
    """``(B, 1, size, size)`` slow sinusoids in about [0.1, 0.9]."""
    yy, xx = torch.meshgrid(torch.arange(size) / size, torch.arange(size) / size, indexing="ij")
    imgs = [0.5 + 0.4 * torch.sin(2 * math.pi * (0.7 * xx + 0.3 * i)) * torch.cos(math.pi * yy) for i in range(batch)]
    return torch.stack(imgs)[:, None]


def shaped_gmm(seed: int = 0) -> GaussianMixtureNoiseModel:
    """A 3-component mixture with unequal weights, offsets and widths that vary with the signal."""
    model = GaussianMixtureNoiseModel(3, 3, min_signal=0.0, max_signal=2.0, min_sigma=0.01)
    with torch.no_grad():
        model.weight.add_(0.5 * torch.randn(model.weight.shape, generator=torch.Generator().manual_seed(seed)))
    return model


def all_models() -> list[NoiseModel]:
    return [GaussianNoiseModel(0.2), PoissonGaussianNoiseModel(0.05, 0.1), shaped_gmm()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("learnable", [False, True])
def test_gaussian_matches_closed_form(dtype, learnable):
    g = torch.Generator().manual_seed(0)
    observed = torch.randn(2, 3, 4, 4, generator=g, dtype=dtype)
    signal = torch.rand(2, 3, 4, 4, generator=g, dtype=dtype)
    sigma = 0.3
    expected = -0.5 * math.log(2 * math.pi * sigma**2) - (observed - signal) ** 2 / (2 * sigma**2)
    got = GaussianNoiseModel(sigma, learnable=learnable).log_likelihood(observed, signal)
    assert got.shape == (2, 3, 4, 4) and got.dtype == dtype
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_gaussian_learnable_flag_decides_parameter_or_buffer():
    assert [n for n, _ in GaussianNoiseModel(0.1, learnable=True).named_parameters()] == ["log_sigma"]
    fixed = GaussianNoiseModel(0.1)
    assert list(fixed.parameters()) == [] and "log_sigma" in fixed.state_dict()


def test_poisson_gaussian_matches_closed_form_and_trains():
    g = torch.Generator().manual_seed(1)
    signal = torch.tensor([-0.5, 0.0, 0.2, 1.0, 3.0]).view(1, 1, 1, 5).requires_grad_(True)
    observed = signal.detach() + 0.1 * torch.randn(signal.shape, generator=g)
    gain, read = 0.04, 0.03
    variance = gain * signal.detach().clamp(min=0) + read**2  # negative signal: read noise only
    expected = -0.5 * torch.log(2 * math.pi * variance) - (observed - signal.detach()) ** 2 / (2 * variance)
    model = PoissonGaussianNoiseModel(gain, read)
    got = model(observed, signal)
    torch.testing.assert_close(got.detach(), expected, rtol=1e-5, atol=1e-5)
    got.sum().backward()
    for name in ("log_gain", "log_read_sigma"):
        grad = getattr(model, name).grad
        assert grad is not None and grad.abs() > 0, name
    assert signal.grad is not None and torch.isfinite(signal.grad).all()


def test_poisson_gaussian_variance_floor():
    model = PoissonGaussianNoiseModel(1e-3, 1e-4, min_variance=1e-4)
    torch.testing.assert_close(model.variance(torch.tensor([0.0, 1.0])), torch.tensor([1e-4, 1e-3 + 1e-8]))


@pytest.mark.parametrize("model", all_models(), ids=type)
@pytest.mark.parametrize("s", [0.0, 0.3, 1.5])
def test_density_integrates_to_one(model, s):
    model = model.double()
    x = torch.linspace(s - 3.0, s + 3.0, 60001, dtype=torch.float64)
    density = model.log_likelihood(x, torch.full_like(x, s)).exp()
    assert torch.trapezoid(density, x).item() == pytest.approx(1.0, abs=1e-4)


def test_gmm_mixture_mean_is_signal():
    model = shaped_gmm(seed=3)
    signal = torch.tensor([0.0, 0.4, 1.1, 2.0])
    log_w, means, stds = model.mixture_parameters(signal)
    torch.testing.assert_close((log_w.exp() * means).sum(-1), signal)
    assert (means - signal[:, None]).abs().max() > 1e-3  # components really are spread
    assert (stds >= 0.01).all()
    draws = model.sample(signal.expand(40000, 4).contiguous(), generator=torch.Generator().manual_seed(0))
    standard_error = (model.variance(signal).detach() / 40000).sqrt()
    assert ((draws.mean(0) - signal).abs() < 4 * standard_error).all()
    torch.testing.assert_close(draws.var(0), model.variance(signal).detach(), rtol=0.05, atol=0)


@pytest.mark.parametrize("model", all_models(), ids=type)
def test_sampling_is_seeded_and_leaves_global_rng_alone(model):
    signal = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    before = torch.get_rng_state()
    first = model.sample(signal, generator=torch.Generator().manual_seed(5))
    unseeded = [model.sample(signal), model.sample(signal)]
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(first, model.sample(signal, generator=torch.Generator().manual_seed(5)))
    assert not torch.equal(*unseeded)  # fresh OS-seeded generators, not a fixed seed
    assert first.shape == signal.shape and first.dtype == signal.dtype


def test_gmm_fit_recovers_poisson_gaussian_variance():
    g = torch.Generator().manual_seed(0)
    signal = 0.05 + 0.9 * torch.rand(20000, generator=g)
    observed = poisson_gaussian(signal, g)
    model = GaussianMixtureNoiseModel(3, 3, min_signal=0.05, max_signal=0.95, min_sigma=1e-3)
    losses = model.fit(signal, observed, steps=300, lr=0.1, batch_size=2048, generator=torch.Generator().manual_seed(1))
    assert len(losses) == 300 and sum(losses[-20:]) < sum(losses[:20])
    grid = torch.linspace(0.1, 0.9, 9)
    torch.testing.assert_close(model.variance(grid).detach(), true_variance(grid), rtol=0.2, atol=0)


def test_gmm_calibrate_from_noisy_is_sensible():
    clean = smooth_images()
    noisy = poisson_gaussian(clean, torch.Generator().manual_seed(0))
    model = GaussianMixtureNoiseModel.calibrate_from_noisy(
        noisy, n_coeffs=3, steps=300, lr=0.1, batch_size=2048, generator=torch.Generator().manual_seed(1)
    )
    assert not model.weight.requires_grad
    assert model.min_signal < 0.15 and model.max_signal > 0.85  # range of the pseudo-clean estimate
    grid = torch.linspace(0.2, 0.8, 7)
    torch.testing.assert_close(model.variance(grid), true_variance(grid), rtol=0.3, atol=0)


def test_gmm_calibrate_from_pairs_uses_the_clean_range():
    clean = 0.2 + 0.5 * torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    noisy = poisson_gaussian(clean, torch.Generator().manual_seed(1))
    model = GaussianMixtureNoiseModel.calibrate_from_pairs(noisy, clean, steps=5, generator=torch.Generator())
    assert model.min_signal.item() == pytest.approx(clean.min().item())
    assert model.max_signal.item() == pytest.approx(clean.max().item())
    assert model.min_sigma.item() == pytest.approx(1e-3 * (clean.max() - clean.min()).item())


def test_gmm_state_dict_round_trip(tmp_path):
    model = shaped_gmm(seed=7)
    path = tmp_path / "noise_model.pt"
    torch.save(model.state_dict(), path)
    state = torch.load(path, weights_only=True)
    observed, signal = torch.rand(2, 1, 5, 5) * 2, torch.rand(2, 1, 5, 5) * 2
    expected = model.log_likelihood(observed, signal)
    rebuilt = GaussianMixtureNoiseModel.from_state_dict(state)
    torch.testing.assert_close(rebuilt.log_likelihood(observed, signal), expected)
    other = GaussianMixtureNoiseModel(3, 3, min_signal=-5.0, max_signal=9.0, min_sigma=0.5)
    other.load_state_dict(state)  # the signal range and min_sigma come back from the buffers
    torch.testing.assert_close(other.log_likelihood(observed, signal), expected)


def test_poisson_gaussian_from_pairs_recovers_parameters():
    clean = phantom()
    noisy = poisson_gaussian(clean, torch.Generator().manual_seed(0))
    model = PoissonGaussianNoiseModel.from_pairs(noisy, clean, learnable=False)
    assert model.gain.item() == pytest.approx(1 / PEAK, rel=0.05)
    assert model.read_sigma.item() == pytest.approx(READ, rel=0.05)
    assert list(model.parameters()) == []


def test_poisson_gaussian_from_noisy_recovers_parameters():
    clean = phantom()
    noisy = poisson_gaussian(clean, torch.Generator().manual_seed(0))
    model = PoissonGaussianNoiseModel.from_noisy(noisy)
    assert model.gain.item() == pytest.approx(1 / PEAK, rel=0.12)  # seeds 0-5 land within 7%
    assert model.read_sigma.item() == pytest.approx(READ, rel=0.12)
    assert model.log_gain.requires_grad


def test_estimate_poisson_gaussian_without_signal_dependence():
    clean = phantom(2, 64)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    gain, read = estimate_poisson_gaussian(noisy, clean)
    assert gain < 0.002 and read == pytest.approx(0.1, rel=0.05)
    fallback = PoissonGaussianNoiseModel.from_pairs(torch.zeros(64), torch.linspace(0, 1, 64))
    assert fallback.read_sigma.item() == pytest.approx(1e-3)  # sqrt(min_variance), not 0


@pytest.mark.parametrize("name, kwargs, cls", [
    ("gaussian", {"sigma": 0.1}, GaussianNoiseModel),
    ("poisson_gaussian", {"gain": 0.01, "read_sigma": 0.02}, PoissonGaussianNoiseModel),
    ("gmm", {"n_gaussians": 2, "min_signal": 0.0, "max_signal": 4.0}, GaussianMixtureNoiseModel),
])
def test_build_noise_model(name, kwargs, cls):
    assert set(NOISE_MODELS) == {"gaussian", "poisson_gaussian", "gmm"}
    assert type(build_noise_model(name, **kwargs)) is cls


def test_build_noise_model_unknown_name():
    with pytest.raises(ValueError, match=r"unknown noise model 'laplace'; choose one of"):
        build_noise_model("laplace")


@pytest.mark.parametrize("model", all_models(), ids=type)
def test_bad_inputs_raise_clear_errors(model):
    good = torch.ones(1, 1, 4, 4)
    bad = good.clone()
    bad[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="observed contains 1 non-finite"):
        model.log_likelihood(bad, good)
    with pytest.raises(ValueError, match="signal contains 1 non-finite"):
        model.log_likelihood(good, bad)
    with pytest.raises(ValueError, match="signal contains 1 non-finite"):
        model.sample(bad)
    with pytest.raises(ValueError, match=r"same shape, got \(1, 1, 4, 4\) and \(1, 1, 4, 5\)"):
        model.log_likelihood(good, torch.ones(1, 1, 4, 5))
    with pytest.raises(TypeError, match="floating tensor"):
        model.log_likelihood(good.long(), good)


@pytest.mark.parametrize("build, match", [
    (lambda: GaussianNoiseModel(0.0), "sigma must be a finite number > 0"),
    (lambda: GaussianNoiseModel(-1.0), "sigma must be a finite number > 0"),
    (lambda: PoissonGaussianNoiseModel(0.0, 0.1), "gain must be a finite number > 0"),
    (lambda: PoissonGaussianNoiseModel(0.1, -0.1), "read_sigma must be a finite number > 0"),
    (lambda: GaussianMixtureNoiseModel(n_gaussians=0), "n_gaussians must be an int >= 1"),
    (lambda: GaussianMixtureNoiseModel(n_coeffs=0), "n_coeffs must be an int >= 1"),
    (lambda: GaussianMixtureNoiseModel(min_signal=1.0, max_signal=1.0), "max_signal must be > min_signal"),
    (lambda: GaussianMixtureNoiseModel(min_sigma=0.0), "min_sigma must be a finite number > 0"),
    (lambda: GaussianMixtureNoiseModel().fit(torch.ones(4), torch.ones(4), steps=0), "steps must be an int >= 1"),
    (lambda: estimate_poisson_gaussian(torch.ones(1, 1, 2, 8)), r"H, W >= 4 when clean is None"),
    (lambda: GaussianMixtureNoiseModel.calibrate_from_noisy(torch.ones(1, 1, 8, 8), window=4),
     "window must be an odd integer >= 3, got 4; use e.g. 5"),
    (lambda: GaussianMixtureNoiseModel.calibrate_from_pairs(torch.ones(8), torch.ones(8)), "clean is constant"),
])
def test_bad_hyperparameters_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()
