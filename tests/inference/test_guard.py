"""The do-no-harm guard: no drift, no change beyond a few sigma, none where there is no noise."""

import numpy as np
import pytest
import torch

from medden.bundle.bundle import runs_on_volumes
from medden.inference import ResidualGuardInferer, guard_residual
from monai.inferers import SliceInferer


def _noisy(seed=0, shape=(1, 1, 64, 64), sigma=0.05):
    generator = torch.Generator().manual_seed(seed)
    return 0.5 + sigma * torch.randn(shape, generator=generator)


def test_a_drift_is_removed_and_noise_removal_is_kept():
    noisy = _noisy()
    clean = torch.full_like(noisy, 0.5)
    drifted = clean + 0.02  # a network that denoises but brightens everything
    guarded = guard_residual(noisy, drifted, highpass=32, clip_sigmas=0)
    assert abs(float(guarded.mean() - 0.5)) < 2e-3  # the drift is gone
    assert float((guarded - clean).std()) < 0.3 * float((noisy - clean).std())  # the noise is still removed


def test_changes_beyond_a_few_sigma_are_clipped_and_padding_is_left_alone():
    noisy = _noisy(sigma=0.01)
    noisy[..., :, :16] = -1.0  # padding outside the field of view: one exact value
    halo = noisy.clone()
    halo[..., 30:34, 20:60] -= 0.5  # a dark streak 50 sigma deep, as along an edge
    halo[..., :, :16] += 0.3  # and a change in the padding
    guarded = guard_residual(noisy, halo, highpass=0, clip_sigmas=3.0)
    change = guarded - noisy
    assert float(change.abs().max()) <= 3.0 * 0.01 * 1.2  # flat-region sigma is within 20 % of 0.01
    assert torch.equal(guarded[..., :, :15], noisy[..., :, :15])


def test_volumes_are_guarded_slice_by_slice_through_the_slice_inferer():
    volume = torch.cat([_noisy(0, (1, 1, 32, 32, 1), 0.01), _noisy(1, (1, 1, 32, 32, 1), 0.1)], dim=-1)
    inferer = ResidualGuardInferer(SliceInferer(spatial_dim=2, roi_size=(-1, -1), progress=False), 0, 2.0)
    out = inferer(volume, lambda t: t + 1.0)  # a change far beyond either slice's noise
    change = (out - volume)[0, 0].amax(dim=(0, 1))
    assert change[0] < 0.03 and 0.1 < change[1] < 0.3  # each slice clipped at its own 2 sigma
    assert runs_on_volumes(inferer)
    with pytest.raises(ValueError, match="noisy and denoised"):
        guard_residual(volume, volume[..., 0])
