"""medden denoise --fit: recorruption fine-tuning from a bundle's weights, saved as a bundle.

The training itself (handlers, seeded losses, in-place fine-tuning) is tested in
tests/engines/test_recorruption_fit.py; here: that it denoises, and the command around it.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medden.apps.fit import FITTED_BUNDLE, fit_on_input, fit_slices, read_input_volumes
from medden.engines import fit_network
from medden.metrics.image_quality import psnr
from medden.networks import general_denoiser_net

GENERAL = Path(__file__).resolve().parents[2] / "bundles" / "general_denoiser"


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


def test_fit_gains_psnr_over_the_noisy_input_it_learns_from():
    """The fit must learn to denoise, not to copy: a target equal to the input (``y + alpha*z``,
    as if the recorruption were wrong) trains the residual network towards the identity, a 0 dB gain."""
    size, sigma = 64, 0.1
    rows, cols = np.mgrid[:size, :size] / size
    clean = (0.3 + 0.4 * cols + 0.2 * ((rows - 0.5) ** 2 + (cols - 0.5) ** 2 < 0.08)).astype(np.float32)[None]
    noisy = (clean + sigma * np.random.default_rng(0).standard_normal(clean.shape)).astype(np.float32)
    torch.manual_seed(0)
    net = general_denoiser_net(channels=(8, 16))  # starts as the identity: 0 dB gain before fitting
    result = fit_network(net, [noisy], minutes=5.0, batch_size=4, patch=32, learning_rate=3e-3, max_iterations=40)
    with torch.no_grad():
        denoised = net(torch.from_numpy(noisy)[None])
    clean_t = torch.from_numpy(clean)[None]
    gain = float(psnr(denoised, clean_t, 1.0) - psnr(torch.from_numpy(noisy)[None], clean_t, 1.0))
    assert result.iterations == 40
    assert gain > 1.5, gain  # 2.9 dB (20.0 -> 23.0); exactly 0 dB when the target is the input


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
    with pytest.raises(ValueError, match="is empty"):
        read_input_volumes(tmp_path / "empty")


def test_fit_on_input_starts_from_the_general_weights_and_saves_a_loadable_bundle(tmp_path):
    from medden.bundle import load_bundle
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
    assert load_bundle(fitted, "cpu", trust=True).percentiles == load_bundle(GENERAL, "cpu").percentiles


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


def test_read_input_volumes_takes_a_dicom_file_and_both_kinds_of_a_mixed_folder(tmp_path):
    import shutil

    from pydicom.data import get_testdata_file

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _nifti_input(mixed)  # mixed/in/scan.nii.gz
    (mixed / "broken.nii").write_bytes(b"\0" * 400)  # left out, as the denoising run reports it
    shutil.copy(get_testdata_file("CT_small.dcm"), mixed / "IM0001")
    shapes = sorted(v.shape for v in read_input_volumes(mixed))
    assert shapes == [(1, 64, 64, 3), (1, 128, 128, 1)]
    (volume,) = read_input_volumes(mixed / "IM0001")
    assert volume.shape == (1, 128, 128, 1)
