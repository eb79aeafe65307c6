"""VAEDirectDenoiser: the co-training step, stages, pairing; residual statistics without ground truth."""

import numpy as np
import pytest
import torch
from monai.engines import SupervisedTrainer
from monai.inferers import SimpleInferer

from medden.engines import make_vae_direct_step
from medden.io import load_network_weights
from medden.metrics.image_quality import mean_residual_statistics, residual_statistics
from medden.networks import (
    DirectDenoiser,
    GaussianNoiseModel,
    LadderVAE,
    PairingError,
    VAEDirectDenoiser,
    calibrated_noise_model,
    load_teacher_vae,
    noise_model_template,
)


def _model(direct_loss="l2", noise_model=None):
    vae = LadderVAE(n_groups=2, n_filters=8, latent_channels=2, noise_model=noise_model or GaussianNoiseModel(0.1))
    return VAEDirectDenoiser(vae, DirectDenoiser(depth=2, base_filters=4), direct_loss)


def _run_steps(model, stage, steps=3):
    batches = [{"input": torch.rand(2, 1, 16, 16)} for _ in range(steps)]
    model.set_stage(stage)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=1, train_data_loader=batches, network=model,
                                optimizer=optimizer, loss_function=None, inferer=SimpleInferer(),
                                iteration_update=make_vae_direct_step(stage))
    trainer.run()
    return trainer.state.output


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}


def _changed(before, module):
    return {k for k, v in module.state_dict().items() if k in before and not torch.equal(before[k], v)}


@pytest.mark.parametrize("stage, vae_moves, direct_moves", [("cotrain", True, True), ("vae", True, False),
                                                           ("direct", False, True)])
def test_each_stage_updates_exactly_the_networks_it_trains(stage, vae_moves, direct_moves):
    torch.manual_seed(0)
    model = _model()
    vae_before, direct_before = _snapshot(model.vae), _snapshot(model.direct)
    output = _run_steps(model, stage)
    assert bool(_changed(vae_before, model.vae)) == vae_moves
    assert bool(_changed(direct_before, model.direct)) == direct_moves
    assert ("direct_loss" in output) == direct_moves and ("elbo_loss" in output) == vae_moves
    expected = sum(output[k] for k in ("elbo_loss", "direct_loss") if k in output)
    torch.testing.assert_close(output["loss"], expected)


def test_the_direct_denoisers_target_is_detached_so_its_loss_never_reaches_the_vae():
    torch.manual_seed(0)
    model = _model()
    losses = model(torch.rand(2, 1, 16, 16), stage="cotrain")
    losses["direct_loss"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.vae.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.direct.parameters())


def test_l1_and_l2_direct_losses_are_the_mean_and_median_regressions():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 16, 16)
    for name, expected in (("l2", torch.nn.functional.mse_loss), ("l1", torch.nn.functional.l1_loss)):
        model = _model(name)
        torch.manual_seed(1)
        losses = model(x, stage="cotrain")
        torch.manual_seed(1)
        target = model.vae(x)["signal"]
        torch.testing.assert_close(losses["direct_loss"], expected(model.direct(x), target))
    with pytest.raises(ValueError, match="direct_loss must be one of"):
        _model("huber")


def test_forward_without_a_stage_is_the_direct_denoiser_and_bad_stages_are_refused():
    model = _model().eval()
    x = torch.rand(1, 1, 13, 19)
    torch.testing.assert_close(model(x), model.direct(x))
    with pytest.raises(ValueError, match="stage must be one of"):
        model(x, stage="both")
    x[0, 0, 3, 4] = float("nan")
    for stage in (None, "cotrain"):
        with pytest.raises(ValueError, match="NaN"):
            model(x, stage=stage)


def test_a_direct_denoiser_from_another_vae_is_refused_and_a_teacher_load_repairs_it(tmp_path):
    first, second = _model(), _model()
    assert int(first.direct.teacher_id) == int(first.vae.model_id) != int(second.vae.model_id)
    mixed = {**first.state_dict(), **{k: v for k, v in second.state_dict().items() if k.startswith("vae.")}}
    with pytest.raises(PairingError, match="trained on the posterior of VAE"):
        load_network_weights(_model(), mixed)
    with pytest.raises(PairingError):  # an already-trained Direct Denoiser cannot be wrapped with another VAE
        VAEDirectDenoiser(second.vae, first.direct)
    torch.save(second.state_dict(), tmp_path / "vae.pt")
    fresh = load_teacher_vae(_model(), tmp_path / "vae.pt")  # stage 'direct': learn this VAE
    assert int(fresh.vae.model_id) == int(second.vae.model_id) == int(fresh.direct.teacher_id)
    load_network_weights(_model(), fresh.state_dict())  # a consistent pair loads


def test_a_calibrated_noise_model_stays_frozen_in_every_stage_and_round_trips_through_a_template():
    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(0.1, 0.9, 32, dtype=np.float32), (1, 32, 1))
    noisy = [clean + rng.normal(0, np.sqrt(clean / 50 + 0.02**2)).astype(np.float32) for _ in range(4)]
    noise_model = calibrated_noise_model("poisson_gaussian", noisy)
    assert noise_model.gain == pytest.approx(1 / 50, rel=0.3)
    model = _model(noise_model=noise_model)
    for stage in ("cotrain", "vae", "direct"):
        model.set_stage(stage)
        assert not any(p.requires_grad for p in model.vae.noise_model.parameters())
    template = VAEDirectDenoiser(LadderVAE(n_groups=2, n_filters=8, latent_channels=2,
                                           noise_model=noise_model_template("poisson_gaussian")),
                                 DirectDenoiser(depth=2, base_filters=4))
    load_network_weights(template, model.state_dict())
    assert template.vae.noise_model.gain == pytest.approx(noise_model.gain)


def test_residual_statistics_without_ground_truth():
    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (1, 64, 1))
    noisy = clean + rng.normal(0, 0.05, clean.shape).astype(np.float32)
    perfect = residual_statistics(noisy, clean, GaussianNoiseModel(0.05))
    assert perfect["residual_std"] == pytest.approx(0.05, rel=0.05)
    assert abs(perfect["residual_lag1_correlation"]) < 0.05  # white residual
    assert perfect["output_noise_sigma"] < 0.01 < perfect["input_noise_sigma"]
    assert perfect["noise_model_nll"] == pytest.approx(-np.log(1 / np.sqrt(2 * np.pi * 0.05**2)) + 0.5, abs=0.05)
    blurred = residual_statistics(noisy, np.zeros_like(noisy) + 0.5)  # structure leaks into the residual
    assert blurred["residual_lag1_correlation"] > 0.5
    batch = [{"input": torch.as_tensor(noisy)[None]}] * 2
    assert mean_residual_statistics(batch, torch.nn.Identity())["residual_std"] == 0.0
    with pytest.raises(ValueError, match="no images"):
        mean_residual_statistics([], torch.nn.Identity())
