"""The normalizing flow (medden.networks.flow): invertibility, exact log-determinant, likelihood units."""

import math

import pytest
import torch

from medden.networks import COUPLINGS, ImageFlow, bits_per_dim, dequantize
from medden.networks.flow_layers import ActNorm, AffineCoupling, gaussian_log_density, squeeze, unsqueeze


def _trained_looking(flow: ImageFlow, size: int, dtype=torch.float32, scale: float = 0.05) -> ImageFlow:
    """Initialise actnorm on data, then perturb every parameter by ``scale`` so no coupling is
    the identity (zero-started convolutions would make a fresh flow trivially invertible)."""
    flow = flow.to(dtype)
    generator = torch.Generator().manual_seed(1)
    flow(torch.rand(8, flow.in_channels, size, size, generator=generator, dtype=dtype))
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator, dtype=dtype))
    return flow.eval()


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_encode_then_decode_returns_the_input(coupling):
    flow = _trained_looking(ImageFlow(1, levels=3, steps_per_level=2, hidden=8, coupling=coupling), 16)
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        encoding = flow.encode(x)
        restored = flow.decode(encoding.latents)
    assert [tuple(z.shape) for z in encoding.latents] == [(3, 2, 8, 8), (3, 4, 4, 4), (3, 16, 2, 2)]
    assert sum(z[0].numel() for z in encoding.latents) == x[0].numel()  # a bijection keeps the dimension
    assert (restored - x).abs().max() < 1e-4


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_log_determinant_matches_the_brute_force_jacobian(coupling):
    flow = _trained_looking(ImageFlow(1, levels=2, steps_per_level=2, hidden=4, coupling=coupling), 4,
                            torch.float64, scale=0.2)
    x = torch.rand(1, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def latents(flat):
        return torch.cat([z.flatten() for z in flow.encode(flat.reshape(1, 1, 4, 4)).latents])

    jacobian = torch.autograd.functional.jacobian(latents, x.flatten())
    assert jacobian.shape == (16, 16)
    brute_force = torch.linalg.slogdet(jacobian).logabsdet
    assert abs(float(flow.encode(x).log_det[0].detach()) - float(brute_force)) < 1e-8
    assert abs(float(brute_force)) > 0.1  # a volume-preserving map would make the check vacuous


def test_single_level_density_is_change_of_variables_with_a_standard_normal():
    flow = _trained_looking(ImageFlow(2, levels=1, steps_per_level=3, hidden=4, coupling="alternate"), 4,
                            torch.float64)
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64)
    encoding = flow.encode(x)
    (z,) = encoding.latents
    expected = -0.5 * (math.log(2 * math.pi) + z**2).flatten(1).sum(1) + encoding.log_det
    assert torch.allclose(encoding.log_density, expected)
    assert torch.allclose(flow(x), expected)


def test_squeeze_is_a_permutation_and_unsqueeze_undoes_it():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    y = squeeze(x)
    assert y.shape == (2, 12, 2, 3)
    assert torch.equal(y.flatten().sort().values, x.flatten().sort().values)
    assert torch.equal(unsqueeze(y), x)
    assert torch.equal(y[0, :4, 0, 0], torch.tensor([0.0, 1.0, 6.0, 7.0]))  # one 2 x 2 block -> 4 channels


def test_actnorm_initialises_from_the_first_batch_only():
    norm = ActNorm(3)
    x = 5 + 2 * torch.randn(16, 3, 8, 8)
    y, logdet = norm(x)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    assert torch.allclose(logdet, torch.full((16,), 64 * float(norm.log_scale.detach().sum())))
    before = norm.log_scale.detach().clone()
    norm(torch.randn(4, 3, 8, 8))
    assert torch.equal(norm.log_scale, before)
    loaded = ActNorm(3)
    loaded.load_state_dict(norm.state_dict())  # initialized is a buffer: weights load as initialised
    assert torch.equal(loaded(x)[0], norm(x)[0])


def test_actnorm_initialisation_runs_under_torch_distributed(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        norm = ActNorm(2)
        y, _ = norm(3 + torch.randn(8, 2, 4, 4))
        assert bool(norm.initialized) and abs(float(y.mean())) < 1e-5
    finally:
        dist.destroy_process_group()


def test_checkerboard_coupling_leaves_the_conditioning_squares_unchanged():
    layer = AffineCoupling(1, hidden=4, mask="checkerboard", parity=0)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.normal_(0, 0.5)
    x = torch.rand(2, 1, 6, 6)
    y, _ = layer(x)
    kept = (torch.arange(6)[:, None] + torch.arange(6)[None, :]) % 2 == 0
    assert torch.equal(y[..., kept], x[..., kept])
    assert not torch.allclose(y[..., ~kept], x[..., ~kept])


def test_samples_have_the_requested_size_and_follow_the_seed():
    flow = _trained_looking(ImageFlow(1, levels=2, steps_per_level=1, hidden=4), 8)
    first = flow.sample(3, (8, 12), generator=torch.Generator().manual_seed(0))
    again = flow.sample(3, (8, 12), generator=torch.Generator().manual_seed(0))
    assert first.shape == (3, 1, 8, 12) and torch.isfinite(first).all()
    assert torch.equal(first, again)


def test_dequantize_stays_within_each_level():
    x = torch.tensor([0.0, 0.5, 0.999, 1.0, -0.2, 1.3])
    noisy = dequantize(x, n_bins=4, generator=torch.Generator().manual_seed(0))
    levels = torch.tensor([0, 2, 3, 3, 0, 3], dtype=torch.float32)
    assert ((noisy >= levels / 4) & (noisy < (levels + 1) / 4)).all()


def test_bits_per_dim_of_the_uniform_density_is_eight_bits():
    # the uniform density on [0, 1]^D is 1 (log 0): each of 256 levels is equally likely
    assert torch.allclose(bits_per_dim(torch.zeros(2), n_dims=100), torch.full((2,), 8.0))
    # a density e times higher per value saves 1 / ln 2 bits per value
    assert torch.allclose(bits_per_dim(torch.full((1,), 100.0), n_dims=100), torch.tensor([8 - 1 / math.log(2)]))


def test_gaussian_log_density_matches_torch_distributions():
    z, mean, log_std = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), 0.3 * torch.randn(2, 3, 4, 4)
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(z).flatten(1).sum(1)
    assert torch.allclose(gaussian_log_density(z, mean, log_std), expected, atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"coupling": "spiral"}, "coupling must be one of"),
    ({"levels": 0}, "levels must be an int >= 1"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ImageFlow(1, **kwargs)


def test_bad_inputs_are_refused_with_the_fix():
    flow = ImageFlow(1, levels=3, steps_per_level=1, hidden=4)
    with pytest.raises(ValueError, match="multiple of 8"):
        flow(torch.rand(1, 1, 12, 16))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        flow(torch.rand(1, 2, 16, 16))
    with pytest.raises(ValueError, match="needs >= 2 channels"):
        AffineCoupling(1, 4, mask="channel")
