"""Losses: reference formulas, masking, L0 annealing, perceptual weights loading, sums."""

import numpy as np
import pytest
import torch

from medden.losses import (
    VGG16_LAYERS,
    AnnealedL0Loss,
    MaskedL1Loss,
    MaskedMSELoss,
    PerceptualLoss,
    WeightedSumLoss,
    annealed_gamma,
    masked_mean,
)
from medden.losses.perceptual import build_vgg16_features

SHAPES = {"2d": (2, 3, 8, 6), "3d": (2, 2, 6, 5, 4)}
ENV_VAR = "MEDDEN_VGG16_WEIGHTS"


def _data(shape, mask_channels, seed=0):
    """pred, target and a 0/1 mask of shape (B, mask_channels, *spatial) as torch tensors."""
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=shape).astype(np.float32)
    target = rng.normal(size=shape).astype(np.float32)
    mask_shape = (shape[0], shape[1] if mask_channels == "C" else 1, *shape[2:])
    mask = (rng.random(mask_shape) < 0.6).astype(np.float32)
    return torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask)


def _reference(per_value, mask, shape):
    """numpy reference: mean of ``per_value`` over observed values, channels counted."""
    weights = np.broadcast_to(mask.numpy(), shape)
    return float((per_value * weights).sum() / weights.sum())


PIXEL_LOSSES = {
    "mse": (MaskedMSELoss, lambda d: d**2),
    "l1": (MaskedL1Loss, np.abs),
    "l0_gamma2": (AnnealedL0Loss, lambda d: (np.abs(d) + 1e-8) ** 2),
}


@pytest.mark.parametrize("dims", SHAPES)
@pytest.mark.parametrize("mask_channels", ["1", "C"])
@pytest.mark.parametrize("name", PIXEL_LOSSES)
def test_pixel_losses_match_reference_over_observed_values(name, dims, mask_channels):
    loss_cls, formula = PIXEL_LOSSES[name]
    pred, target, mask = _data(SHAPES[dims], mask_channels)
    per_value = formula((pred - target).numpy().astype(np.float64))
    got = loss_cls()(pred, target, mask)
    assert got.ndim == 0 and got.dtype == torch.float32
    np.testing.assert_allclose(got.item(), _reference(per_value, mask, pred.shape), rtol=1e-5)
    # without a mask: the plain mean over every value
    np.testing.assert_allclose(loss_cls()(pred, target).item(), per_value.mean(), rtol=1e-5)


def test_unmasked_losses_equal_torch_functional():
    pred, target, _ = _data(SHAPES["2d"], "1")
    torch.testing.assert_close(MaskedMSELoss()(pred, target), torch.nn.functional.mse_loss(pred, target))
    torch.testing.assert_close(MaskedL1Loss()(pred, target), torch.nn.functional.l1_loss(pred, target))


@pytest.mark.parametrize("loss_cls", [MaskedMSELoss, MaskedL1Loss, AnnealedL0Loss])
@pytest.mark.parametrize("fill", [0.0, 123.0, float("nan")])
def test_masked_out_target_changes_neither_loss_nor_gradient(loss_cls, fill):
    pred, target, mask = _data(SHAPES["3d"], "1")
    changed = target.clone()
    changed[mask.expand_as(target) == 0] = fill
    results = []
    for tgt in (target, changed):
        p = pred.clone().requires_grad_(True)
        value = loss_cls()(p, tgt, mask)
        value.backward()
        results.append((value.detach(), p.grad))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    assert torch.all(results[0][1][mask.expand_as(pred) == 0] == 0)


@pytest.mark.parametrize("loss_cls", [MaskedMSELoss, MaskedL1Loss, AnnealedL0Loss])
def test_empty_mask_gives_zero_with_graph(loss_cls):
    pred, target, mask = _data(SHAPES["2d"], "1")
    pred.requires_grad_(True)
    value = loss_cls()(pred, target, torch.zeros_like(mask))
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert torch.isfinite(pred.grad).all() and torch.all(pred.grad == 0)


def test_bool_mask_equals_float_mask():
    pred, target, mask = _data(SHAPES["2d"], "C")
    torch.testing.assert_close(MaskedMSELoss()(pred, target, mask.bool()), MaskedMSELoss()(pred, target, mask))


def test_masked_mean_counts_channels_of_a_broadcast_mask():
    values = torch.arange(12.0).view(1, 3, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert masked_mean(values, mask).item() == pytest.approx((0 + 4 + 8) / 3)


@pytest.mark.parametrize(
    "pred_shape, target_shape, mask_shape, match",
    [
        ((2, 1, 8, 8), (2, 1, 8, 9), None, r"target must have pred's shape \(2, 1, 8, 8\), got \(2, 1, 8, 9\)"),
        ((2, 3, 8, 8), (2, 3, 8, 8), (1, 1, 8, 8), r"mask must have shape \(2, 1, 8, 8\).*got \(1, 1, 8, 8\)"),
        ((2, 3, 8, 8), (2, 3, 8, 8), (2, 2, 8, 8), r"got \(2, 2, 8, 8\)"),
        ((1, 8, 8), (1, 8, 8), None, r"\(B, C, H, W\).*got shape \(1, 8, 8\)"),
    ],
)
def test_shape_errors_name_the_shapes(pred_shape, target_shape, mask_shape, match):
    mask = None if mask_shape is None else torch.ones(mask_shape)
    with pytest.raises(ValueError, match=match):
        MaskedMSELoss()(torch.zeros(pred_shape), torch.zeros(target_shape), mask)


def test_type_errors():
    with pytest.raises(TypeError, match="target must be a torch.Tensor, got ndarray"):
        MaskedL1Loss()(torch.zeros(1, 1, 4, 4), np.zeros((1, 1, 4, 4)))
    with pytest.raises(TypeError, match="pred must be a floating tensor"):
        MaskedL1Loss()(torch.zeros(1, 1, 4, 4, dtype=torch.long), torch.zeros(1, 1, 4, 4))


# ---------------------------------------------------------------- annealed L0


@pytest.mark.parametrize("progress, expected", [(0.0, 2.0), (0.5, 1.0), (1.0, 0.0)])
def test_gamma_schedule(progress, expected):
    assert annealed_gamma(progress) == pytest.approx(expected)
    assert annealed_gamma(progress, start=3.0, end=1.0) == pytest.approx(3.0 - 2.0 * progress)
    loss = AnnealedL0Loss()
    loss.set_progress(progress)
    assert loss.gamma == pytest.approx(expected) and loss.progress == progress


def test_gamma_starts_at_gamma_start_and_sets_the_exponent():
    loss = AnnealedL0Loss(gamma_start=1.5, gamma_end=0.5)
    assert loss.gamma == 1.5
    pred, target, _ = _data(SHAPES["2d"], "1")
    loss.set_progress(0.5)  # gamma 1.0: mean(|d| + eps)
    expected = (np.abs((pred - target).numpy().astype(np.float64)) + 1e-8).mean()
    np.testing.assert_allclose(loss(pred, target).item(), expected, rtol=1e-5)


@pytest.mark.parametrize("progress", [-0.1, 1.5, float("nan")])
def test_progress_outside_unit_interval_raises(progress):
    loss = AnnealedL0Loss()
    with pytest.raises(ValueError, match="progress must be a probability in \\[0, 1\\]"):
        loss.set_progress(progress)
    assert loss.gamma == 2.0  # unchanged


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"eps": 0.0}, ValueError, "eps must be a finite number > 0"),
        ({"gamma_start": -1.0}, ValueError, "gamma_start must be a finite number >= 0, got -1.0"),
        ({"gamma_end": float("inf")}, ValueError, "gamma_end"),
        ({"gamma_end": "0"}, TypeError, "gamma_end must be a number"),
    ],
)
def test_l0_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        AnnealedL0Loss(**kwargs)


def _fit_scalar(loss, target, steps=150, anneal=False):
    """Fit one scalar prediction to all ``target`` values by sign-gradient descent.

    Sign steps (Adam without momentum) cope with the L0 gradient's huge range of scales;
    the step size decays quadratically so the end point is sharp.
    """
    z = torch.full((1, 1, 1, 1), 0.5, requires_grad=True)
    for step in range(steps):
        if anneal:
            loss.set_progress(step / steps)
        (grad,) = torch.autograd.grad(loss(z.expand_as(target), target), z)
        with torch.no_grad():
            z -= 0.02 * (1 - step / steps) ** 2 * grad.sign()
    return z.item()


def test_annealed_l0_seeks_the_mode_where_l2_seeks_the_mean():
    # random-valued impulse noise on one pixel: 70% the true value, 30% uniform in [0, 1]
    gen = torch.Generator().manual_seed(0)
    n, true_value = 500, 0.2
    spike = torch.rand(n, generator=gen) < 0.7
    target = torch.where(spike, torch.tensor(true_value), torch.rand(n, generator=gen)).view(1, 1, 1, n)
    mean = target.mean().item()
    assert abs(mean - true_value) > 0.05  # the mean really is the wrong answer

    l0 = _fit_scalar(AnnealedL0Loss(), target, anneal=True)
    l2 = _fit_scalar(MaskedMSELoss(), target)
    assert abs(l0 - true_value) < 0.01
    assert abs(l2 - mean) < 0.01


# ---------------------------------------------------------------- perceptual


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A random VGG16 state dict in torchvision's key format, plus keys the loss must ignore."""
    gen = torch.Generator().manual_seed(0)
    state = {
        f"features.{key}": torch.randn(value.shape, generator=gen) * 0.1
        for key, value in build_vgg16_features("relu2_2").state_dict().items()
    }
    state["features.10.weight"] = torch.zeros(256, 128, 3, 3)
    state["classifier.0.weight"] = torch.zeros(4, 4)
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(state, path)
    return path


def test_vgg_layer_indices_match_torchvision():
    assert VGG16_LAYERS["relu1_2"] == 3 and VGG16_LAYERS["relu2_2"] == 8
    assert VGG16_LAYERS["relu3_3"] == 15 and VGG16_LAYERS["relu5_3"] == 29
    features = build_vgg16_features("relu2_2")
    assert len(features) == 9
    assert [type(m).__name__ for m in features] == ["Conv2d", "ReLU"] * 2 + ["MaxPool2d"] + ["Conv2d", "ReLU"] * 2
    assert features[5].in_channels == 64 and features[7].out_channels == 128


@pytest.mark.parametrize("source", ["path", "env"])
@pytest.mark.parametrize("channels", [1, 3])
def test_perceptual_loss_from_path_or_env(vgg_file, monkeypatch, source, channels):
    if source == "env":
        monkeypatch.setenv(ENV_VAR, str(vgg_file))
        loss = PerceptualLoss()
    else:
        monkeypatch.delenv(ENV_VAR, raising=False)
        loss = PerceptualLoss(weights=vgg_file)
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(2, channels, 16, 16, generator=gen)
    pred = torch.rand(2, channels, 16, 16, generator=gen).requires_grad_(True)
    assert loss(target, target.clone()).item() == 0.0
    value = loss(pred, target)
    assert value.ndim == 0 and value.item() > 0
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in loss.parameters())
    loss.train()
    assert not loss.features.training


def test_perceptual_weights_loaded_from_file(vgg_file):
    loss = PerceptualLoss(weights=str(vgg_file))
    state = torch.load(vgg_file, weights_only=True)
    torch.testing.assert_close(loss.features[7].bias, state["features.7.bias"])


def test_perceptual_mask_hides_unobserved_pixels(vgg_file):
    loss = PerceptualLoss(weights=vgg_file)
    gen = torch.Generator().manual_seed(2)
    pred, target = torch.rand(1, 1, 16, 16, generator=gen), torch.rand(1, 1, 16, 16, generator=gen)
    mask = torch.ones(1, 1, 16, 16)
    mask[..., 8:] = 0
    changed = target.clone()
    changed[..., 8:] = float("nan")
    torch.testing.assert_close(loss(pred, target, mask), loss(pred, changed, mask))


def test_perceptual_without_weights_says_what_to_provide(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match=f"vgg16-397923af.pth.*{ENV_VAR}"):
        PerceptualLoss()
    with pytest.raises(FileNotFoundError, match=f"nope.pth.*{ENV_VAR}"):
        PerceptualLoss(weights=tmp_path / "nope.pth")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match=f"{ENV_VAR}=.*missing.pth"):
        PerceptualLoss()


def test_perceptual_missing_or_misshaped_keys(tmp_path, vgg_file):
    state = torch.load(vgg_file, weights_only=True)
    del state["features.5.weight"], state["features.7.bias"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"lack 2 key\(s\).*'features.5.weight', 'features.7.bias'"):
        PerceptualLoss(weights=tmp_path / "partial.pth")
    state = torch.load(vgg_file, weights_only=True)
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"features.0.weight: \(64, 1, 3, 3\) \(expected \(64, 3, 3, 3\)\)"):
        PerceptualLoss(weights=tmp_path / "bad.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        PerceptualLoss(weights=tmp_path / "list.pth")


def test_perceptual_rejects_3d_and_other_channel_counts(vgg_file):
    loss = PerceptualLoss(weights=vgg_file)
    with pytest.raises(ValueError, match=r"2D only, got pred of shape \(1, 1, 8, 8, 4\)"):
        loss(torch.zeros(1, 1, 8, 8, 4), torch.zeros(1, 1, 8, 8, 4))
    with pytest.raises(ValueError, match="needs 1 or 3 channels"):
        loss(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="unknown VGG16 layer 'relu9_9'"):
        PerceptualLoss(weights=vgg_file, layer="relu9_9")


# ---------------------------------------------------------------- weighted sum


def test_weighted_sum_equals_sum_of_weighted_terms(vgg_file):
    pred, target, mask = _data((2, 1, 16, 16), "1")
    mse, perceptual = MaskedMSELoss(), PerceptualLoss(weights=vgg_file)
    total = WeightedSumLoss([(mse, 1.0), (perceptual, 0.5)])
    expected = mse(pred, target, mask) + 0.5 * perceptual(pred, target, mask)
    torch.testing.assert_close(total(pred, target, mask), expected)
    assert set(total.last_terms) == {"MaskedMSELoss", "PerceptualLoss"}
    torch.testing.assert_close(total.last_terms["MaskedMSELoss"], mse(pred, target, mask))
    assert not total.last_terms["PerceptualLoss"].requires_grad


def test_weighted_sum_skips_zero_weight_terms():
    calls = []

    class Spy(torch.nn.Module):
        def forward(self, pred, target, mask=None):
            calls.append(1)
            return pred.sum()

    pred, target, _ = _data(SHAPES["3d"], "1")
    total = WeightedSumLoss({"mse": (MaskedMSELoss(), 2.0), "spy": (Spy(), 0), "vgg": (None, 0.0)})
    torch.testing.assert_close(total(pred, target), 2.0 * MaskedMSELoss()(pred, target))
    assert calls == [] and list(total.last_terms) == ["mse"]


def test_weighted_sum_names_repeated_classes():
    total = WeightedSumLoss([(MaskedL1Loss(), 1.0), (MaskedL1Loss(), 1.0), (None, 0)])
    assert total.names == ("MaskedL1Loss", "MaskedL1Loss_2", "term2")


@pytest.mark.parametrize(
    "terms, error, match",
    [
        ([], ValueError, "terms is empty"),
        ([(MaskedMSELoss(), -1.0)], ValueError, "must be a finite number >= 0, got -1.0"),
        ([(None, 1.0)], ValueError, "None but weight 1"),
        ([(MaskedMSELoss(), 0.0)], ValueError, "all term weights are 0"),
        ([(lambda p, t, m: p, 1.0)], TypeError, "must be a torch.nn.Module"),
        ([MaskedMSELoss()], TypeError, r"must be a \(loss, weight\) pair"),
        (MaskedMSELoss(), TypeError, "terms must be a sequence"),
    ],
)
def test_weighted_sum_bad_terms(terms, error, match):
    with pytest.raises(error, match=match):
        WeightedSumLoss(terms)
