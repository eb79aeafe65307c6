"""The volumes-and-fit benchmark's library (medden.apps.benchmark.volume_fit) on tiny volumes: slice-by-slice
noise, the centre crops, BM3D slice by slice, and --fit as the CLI runs it (not the numbers)."""

import dataclasses

import numpy as np
import pytest
import torch

from medden.apps.benchmark import realistic as rn
from medden.apps.benchmark import volume_fit as vf


def _volume(depth=8, size=64):
    """``(1, H, W, D)``: a square on a zero background, a little brighter slice by slice (flat blocks, so
    white noise on it reads as white)."""
    plane = np.zeros((size, size), np.float32)
    plane[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 0.8
    return np.stack([plane + 0.01 * k for k in range(depth)], axis=-1)[None]


def test_a_2d_corruption_is_drawn_independently_for_every_slice_at_one_level():
    from medden.transforms import RandGaussianSigmaNoise

    clean = np.zeros((1, 64, 64, 4), np.float32)
    noisy = vf.slice_by_slice(RandGaussianSigmaNoise((0.05, 0.2)), clean, seed=3, level=0.1)
    assert noisy.shape == clean.shape
    assert np.allclose(noisy.reshape(-1, 4).std(axis=0), 0.1, rtol=0.05)  # the given level in every slice
    correlation = np.corrcoef(noisy[0, :, :, 0].ravel(), noisy[0, :, :, 1].ravel())[0, 1]
    assert abs(correlation) < 0.05  # independent draws, not one field repeated
    again = vf.slice_by_slice(RandGaussianSigmaNoise((0.05, 0.2)), clean, seed=3, level=0.1)
    np.testing.assert_array_equal(noisy, again)


def test_centre_crops_the_window_and_the_central_slices():
    volume = np.arange(1 * 6 * 8 * 5, dtype=np.float32).reshape(1, 6, 8, 5)
    out = vf.centre_crop(volume, 4, 3)
    np.testing.assert_array_equal(out, volume[:, 1:5, 2:6, 1:4])
    np.testing.assert_array_equal(vf.centre_crop(volume, None, None), volume)


def test_bm3d_slices_denoises_each_slice_in_the_volumes_units():
    pytest.importorskip("bm3d")
    clean = _volume(depth=2) * 1000.0 - 500.0  # HU-like units
    noisy = clean + np.random.default_rng(0).normal(0, 30.0, clean.shape).astype(np.float32)
    out = vf.bm3d_slices(30.0)(noisy)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert np.abs(out - clean).mean() < 0.5 * np.abs(noisy - clean).mean()


def test_fit_method_fits_a_copy_of_the_bundle_within_its_budget_and_reports_the_choice():
    from medden.bundle import load_bundle

    bundle = load_bundle("general_denoiser_v3", device="cpu")
    before = {k: v.clone() for k, v in bundle.network.state_dict().items()}
    noisy = _volume() + np.random.default_rng(1).normal(0, 0.05, (1, 64, 64, 8)).astype(np.float32)
    method, info = vf.fit_method(bundle, minutes=0.06, seed=0, snapshot_every=0.03)
    out = method(noisy)
    assert out.shape == noisy.shape and np.isfinite(out).all()
    assert info["fit_seconds"] <= 0.06 * 60 * 1.1 + 1.0
    assert info["report"]["chosen"] in ("base", "fitted") and info["report"]["held_out_curve"][0]["iteration"] == 0
    assert [t for t, _ in info["snapshots"]] == pytest.approx([0.03, 0.06])
    for key, value in bundle.network.state_dict().items():  # the bundle's own network is untouched
        assert torch.equal(value, before[key])
    case = rn.make_case("phantom", "test", rn.VOLUME, _volume(), noisy, rn.UNIT)
    curve = vf.snapshot_psnrs(bundle, case, info["snapshots"])
    assert [t for t, _ in curve] == pytest.approx([0.03, 0.06]) and all(np.isfinite(p) for _, p in curve)


def test_fit_column_names():
    assert vf.fit_column(1.0) == "--fit 1 min" and vf.fit_column(0.5) == "--fit 0.5 min"
    assert dataclasses.is_dataclass(rn.RealisticCase)
