"""Iterative refinement, Noisier2Noise correction, their MONAI inferers and refinement tuning."""

import warnings

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SimpleInferer, SliceInferer, SlidingWindowInferer

from medden.inference import (
    Noisier2NoiseInferer,
    RefinementInferer,
    iterative_refinement,
    noisier2noise_correction,
    refinement_path,
    tune_refinement,
)
from medden.transforms import RandGaussianSigmaNoise
from helpers import as_numpy, to_backend


def constant(c):
    return lambda x: torch.full_like(x, c)


class Shrink(torch.nn.Module):
    """``f(x) = m + gain * (x - m)`` with ``m`` the per-image, per-channel spatial mean."""

    def __init__(self, gain):
        super().__init__()
        self.gain = gain

    def forward(self, x):
        m = x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)
        return m + self.gain * (x - m)


def fixed_conv(channels, kernel, seed=0):
    """A 2D conv with seeded weights (drawn from a local generator) and "same" padding."""
    conv = torch.nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        conv.weight.copy_(0.3 * torch.randn(conv.weight.shape, generator=g))
        conv.bias.copy_(0.1 * torch.randn(conv.bias.shape, generator=g))
    return conv.eval()


# --- iterative refinement ---------------------------------------------------------------

@pytest.mark.parametrize("eta", [0.01, 0.3, 1.0])
def test_refinement_with_constant_network_follows_the_closed_form(eta):
    x0 = torch.rand(2, 1, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    c = 0.25
    path = list(refinement_path(constant(c), x0, eta, 7))
    assert len(path) == 7
    for k, xk in enumerate(path, start=1):
        torch.testing.assert_close(xk, c + (1 - eta) ** k * (x0 - c))
    torch.testing.assert_close(iterative_refinement(constant(c), x0, eta, 7), path[-1])


def test_refinement_matches_a_hand_unrolled_affine_map():
    x0 = np.arange(12, dtype=np.float64).reshape(1, 1, 3, 4)
    eta, a, b = 0.2, 0.6, 0.1
    expected = x0.copy()
    for _ in range(4):
        expected = expected + eta * ((a * expected + b) - expected)
    out = iterative_refinement(lambda t: a * t + b, torch.from_numpy(x0), eta, 4)
    np.testing.assert_allclose(as_numpy(out), expected, rtol=1e-12)


def test_eta_one_single_step_is_exactly_one_pass():
    net = fixed_conv(2, 3)
    x = torch.rand(1, 2, 9, 9)
    with torch.no_grad():
        assert torch.equal(iterative_refinement(net, x, 1.0, 1), net(x))
        assert torch.equal(RefinementInferer(1.0, 1)(x, net), net(x))


def test_steps_zero_returns_an_unchanged_copy_and_inputs_are_never_modified():
    x = torch.rand(1, 1, 4, 4)
    before = x.clone()
    out = iterative_refinement(constant(0.0), x, 0.5, 0)
    assert torch.equal(out, x) and out is not x and out.data_ptr() != x.data_ptr()
    iterative_refinement(constant(0.0), x, 0.5, 3)
    RefinementInferer(0.5, 3)(x, constant(0.0))
    assert torch.equal(x, before)


def test_refinement_path_yields_nothing_for_zero_steps():
    assert list(refinement_path(constant(0.0), torch.zeros(1, 1, 2, 2), 0.5, 0)) == []


@pytest.mark.parametrize(
    "eta, steps, error, match",
    [
        (0.0, 1, ValueError, r"eta must be a step size in \(0, 1\], got 0.0"),
        (1.5, 1, ValueError, r"eta must be a step size in \(0, 1\], got 1.5"),
        (float("nan"), 1, ValueError, "eta must be a step size"),
        ("0.1", 1, TypeError, "eta must be a number"),
        (0.1, -1, ValueError, "steps must be an int >= 0, got -1"),
        (0.1, 2.0, TypeError, "steps must be an int >= 0, got 2.0"),
        (0.1, True, TypeError, "steps must be an int"),
    ],
)
def test_invalid_eta_or_steps_are_rejected(eta, steps, error, match):
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(error, match=match):
        iterative_refinement(constant(0.0), x, eta, steps)
    with pytest.raises(error, match=match):
        refinement_path(constant(0.0), x, eta, steps)  # checked eagerly, before next()
    with pytest.raises(error, match=match):
        RefinementInferer(eta, steps)


def test_bad_images_and_networks_are_rejected():
    with pytest.raises(ValueError, match=r"add a batch dimension with image\[None\]"):
        iterative_refinement(constant(0.0), torch.zeros(1, 4, 4), 0.5, 1)
    with pytest.raises(TypeError, match="image must be a torch.Tensor.*got ndarray"):
        iterative_refinement(constant(0.0), np.zeros((1, 1, 4, 4)), 0.5, 1)
    with pytest.raises(TypeError, match=r"floating dtype.*image.float\(\)"):
        iterative_refinement(constant(0.0), torch.zeros(1, 1, 4, 4, dtype=torch.int64), 0.5, 1)
    with pytest.raises(ValueError, match="non-finite"):
        iterative_refinement(constant(0.0), torch.full((1, 1, 2, 2), float("nan")), 0.5, 1)
    with pytest.raises(ValueError, match="out_channels == in_channels"):
        iterative_refinement(lambda t: t[:, :1], torch.zeros(1, 2, 4, 4), 0.5, 1)
    with pytest.raises(TypeError, match="network must return a tensor, got tuple"):
        iterative_refinement(lambda t: (t, t), torch.zeros(1, 1, 4, 4), 0.5, 1)
    with pytest.raises(TypeError, match="network must be callable"):
        iterative_refinement("unet", torch.zeros(1, 1, 4, 4), 0.5, 1)
    with pytest.raises(TypeError, match="base_inferer must be a monai.inferers.Inferer"):
        RefinementInferer(0.5, 1, base_inferer="sliding")


def test_gradients_flow_through_the_function_but_not_the_inferer():
    net = fixed_conv(1, 3)
    x = torch.rand(1, 1, 6, 6)
    assert iterative_refinement(net, x, 0.5, 2).requires_grad
    assert not RefinementInferer(0.5, 2)(x, net).requires_grad


def test_sliding_window_refinement_equals_direct_refinement_for_a_pointwise_network():
    net = fixed_conv(2, 1)  # 1x1 conv: translation-invariant, no context
    x = torch.rand(1, 2, 37, 41, generator=torch.Generator().manual_seed(1))
    sliding = SlidingWindowInferer(roi_size=(16, 16), sw_batch_size=3, overlap=0.25, mode="gaussian")
    seen = []
    out = RefinementInferer(0.3, 4, base_inferer=sliding)(x, lambda t: seen.append(t.shape[2:]) or net(t))
    assert seen and set(seen) == {(16, 16)}  # every evaluation went through the windows
    with torch.no_grad():
        expected = iterative_refinement(net, x, 0.3, 4)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_slice_inferer_runs_a_2d_network_over_a_volume():
    net = fixed_conv(1, 3)  # 3x3 context inside each slice
    vol = torch.rand(2, 1, 12, 10, 5, generator=torch.Generator().manual_seed(2))
    inferer = RefinementInferer(0.5, 3, base_inferer=SliceInferer(roi_size=(12, 10), spatial_dim=2))
    out = inferer(vol, net)
    slices = vol.permute(0, 4, 1, 2, 3).reshape(10, 1, 12, 10)  # every (b, d) slice as a 2D image
    with torch.no_grad():
        expected = iterative_refinement(net, slices, 0.5, 3).reshape(2, 5, 1, 12, 10).permute(0, 2, 3, 4, 1)
    assert out.shape == vol.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_refinement_inferer_works_in_a_monai_evaluator():
    from monai.engines import SupervisedEvaluator

    data = [{"image": torch.ones(1, 1, 4, 4), "label": torch.zeros(1, 1, 4, 4)}]
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"), val_data_loader=data, network=torch.nn.Identity(),
        inferer=RefinementInferer(0.5, 2, base_inferer=SimpleInferer()), decollate=False,
    )
    evaluator.network = lambda t: torch.zeros_like(t)  # f = 0: x_2 = (1 - 0.5)^2 * x_0
    evaluator.run()
    torch.testing.assert_close(evaluator.state.output["pred"], torch.full((1, 1, 4, 4), 0.25))


# --- Noisier2Noise ----------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_noisier2noise_correction_matches_the_numpy_formula(backend, alpha):
    rng = np.random.default_rng(3)
    pred, z = rng.normal(size=(2, 1, 4, 4)), rng.normal(size=(2, 1, 4, 4))
    out = noisier2noise_correction(to_backend(pred, backend), to_backend(z, backend), alpha)
    assert isinstance(out, np.ndarray if backend == "numpy" else torch.Tensor)
    np.testing.assert_allclose(as_numpy(out), ((1 + alpha**2) * pred - z) / alpha**2, rtol=1e-12)


def test_correction_of_the_exact_posterior_mean_is_the_clean_posterior_mean():
    # x ~ N(mu, tau^2), y = x + N(0, s^2), z = y + N(0, (alpha s)^2): everything jointly Gaussian
    mu, tau, s, alpha = 0.4, 0.2, 0.1, 0.7
    z = np.linspace(-1, 2, 31)
    var_z = tau**2 + (1 + alpha**2) * s**2
    e_y_given_z = mu + (tau**2 + s**2) / var_z * (z - mu)
    e_x_given_z = mu + tau**2 / var_z * (z - mu)
    np.testing.assert_allclose(noisier2noise_correction(e_y_given_z, z, alpha), e_x_given_z, rtol=1e-12)


def test_corrected_estimate_is_unbiased_where_the_raw_prediction_is_not():
    rng = np.random.default_rng(4)
    mu, tau, s, alpha = 0.5, 0.1, 0.2, 0.5
    x = rng.normal(mu, tau, 200_000)
    z = x + rng.normal(0, s, x.size) + rng.normal(0, alpha * s, x.size)
    var_z = tau**2 + (1 + alpha**2) * s**2
    raw = mu + (tau**2 + s**2) / var_z * (z - mu)  # the exact E[y | z] a z -> y network learns
    corrected = noisier2noise_correction(raw, z, alpha)
    # conditional unbiasedness: E[x - estimate | z] = 0, so the error is uncorrelated with z
    assert np.corrcoef(corrected - x, z)[0, 1] == pytest.approx(0.0, abs=0.01)
    assert abs(np.corrcoef(raw - x, z)[0, 1]) > 0.3
    assert np.mean((corrected - x) ** 2) < np.mean((raw - x) ** 2)


def test_noisier2noise_inferer_recovers_a_known_clean_image_from_recorrupted_inputs():
    c, s, alpha = 0.3, 0.1, 0.5
    y = c + s * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def oracle(z):  # E[y | z] when the clean image is the known constant c
        return c + (z - c) / (1 + alpha**2)

    recorruption = RandGaussianSigmaNoise(sigma_range=alpha * s)
    inferer = Noisier2NoiseInferer(alpha, recorruption=recorruption, n_samples=3).set_random_state(0)
    out = inferer(MetaTensor(y, meta={"tag": 1}), oracle)
    assert isinstance(out, MetaTensor) and out.meta["tag"] == 1
    torch.testing.assert_close(out.as_tensor(), torch.full_like(y, c))
    assert not torch.allclose(oracle(y), torch.full_like(y, c), atol=1e-3)


def test_noisier2noise_inferer_without_recorruption_treats_inputs_as_z():
    z = torch.rand(1, 1, 6, 6)
    net = fixed_conv(1, 3)
    with torch.no_grad():
        expected = noisier2noise_correction(net(z), z, 0.8)
    torch.testing.assert_close(Noisier2NoiseInferer(0.8)(z, net), expected)


def test_noisier2noise_inferer_averages_seeded_recorruptions_and_leaves_global_rngs_alone():
    y = torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(6))
    net, alpha = Shrink(0.5), 1.5
    inferer = Noisier2NoiseInferer(alpha, recorruption=RandGaussianSigmaNoise(0.05), n_samples=4)
    twin = RandGaussianSigmaNoise(0.05).set_random_state(11)
    expected = torch.zeros_like(y)
    for _ in range(4):
        z = torch.stack([twin(item) for item in y])
        expected += noisier2noise_correction(net(z), z, alpha) / 4
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    out = inferer.set_random_state(11)(y, net)
    torch.testing.assert_close(out, expected)
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and torch.equal(torch.get_rng_state(), torch_state)


def test_noisier2noise_inferer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="alpha must be a finite number > 0, got 0"):
        Noisier2NoiseInferer(0)
    with pytest.raises(ValueError, match="n_samples=3 needs a recorruption"):
        Noisier2NoiseInferer(1.0, n_samples=3)
    with pytest.raises(ValueError, match="n_samples must be an int >= 1, got 0"):
        Noisier2NoiseInferer(1.0, recorruption=RandGaussianSigmaNoise(0.1), n_samples=0)
    with pytest.raises(ValueError, match="pass the exact tensor that was fed to the network"):
        noisier2noise_correction(np.zeros((1, 4)), np.zeros((1, 5)), 1.0)
    with pytest.raises(TypeError, match="set_random_state needs a recorruption"):
        Noisier2NoiseInferer(1.0).set_random_state(0)


# --- tuning -----------------------------------------------------------------------------

def toy_validation_set(batches=2, size=8, signal=0.1, noise=0.1, dtype=torch.float64):
    """Clean = 0.5 + signal * checkerboard, noise = noise * row stripes: zero-mean, orthogonal.

    With ``Shrink(gain)`` the iterate is ``x_k = m + t (y - m)``, ``t = (1 - eta (1 - gain))^k``,
    so by default ``MSE(t) = 0.01 ((1 - t)^2 + t^2)`` exactly, minimal at ``t = 0.5``.
    """
    i, j = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    clean = (0.5 + signal * (-1.0) ** (i + j)).to(dtype).expand(2, 1, size, size)
    noisy = clean + noise * (-1.0) ** i.to(dtype)
    return [(noisy.clone(), clean.clone()) for _ in range(batches)]


def closed_form_psnr(t):
    return 10 * np.log10(1 / (0.01 * ((1 - t) ** 2 + t**2)))


def test_tune_refinement_finds_the_analytic_optimum_and_scores_every_k():
    etas = (0.1, 0.5, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        choice = tune_refinement(Shrink(0.0), toy_validation_set(), etas=etas, max_steps=10)
    assert (choice.eta, choice.steps) == (0.5, 1)  # t = 0.5 exactly
    assert choice.score == pytest.approx(closed_form_psnr(0.5), abs=1e-6)
    assert choice.one_pass_score == pytest.approx(closed_form_psnr(0.0), abs=1e-6)
    assert choice.beats_one_pass and choice.noisy_score == pytest.approx(closed_form_psnr(1.0))
    assert set(choice.table) == {(eta, k) for eta in etas for k in range(11)}
    for (eta, k), score in choice.table.items():
        assert score == pytest.approx(closed_form_psnr((1 - eta) ** k), abs=1e-6), (eta, k)
    with pytest.raises(TypeError):
        choice.table[0.5, 1] = 0.0  # read-only


def test_tune_refinement_reads_dicts_with_custom_keys_and_the_ssim_metric():
    pairs = toy_validation_set(batches=1)
    as_dicts = [{"noisy": n, "gt": c} for n, c in pairs]
    by_pairs = tune_refinement(Shrink(0.0), pairs, etas=(0.5, 1.0), max_steps=3)
    by_dicts = tune_refinement(Shrink(0.0), as_dicts, etas=(0.5, 1.0), max_steps=3, input_key="noisy", clean_key="gt")
    assert by_dicts == by_pairs
    by_ssim = tune_refinement(Shrink(0.0), pairs, etas=(0.5, 1.0), max_steps=3, metric="ssim")
    assert all(-1 <= v <= 1 for v in by_ssim.table.values())


@pytest.mark.parametrize("etas", [(0.1, 0.5, 1.0), (0.1, 0.5)])
def test_tune_refinement_reports_when_one_pass_is_best(etas):
    # gain 0.5: one pass gives t = 0.5, the optimum; eta < 1 never lands on it
    with pytest.warns(UserWarning, match="no refinement .* beat one plain network pass"):
        choice = tune_refinement(Shrink(0.5), toy_validation_set(), etas=etas, max_steps=6)
    assert (choice.eta, choice.steps, choice.beats_one_pass) == (1.0, 1, False)
    assert choice.score == choice.one_pass_score == pytest.approx(closed_form_psnr(0.5))


def test_tune_refinement_breaks_ties_towards_fewer_steps():
    # f = 0.5 everywhere: with eta = 1 every k >= 1 gives exactly the same image, so a tie
    data = toy_validation_set(noise=0.2)
    with pytest.warns(UserWarning, match="beat one plain network pass"):
        choice = tune_refinement(constant(0.5), data, etas=(1.0,), max_steps=4)
    assert len({choice.table[1.0, k] for k in range(1, 5)}) == 1
    assert (choice.eta, choice.steps) == (1.0, 1) and choice.score > choice.noisy_score


def test_tune_refinement_reports_when_the_network_hurts():
    with pytest.warns(UserWarning, match="the noisy input scored best"):
        choice = tune_refinement(Shrink(2.0), toy_validation_set(), etas=(0.1, 1.0), max_steps=3)
    assert choice.steps == 0 and choice.score == choice.noisy_score


def test_tune_refinement_uses_the_base_inferer():
    net = fixed_conv(1, 1)
    pairs = [(torch.rand(1, 1, 20, 20), torch.rand(1, 1, 20, 20))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = tune_refinement(net, pairs, etas=(0.5,), max_steps=2)
        sliding = tune_refinement(net, pairs, etas=(0.5,), max_steps=2,
                                  base_inferer=SlidingWindowInferer(roi_size=(8, 8), overlap=0.25, mode="gaussian"))
    for key, value in direct.table.items():
        assert sliding.table[key] == pytest.approx(value, abs=1e-4)
    calls = []
    tune_refinement(net, pairs, etas=(0.5,), max_steps=2, base_inferer=lambda x, f: calls.append(x) or f(x))
    assert len(calls) == 1 + 2  # one plain pass + max_steps refinement steps, all via the base inferer


@pytest.mark.parametrize(
    "kwargs, data, error, match",
    [
        ({}, [], ValueError, "data yielded no"),
        ({"etas": (0.1, 0.1)}, None, ValueError, "etas must be distinct"),
        ({"etas": ()}, None, ValueError, "etas is empty"),
        ({"etas": (0.1, 2.0)}, None, ValueError, r"eta must be a step size in \(0, 1\], got 2.0"),
        ({"max_steps": 0}, None, ValueError, "max_steps must be an int >= 1, got 0"),
        ({"metric": "mse"}, None, ValueError, "unknown metric 'mse'; choose one of"),
        ({}, [{"image": torch.zeros(1, 1, 8, 8)}], ValueError, "Set input_key and clean_key"),
        ({}, [(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 6, 6))], ValueError, "differs from clean shape"),
        ({}, [torch.zeros(1, 1, 8, 8)], TypeError, r"\(noisy, clean\) pair or a dict"),
    ],
)
def test_tune_refinement_rejects_bad_arguments(kwargs, data, error, match):
    data = toy_validation_set(batches=1) if data is None else data
    with pytest.raises(error, match=match):
        tune_refinement(Shrink(0.0), data, **{"max_steps": 2, **kwargs})


def test_keep_observed_refinement_keeps_every_observed_pixel_exact():
    from medden.inference import RefinementInferer, keep_observed_pixels

    noisy = torch.tensor([[[[0.0, 0.5], [0.25, 0.0]]]])
    filled = keep_observed_pixels(torch.full_like(noisy, 9.0), noisy)
    assert filled.flatten().tolist() == [9.0, 0.5, 0.25, 9.0]
    out = RefinementInferer(eta=0.5, steps=3, keep_observed=True)(noisy, lambda t: torch.full_like(t, 1.0))
    assert out[0, 0, 0, 1].item() == 0.5 and out[0, 0, 1, 0].item() == 0.25
    assert out[0, 0, 0, 0].item() == pytest.approx(1 - 0.5**3)  # missing pixels follow the refinement
