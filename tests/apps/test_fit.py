"""medden denoise --fit: recorruption fine-tuning from a bundle's weights, saved as a bundle."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medden.apps.fit import FITTED_BUNDLE, fit_network, fit_on_input, fit_slices, read_input_volumes
from medden.networks import general_denoiser_net

GENERAL = Path(__file__).resolve().parents[2] / "bundles" / "general_denoiser"


def _noisy_slices(n=3, size=48, sigma=0.08, seed=0):
    rng = np.random.default_rng(seed)
    base = np.tile(np.linspace(0.2, 0.8, size, dtype=np.float32), (size, 1))
    return [(base + sigma * rng.standard_normal((size, size))).astype(np.float32)[None] for _ in range(n)]


def test_fit_slices_scale_like_inference_and_cap_the_count():
    volume = np.stack([np.full((1, 8, 8), v, np.float32) for v in range(10)], axis=-1)  # (1, 8, 8, 10)
    volume += np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1)
    slices = fit_slices([volume], (0.0, 100.0), max_slices=4)
    assert len(slices) == 4 and all(s.shape == (1, 8, 8) for s in slices)
    assert min(s.min() for s in slices) == pytest.approx(0.0) and max(s.max() for s in slices) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-finite"):
        fit_slices([np.full((1, 4, 4), np.nan, np.float32)], (0.0, 100.0))
    with pytest.raises(ValueError, match="constant"):
        fit_slices([np.zeros((1, 4, 4), np.float32)], (0.0, 100.0))
    with pytest.raises(ValueError, match="no images"):
        fit_slices([], (0.0, 100.0))


def test_fit_network_fine_tunes_in_place_from_the_given_weights():
    torch.manual_seed(0)
    net = general_denoiser_net(channels=(4, 8))
    for p in net.parameters():  # a non-zero start, so "from these weights" is measurable
        torch.nn.init.normal_(p, std=0.05)
    start = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
    times = []
    result = fit_network(net, _noisy_slices(), minutes=0.01, batch_size=2, patch=16, learning_rate=1e-3,
                         on_minute=([0.001, 5.0], lambda t, n: times.append(t)), log_every=1)
    end = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert result.iterations >= 1 and result.seconds >= 0.6 and len(result.losses) == result.iterations
    assert not torch.equal(start, end)
    assert torch.corrcoef(torch.stack([start, end]))[0, 1] > 0.9  # fine-tuned, not re-initialised
    assert times == [0.001, 5.0]  # every snapshot is taken, the unreached one at the end
    assert not net.training
    with pytest.raises(ValueError, match="minutes"):
        fit_network(net, _noisy_slices(), minutes=0)
    with pytest.raises(ValueError, match="no slices"):
        fit_network(net, [], minutes=0.01)


def test_fit_refuses_torchrun(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="one process"):
        fit_on_input(tmp_path, tmp_path / "out", GENERAL, 0.01)


def _nifti_input(tmp_path):
    from medden.io.nifti import write_nifti

    rng = np.random.default_rng(1)
    clean = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (64, 1))
    volume = np.stack([clean + 0.08 * rng.standard_normal((64, 64)).astype(np.float32) for _ in range(3)], -1)
    path = tmp_path / "in" / "scan.nii.gz"
    path.parent.mkdir()
    write_nifti(volume[None] * 1000.0, path, np.eye(4))
    return path


def test_read_input_volumes_reads_nifti_and_reports_empty_input(tmp_path):
    path = _nifti_input(tmp_path)
    volumes = read_input_volumes(path.parent)
    assert len(volumes) == 1 and volumes[0].shape == (1, 64, 64, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="could be read"):
        read_input_volumes(tmp_path / "empty")


def test_fit_on_input_starts_from_the_general_weights_and_saves_a_loadable_bundle(tmp_path):
    from medden.apps.batch_denoise import load_bundle
    from medden.io import load_checkpoint

    path = _nifti_input(tmp_path)
    fitted = fit_on_input(path, tmp_path / "out", GENERAL, minutes=0.01)
    assert fitted == tmp_path / "out" / FITTED_BUNDLE
    general = load_checkpoint(GENERAL / "models" / "model.pt")
    tuned = load_checkpoint(fitted / "models" / "model.pt")
    start = torch.cat([general[k].flatten() for k in general])
    end = torch.cat([tuned[k].flatten() for k in general])
    assert not torch.equal(start, end)
    assert torch.corrcoef(torch.stack([start, end]))[0, 1] > 0.99
    meta = json.loads((fitted / "configs" / "metadata.json").read_text())
    assert meta["version"].endswith("+fit") and "recorruption" in meta["changelog"][meta["version"]]
    assert load_bundle(fitted, "cpu").percentiles == load_bundle(GENERAL, "cpu").percentiles


def test_cli_fit_then_denoise(tmp_path, capsys):
    from medden.apps.cli import main

    path = _nifti_input(tmp_path)
    out = tmp_path / "out"
    assert main(["denoise", str(path), str(out), "--fit", "--fit-minutes", "0.01"]) == 0
    assert (out / FITTED_BUNDLE / "models" / "model.pt").is_file()
    report = json.loads((out / "medden_report.json").read_text())
    assert report["bundle"].startswith(FITTED_BUNDLE) and report["processed"] == 1
    assert "fitted bundle saved" in capsys.readouterr().out
    assert main(["denoise", str(path), str(out), "--fit", "--fit-minutes", "0"]) == 2
    assert "expected a number > 0, got '0'" in capsys.readouterr().err
