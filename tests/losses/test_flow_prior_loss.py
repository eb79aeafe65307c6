"""The unpaired objective (medden.losses.FlowPriorLoss): value, gradient, lambda and the frozen prior."""

import pytest
import torch

from medden.losses import FlowPriorLoss, blur_images
from medden.networks import ImageFlow


class StandardNormalPrior(torch.nn.Module):
    """log f(x) = -|x|^2 / 2 (up to a constant): its gradient is -x, known in closed form."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return -0.5 * self.scale * x.square().flatten(1).sum(1)


def _images(seed, *shape, dtype=torch.float64):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_value_and_gradient_match_the_map_objective_without_blur():
    sigma = 0.1
    loss = FlowPriorLoss(StandardNormalPrior(), blur="none", noise_sigma=sigma)
    denoised = _images(0, 2, 1, 8, 8).requires_grad_(True)
    noisy = _images(1, 2, 1, 8, 8)
    value = loss(denoised, noisy)
    n = 64
    lam = 2 * sigma**2
    per_image = ((denoised - noisy) ** 2).flatten(1).mean(1) + lam * 0.5 * denoised.square().flatten(1).sum(1) / n
    assert torch.allclose(value, per_image.mean())
    value.backward()
    expected = (2 * (denoised - noisy) / n + lam * denoised / n) / 2  # mean over the batch of 2
    assert torch.allclose(denoised.grad, expected)


def test_gradient_through_a_flow_and_a_blur_matches_finite_differences():
    flow = ImageFlow(1, levels=2, steps_per_level=1, hidden=4).double()
    flow(_images(2, 4, 1, 8, 8))  # actnorm initialisation
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(3),
                                               dtype=torch.float64))
    loss = FlowPriorLoss(flow, blur="gaussian", blur_width=1.0, lambda_scale=2.0, noise_sigma=0.2)
    noisy = _images(4, 2, 1, 8, 8)
    assert torch.autograd.gradcheck(lambda d: loss(d, noisy), (_images(5, 2, 1, 8, 8).requires_grad_(True),))


def test_the_prior_is_frozen_and_stays_in_eval_mode():
    prior = StandardNormalPrior()
    loss = FlowPriorLoss(prior, noise_sigma=0.1)
    loss.train()
    assert not prior.training and not prior.scale.requires_grad
    denoised = _images(0, 1, 1, 8, 8, dtype=torch.float32).requires_grad_(True)
    loss(denoised, _images(1, 1, 1, 8, 8, dtype=torch.float32)).backward()
    assert prior.scale.grad is None and denoised.grad is not None


def test_lambda_is_twice_the_noise_variance_given_fixed_or_estimated():
    noisy = 0.5 + torch.tensor([0.05, 0.2]).view(2, 1, 1, 1) * torch.randn(
        2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    blind = FlowPriorLoss(StandardNormalPrior(), lambda_scale=3.0)
    estimated = blind.prior_weight(noisy)
    assert torch.allclose(estimated, 3.0 * 2 * torch.tensor([0.05, 0.2]) ** 2, rtol=0.15)
    assert torch.allclose(blind.prior_weight(noisy, torch.tensor([0.1, 0.3])), 6 * torch.tensor([0.01, 0.09]))
    fixed = FlowPriorLoss(StandardNormalPrior(), noise_sigma=0.1)
    assert torch.allclose(fixed.prior_weight(noisy), torch.full((2,), 0.02))


def test_the_blur_hides_noise_the_plain_data_term_sees():
    clean = torch.full((1, 1, 32, 32), 0.5)
    noisy = clean + 0.1 * torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    no_prior = dict(noise_sigma=0.1, lambda_scale=0.0)
    plain = FlowPriorLoss(StandardNormalPrior(), blur="none", **no_prior)(clean, noisy)
    blurred = FlowPriorLoss(StandardNormalPrior(), blur="gaussian", blur_width=2.0, **no_prior)(clean, noisy)
    assert float(blurred) < 0.1 * float(plain)


def test_a_mask_restricts_the_data_term():
    loss = FlowPriorLoss(StandardNormalPrior(), blur="none", noise_sigma=0.1, lambda_scale=0.0)
    denoised, noisy = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    noisy[..., 0, 0] = 1.0
    mask = torch.ones(1, 1, 4, 4)
    mask[..., 0, 0] = 0
    assert float(loss(denoised, noisy, mask)) == 0.0
    assert float(loss(denoised, noisy)) == pytest.approx(1 / 16)


def test_box_blur_is_a_local_mean():
    x = torch.zeros(1, 2, 7, 7)
    x[:, :, 3, 3] = 9.0
    out = blur_images(x, "box", 3)
    assert torch.allclose(out[:, :, 2:5, 2:5], torch.ones(1, 2, 3, 3))
    assert float(out.sum()) == pytest.approx(float(x.sum()))
    assert torch.equal(blur_images(x, "none"), x)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"blur": "median"}, ValueError, "blur must be one of"),
    ({"blur": "box", "blur_width": 4}, ValueError, "blur_width must be an odd integer >= 1, got 4; use e.g. 5"),
    ({"blur_width": -1.0}, ValueError, "blur_width"),
    ({"lambda_scale": -1.0}, ValueError, "lambda_scale"),
    ({"noise_sigma": 0.0}, ValueError, "noise_sigma"),
])
def test_bad_settings_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        FlowPriorLoss(StandardNormalPrior(), **kwargs)


def test_bad_inputs_are_refused():
    loss = FlowPriorLoss(StandardNormalPrior(), noise_sigma=0.1)
    with pytest.raises(TypeError, match="prior must be a torch.nn.Module"):
        FlowPriorLoss(lambda x: x)
    with pytest.raises(ValueError, match="target must have pred's shape"):
        loss(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 4))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        loss(torch.rand(1, 1, 8, 8, 8), torch.rand(1, 1, 8, 8, 8))


def test_flow_step_refuses_a_negative_smoothing():
    from medden.engines import make_flow_step

    with pytest.raises(ValueError, match="noise_std must be a finite number >= 0, got -"):
        make_flow_step(noise_std=-0.1)
