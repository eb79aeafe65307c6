"""medden denoise --fit: fine-tuning a bundle on its own input, saved as a bundle with a fit report.

The training itself (pairs, held-out loss, choice of snapshot, handlers) is tested in
tests/engines/test_fit_pairs.py and tests/engines/test_input_fit.py; here: reading and
scaling the input, the scheme it gets, and the bundle written around the result.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medden.apps.fit import FIT_REPORT, FITTED_BUNDLE, fit_on_input, fit_volumes, read_input_volumes
from medden.engines import NeighbourSlicePairs, RecorruptionPairs
from medden.networks import general_denoiser_net, stack_denoiser_net

GENERAL = Path(__file__).resolve().parents[2] / "bundles" / "general_denoiser"


def test_fit_volumes_scale_like_inference_and_keep_central_contiguous_slices():
    volume = np.stack([np.full((1, 8, 8), v, np.float32) for v in range(10)], axis=-1)  # (1, 8, 8, 10)
    volume += np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1)  # values 0..72
    (out,) = fit_volumes([volume], (0.0, 100.0), max_slices=4)
    assert out.shape == (4, 8, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out, volume[0, ..., 3:7].transpose(2, 0, 1) / 72.0, rtol=1e-6)  # slices 3-6
    image = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
    assert [v.shape for v in fit_volumes([volume, image], (0.0, 100.0), max_slices=12)] == [(10, 8, 8), (1, 8, 8)]
    capped = fit_volumes([volume, volume, image], (0.0, 100.0), max_slices=13)
    assert [v.shape[0] for v in capped] == [10, 3]  # what is left of the budget, then nothing
    rgb = np.stack([image[0], image[0] * 2, image[0] * 3])  # (3, 8, 8), range 0..189: grey 2 x image
    np.testing.assert_allclose(fit_volumes([rgb], (0.0, 100.0))[0][0], 2 * image[0] / 189.0, rtol=1e-6)
    assert len(fit_volumes([np.zeros((1, 4, 4), np.float32), image], (0.0, 100.0))) == 1  # constant: skipped
    with pytest.raises(ValueError, match="non-finite"):
        fit_volumes([np.full((1, 4, 4), np.nan, np.float32)], (0.0, 100.0))
    with pytest.raises(ValueError, match="constant"):
        fit_volumes([np.zeros((1, 4, 4), np.float32)], (0.0, 100.0))
    with pytest.raises(ValueError, match="no images"):
        fit_volumes([], (0.0, 100.0))


def test_fit_refuses_torchrun(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="one process"):
        fit_on_input(tmp_path, tmp_path / "out", GENERAL, 0.01)


def _nifti_input(tmp_path, depth=3, size=64):
    """White Gaussian noise on flat regions (a ramp in every block reads as correlated noise, and zero-mean air
    with negative values is not magnitude data: either would make --fit keep the base without fitting)."""
    from medden.io.nifti import write_nifti

    rng = np.random.default_rng(1)
    clean = np.zeros((size, size), np.float32)
    clean[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 0.7
    volume = np.stack([clean + 0.08 * rng.standard_normal((size, size)).astype(np.float32) for _ in range(depth)], -1)
    path = tmp_path / "in" / "scan.nii.gz"
    path.parent.mkdir()
    write_nifti(volume[None] * 1000.0, path, np.eye(4))
    return path


def _dicom_input(tmp_path):
    from pydicom.data import get_testdata_file

    folder = tmp_path / "dicom"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "IM0001")  # one 128 x 128 CT slice
    return folder / "IM0001"


def _tiny_bundle(folder, neighbours=0, lone=False):
    """The general bundle's configs and metadata with a tiny network (2D, or 2.5D for ``neighbours``) and weights;
    ``lone``: the 2.5D bundle also runs single images through a tiny 2D network of its own (``models/model_2d.pt``)."""
    configs = folder / "configs"
    configs.mkdir(parents=True)
    config = json.loads((GENERAL / "configs" / "inference.json").read_text())
    torch.manual_seed(0)
    if neighbours:
        config["network_def"] = (f"$medden.networks.stack_denoiser_net(neighbours={neighbours}, channels=(4, 8), "
                                 "full_channels=4)")
        config["inferer"] = {"_target_": "medden.inference.SliceStackInferer", "neighbours": neighbours}
        network = stack_denoiser_net(neighbours=neighbours, channels=(4, 8), full_channels=4)
        if lone:
            config["network_2d"] = ("$medden.io.load_network_weights(medden.networks.general_denoiser_net("
                                    "channels=(4, 8)), @bundle_root + '/models/model_2d.pt').eval()")
            config["inferer"]["lone_network"] = "@network_2d"
    else:
        config["channels"] = [4, 8]
        network = general_denoiser_net(channels=(4, 8))
    (configs / "inference.json").write_text(json.dumps(config))
    shutil.copy(GENERAL / "configs" / "metadata.json", configs / "metadata.json")
    from medden.io.checkpoint import save_checkpoint

    (folder / "models").mkdir()
    save_checkpoint(network.state_dict(), folder / "models" / "model.pt")
    if lone:
        save_checkpoint(general_denoiser_net(channels=(4, 8)).state_dict(), folder / "models" / "model_2d.pt")
    return folder


def _check_fitted_bundle(fitted, base, scheme, minutes):
    """The report names ``scheme`` and the choice, and the weights are the base's exactly when it chose "base"."""
    from medden.bundle import load_bundle
    from medden.io import load_checkpoint

    report = json.loads((fitted / FIT_REPORT).read_text())
    assert report["scheme"]["scheme"] == scheme and report["budget_minutes"] == minutes
    assert report["chosen"] in ("base", "fitted") and report["held_out_curve"][0]["iteration"] == 0, report["reason"]
    assert report["seconds"] <= minutes * 60 + 1
    start, end = load_checkpoint(base / "models" / "model.pt"), load_checkpoint(fitted / "models" / "model.pt")
    same = all(torch.equal(start[k], end[k]) for k in start)
    assert same == (report["chosen"] == "base"), report["reason"]
    meta = json.loads((fitted / "configs" / "metadata.json").read_text())
    assert meta["version"].endswith("+fit") and scheme in meta["changelog"][meta["version"]]
    assert f"{report['chosen']} weights kept" in meta["changelog"][meta["version"]]
    assert load_bundle(fitted, "cpu", trust=True).percentiles == load_bundle(base, "cpu", trust=True).percentiles
    return report


def test_fit_on_a_volume_uses_neighbour_slices_and_writes_a_report(tmp_path):
    base = _tiny_bundle(tmp_path / "tiny")
    fitted = fit_on_input(_nifti_input(tmp_path), tmp_path / "out", base, minutes=0.1, trust=True)
    assert fitted == tmp_path / "out" / FITTED_BUNDLE
    report = _check_fitted_bundle(fitted, base, NeighbourSlicePairs.name, 0.1)
    assert report["scheme"]["slices"] == [3] and report["scheme"]["input_slice_step"] == 1


def test_fit_of_a_volumetric_bundle_gives_it_stacks_of_every_other_slice(tmp_path):
    base = _tiny_bundle(tmp_path / "tiny", neighbours=1)
    fitted = fit_on_input(_nifti_input(tmp_path, depth=5), tmp_path / "out", base, minutes=0.02, trust=True)
    report = _check_fitted_bundle(fitted, base, NeighbourSlicePairs.name, 0.02)
    assert report["scheme"]["input_slice_step"] == 2


def test_fit_keeps_the_base_without_fitting_a_real_ct_slice_whose_noise_is_correlated(tmp_path):
    base = _tiny_bundle(tmp_path / "tiny")
    fitted = fit_on_input(_dicom_input(tmp_path), tmp_path / "out", base, minutes=0.02, trust=True)
    report = json.loads((fitted / FIT_REPORT).read_text())
    assert report["scheme"]["scheme"] == RecorruptionPairs.name and report["scheme"]["slices"] == [1]
    assert (report["chosen"], report["stopped"], report["iterations"]) == ("base", "not fitted", 0)
    assert "correlated between pixels" in report["reason"]
    assert _same_weights(base / "models" / "model.pt", fitted / "models" / "model.pt")


def test_fit_on_a_single_white_noise_image_uses_recorruption(tmp_path):
    base = _tiny_bundle(tmp_path / "tiny")
    fitted = fit_on_input(_nifti_input(tmp_path, depth=1, size=128), tmp_path / "out", base, minutes=0.1, trust=True)
    report = _check_fitted_bundle(fitted, base, RecorruptionPairs.name, 0.1)
    assert report["scheme"]["slices"] == [1]


def _same_weights(a, b):
    from medden.io import load_checkpoint

    first, second = load_checkpoint(a), load_checkpoint(b)
    return all(torch.equal(first[k], second[k]) for k in first)


def test_a_volumetric_bundle_fits_its_2d_network_on_single_images_and_its_stack_network_on_volumes(tmp_path):
    base = _tiny_bundle(tmp_path / "tiny", neighbours=1, lone=True)
    for name, source, weights, kept in (("image", _dicom_input(tmp_path), "model_2d.pt", "model.pt"),
                                        ("volume", _nifti_input(tmp_path, depth=5), "model.pt", "model_2d.pt")):
        fitted = fit_on_input(source, tmp_path / name, base, minutes=0.05, trust=True)
        report = json.loads((fitted / FIT_REPORT).read_text())
        assert _same_weights(base / "models" / kept, fitted / "models" / kept)  # the other network untouched
        trained = _same_weights(base / "models" / weights, fitted / "models" / weights)
        assert trained == (report["chosen"] == "base"), (name, report["reason"])
        assert (report["scheme"]["slices"] == [1]) == (name == "image")
        assert not (fitted / "models" / "export.json").exists()


def test_fitted_network_is_the_2d_one_only_when_every_input_is_a_single_image(tmp_path):
    from medden.apps.fit import fitted_network
    from medden.bundle import load_bundle
    from medden.bundle.bundle import single_image_network

    bundle = load_bundle(_tiny_bundle(tmp_path / "tiny", neighbours=1, lone=True), "cpu", trust=True)
    image, volume = np.zeros((1, 8, 8), np.float32), np.zeros((4, 8, 8), np.float32)
    assert fitted_network(bundle, [image, image]) == (single_image_network(bundle.inferer), True)
    assert fitted_network(bundle, [image, volume]) == (bundle.network, False)
    plain = load_bundle(_tiny_bundle(tmp_path / "plain", neighbours=1), "cpu", trust=True)
    assert fitted_network(plain, [image]) == (plain.network, False)


def test_read_input_volumes_reads_nifti_and_reports_empty_input(tmp_path):
    path = _nifti_input(tmp_path)
    volumes = read_input_volumes(path.parent)
    assert len(volumes) == 1 and volumes[0].shape == (1, 64, 64, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        read_input_volumes(tmp_path / "empty")


def test_cli_fit_then_denoise(tmp_path, capsys):
    from medden.apps.cli import main

    path = _nifti_input(tmp_path)
    out = tmp_path / "out"
    assert main(["denoise", str(path), str(out), "--fit", "--fit-minutes", "0.01"]) == 0
    assert (out / FITTED_BUNDLE / "models" / "model.pt").is_file() and (out / FITTED_BUNDLE / FIT_REPORT).is_file()
    report = json.loads((out / "medden_report.json").read_text())
    assert report["bundle"].startswith(FITTED_BUNDLE) and report["processed"] == 1
    captured = capsys.readouterr()
    assert "fitted bundle saved" in captured.out
    decision = json.loads((out / FITTED_BUNDLE / FIT_REPORT).read_text())["reason"]
    assert f"fit: {decision}" in captured.out  # what --fit chose, and why, on the terminal too
    assert "fit: " in captured.err and "held-out loss" in captured.err and "s left" in captured.err
    assert main(["denoise", str(path), str(out), "--fit", "--fit-minutes", "0"]) == 2
    assert "expected a number > 0, got '0'" in capsys.readouterr().err


def test_read_input_volumes_takes_a_dicom_file_and_both_kinds_of_a_mixed_folder(tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _nifti_input(mixed)  # mixed/in/scan.nii.gz
    (mixed / "broken.nii").write_bytes(b"\0" * 400)  # left out, as the denoising run reports it
    shutil.copy(_dicom_input(tmp_path), mixed / "IM0001")
    shapes = sorted(v.shape for v in read_input_volumes(mixed))
    assert shapes == [(1, 64, 64, 3), (1, 128, 128, 1)]
    (volume,) = read_input_volumes(mixed / "IM0001")
    assert volume.shape == (1, 128, 128, 1)


def test_fit_reports_its_held_out_loss_and_time_left(tmp_path, capsys):
    from medden.apps.terminal import FitProgressLine
    from medden.engines.input_fit import FitProgress

    base = _tiny_bundle(tmp_path / "tiny")
    events = []
    fitted = fit_on_input(_nifti_input(tmp_path), tmp_path / "out", base, minutes=0.1, trust=True,
                          progress=events.append)
    report = json.loads((fitted / FIT_REPORT).read_text())
    assert len(events) == len(report["held_out_curve"]) >= 2  # one per held-out evaluation, the base's first
    assert all(isinstance(e, FitProgress) for e in events)
    first = events[0]
    assert first.iteration == 0 and first.loss == first.base_loss == first.best_loss
    assert [round(e.loss, 6) for e in events] == [round(p["loss"], 6) for p in report["held_out_curve"]]
    assert all(a.seconds_left > b.seconds_left for a, b in zip(events, events[1:]))
    assert all(abs(e.seconds + e.seconds_left - 6.0) < 1.0 for e in events)  # budget: what reading left of 6 s
    assert all(e.best_loss <= e.base_loss for e in events)
    line = FitProgressLine()
    line(events[-1])
    err = capsys.readouterr().err
    assert err.endswith("\n") and "s left, iteration" in err and f"held-out loss {events[-1].loss:.4g}" in err
