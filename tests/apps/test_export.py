"""Exported models (TorchScript, ONNX, int8 ONNX): they round-trip, they are checked, and
``medden denoise --backend`` runs them; stale or missing exports are refused."""

import json
import shutil

import numpy as np
import pytest
import torch

from medden.apps.cli import main
from medden.apps.batch_denoise import load_bundle, shipped_bundles
from medden.bundle.denoisers import BundleDenoiser
from medden.bundle.exports import BACKENDS, EXPORTED_FILES, choose_backend, is_current, read_export_record
from medden.apps.export import CALIBRATION_NOISES, corrupted_windows, export_bundle
from medden.bundle.backends import OnnxNetwork, load_exported_network, network_device
from medden.io import save_checkpoint

from helpers import REPO

pytest.importorskip("onnxruntime")
IMAGE_BUNDLES = [b for b in shipped_bundles() if b != "n2n_kspace_mri"]  # k-space N2N has no image inferer


def copy_bundle(name, dest):
    shutil.copytree(REPO / "bundles" / name, dest, ignore=shutil.ignore_patterns("runs", "model.ts", "*.onnx",
                                                                                 "export.json"))
    return dest


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A copy of the default bundle with every format exported (small calibration set)."""
    bundle = copy_bundle("general_denoiser", tmp_path_factory.mktemp("export") / "general_denoiser")
    record = export_bundle(bundle, calibration_count=12)
    return bundle, record


def noisy_slice(seed=0, size=(96, 128)):
    from medden.data.modalities import sample_plane

    clean = sample_plane("693_UNCR.dcm")[:, 200:200 + size[0], 150:150 + size[1]]
    noisy = clean + np.random.default_rng(seed).normal(0, 0.08, clean.shape)
    return noisy.astype(np.float32) * 1000.0 - 200.0, clean  # in "modality units", as a scanner would give


def test_every_format_is_written_checked_and_recorded(exported):
    bundle, record = exported
    assert record == read_export_record(bundle)
    for backend, entry in record.items():
        if backend == "model_sha256":
            continue
        path = bundle / EXPORTED_FILES[backend]
        assert entry["bytes"] == path.stat().st_size > 0
        assert is_current(bundle, backend)
    assert record["torchscript"]["method"] in ("script", "trace")
    for backend in ("torchscript", "onnx"):
        assert 0 <= record[backend]["max_abs_difference"] <= record[backend]["tolerance"] == 1e-4
    int8 = record["onnx-int8"]
    assert int8["bytes"] < record["onnx"]["bytes"] / 3  # int8 weights: about a quarter of float32
    assert int8["calibration_noises"] == list(CALIBRATION_NOISES)
    assert int8["psnr_change_db"] == pytest.approx(int8["validation_psnr_int8"] - int8["validation_psnr_onnx"], abs=2e-3)
    assert 0 < int8["max_abs_difference_vs_onnx"] < 0.5


@pytest.mark.parametrize("backend", ["torchscript", "onnx"])
def test_float_exports_match_pytorch_on_an_unseen_shape_and_batch(exported, backend):
    bundle, _ = exported
    reference = load_bundle(bundle, "cpu").network
    network = load_exported_network(bundle, backend)
    x = torch.rand(3, 1, 160, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(network(x), reference(x), atol=1e-4)
    assert network_device(network) == torch.device("cpu")


def test_every_backend_denoises_a_slice_like_the_float_model(exported):
    bundle, _ = exported
    noisy, _ = noisy_slice()
    outputs = {}
    for backend in BACKENDS:
        denoiser = BundleDenoiser(bundle, "cpu", backend=backend)
        assert denoiser.loaded.backend == backend
        assert ("backend" in denoiser.loaded.parameters) == (backend != "torch")  # exports are named in the UIDs
        outputs[backend] = denoiser(noisy)
    scale = float(noisy.max() - noisy.min())
    for backend in ("torchscript", "onnx"):
        assert np.abs(outputs[backend] - outputs["torch"]).max() < 1e-4 * scale
    int8_change = np.abs(outputs["onnx-int8"] - outputs["torch"])
    assert int8_change.max() > 1e-4 * scale  # quantized: not the same numbers ...
    assert np.abs(outputs["torch"] - noisy).mean() > 2 * int8_change.mean()  # ... but much closer than the noise


def test_auto_takes_the_fastest_current_export_and_int8_only_within_the_loss_limit(exported, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(exported[0], bundle)
    record = read_export_record(bundle)
    assert choose_backend(bundle) == ("onnx-int8" if record["onnx-int8"]["psnr_change_db"] >= -0.1 else "onnx")
    for change, expected in ((-0.05, "onnx-int8"), (-0.2, "onnx")):
        record["onnx-int8"]["psnr_change_db"] = change
        (bundle / "models" / "export.json").write_text(json.dumps(record))
        assert choose_backend(bundle) == expected
    (bundle / EXPORTED_FILES["onnx"]).unlink()
    assert choose_backend(bundle) == "torchscript"
    (bundle / "models" / "export.json").unlink()
    assert choose_backend(bundle) == "torch"  # files without a record are not trusted
    assert choose_backend(bundle, "onnx-int8") == "onnx-int8"  # an explicit choice passes through
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        choose_backend(bundle, "tensorrt")


def test_exports_of_other_weights_are_stale_and_refused(exported, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(exported[0], bundle)
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = state[first] + 0.01
    save_checkpoint(state, bundle / "models" / "model.pt")  # e.g. medden denoise --fit retrained it
    assert not any(is_current(bundle, b) for b in EXPORTED_FILES)
    assert load_bundle(bundle, "cpu", backend="auto").backend == "torch"
    with pytest.raises(ValueError, match="not made from the bundle's current models/model.pt.*medden export"):
        load_bundle(bundle, "cpu", backend="onnx")
    export_bundle(bundle, ["onnx"])  # exporting again makes it current; the other stale ones stay out of the record
    assert is_current(bundle, "onnx") and not is_current(bundle, "onnx-int8")
    assert set(read_export_record(bundle)) == {"model_sha256", "onnx"}


def test_missing_and_broken_exports_and_bad_inputs_give_clear_errors(tmp_path):
    bundle = copy_bundle("general_denoiser", tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="no onnx export.*medden export .* --formats onnx"):
        load_bundle(bundle, "cpu", backend="onnx")
    with pytest.raises(ValueError, match="cannot run the overridden model_path"):
        load_bundle(bundle, "cpu", backend="onnx", overrides={"model_path": str(bundle / "models" / "model.pt")})
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        OnnxNetwork(tmp_path / "broken.onnx")
    with pytest.raises(ValueError, match="formats must be some of"):
        export_bundle(bundle, ["tflite"])
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3 \\(RGB\\).*calibration"):
        corrupted_windows(2, "train", 4)
    with pytest.raises(ValueError, match="unknown calibration noise"):
        corrupted_windows(1, "train", 4, noises=["speckle"])


def test_onnx_network_explains_an_input_it_cannot_take(exported):
    network = load_exported_network(exported[0], "onnx")
    with pytest.raises(ValueError, match=r"could not run on an input of shape \(1, 3, 64, 64\)"):
        network(torch.rand(1, 3, 64, 64))  # a grey network given RGB


def test_a_failed_check_leaves_the_previous_export_in_place(exported, tmp_path, monkeypatch):
    import medden.apps.export

    bundle = tmp_path / "b"
    shutil.copytree(exported[0], bundle)
    before = (bundle / EXPORTED_FILES["onnx"]).read_bytes()
    monkeypatch.setattr(medden.apps.export, "FLOAT_TOLERANCE", -1.0)  # no export can pass
    with pytest.raises(ValueError, match="differs from PyTorch by up to .* it was not written"):
        export_bundle(bundle, ["onnx"])
    assert (bundle / EXPORTED_FILES["onnx"]).read_bytes() == before
    assert sorted(p.name for p in (bundle / "models").iterdir()) == sorted(
        ["model.pt", "export.json", "model.ts", "model.onnx", "model_int8.onnx"])  # no temporary file left


def test_calibration_windows_are_seeded_corrupted_crops_of_the_samples():
    noisy, clean = corrupted_windows(1, "train", 6, seed=4, size=64)
    again, _ = corrupted_windows(1, "train", 6, seed=4, size=64)
    assert noisy.shape == clean.shape == (6, 1, 64, 64) and noisy.dtype == np.float32
    np.testing.assert_array_equal(noisy, again)
    assert clean.min() >= 0 and clean.max() <= 1 and clean.std() > 0.05
    residual = noisy - clean
    assert 0.02 < residual[0::2].std() < 0.12  # Gaussian sigma 20/255 = 0.078
    rgb, _ = corrupted_windows(3, "val", 2, size=64)
    assert rgb.shape == (2, 3, 64, 64)


@pytest.mark.parametrize("name", IMAGE_BUNDLES)
def test_every_shipped_bundle_exports_to_torchscript_and_onnx(name, tmp_path):
    bundle = copy_bundle(name, tmp_path / name)
    record = export_bundle(bundle, ["torchscript", "onnx"])
    assert record["onnx"]["max_abs_difference"] <= 1e-4 and record["torchscript"]["max_abs_difference"] <= 1e-4
    network = load_bundle(bundle, "cpu").network
    odd = [1, int(record["onnx"]["checked_shapes"][0][1]), 75, 53]
    try:
        network(torch.rand(odd))
        takes_odd_sizes = True
    except (ValueError, RuntimeError):  # e.g. the general U-Net asks for multiples of 16 (its inferer pads windows)
        takes_odd_sizes = False
    for backend in ("torchscript", "onnx"):  # an export must take every size the network takes
        assert (odd in record[backend]["checked_shapes"]) == takes_odd_sizes
    exported, reference = (BundleDenoiser(bundle, "cpu", backend=b) for b in ("onnx", "torch"))
    image = np.random.default_rng(0).random((reference.loaded.image_channels, 64, 80), dtype=np.float32)
    np.testing.assert_allclose(exported(image), reference(image), atol=1e-4)


def test_shipped_exports_are_current():
    for name in shipped_bundles():
        root = REPO / "bundles" / name
        record = read_export_record(root)
        for backend, path in EXPORTED_FILES.items():
            if (root / path).is_file():
                assert backend in record and is_current(root, backend), f"{name}: {path} is stale; run medden export"


def test_cli_exports_and_denoises_with_a_chosen_backend(tmp_path, capsys):
    bundle = copy_bundle("general_denoiser", tmp_path / "b")
    assert main(["export", str(bundle), "--formats", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "models/model.onnx" in out and "max |difference|" in out
    import nibabel as nib

    noisy, _ = noisy_slice()
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(noisy[0][..., None], np.eye(4)), tmp_path / "in" / "slice.nii.gz")
    assert main(["denoise", str(tmp_path / "in" / "slice.nii.gz"), str(tmp_path / "out"), "--bundle", str(bundle)]) == 0
    assert "onnx backend" in capsys.readouterr().out  # auto: the only current export
    report = json.loads((tmp_path / "out" / "medden_report.json").read_text())
    assert report["processed"] == 1
    assert main(["denoise", str(tmp_path / "in" / "slice.nii.gz"), str(tmp_path / "out2"), "--bundle", str(bundle),
                 "--backend", "onnx-int8"]) == 1
    assert "no onnx-int8 export" in capsys.readouterr().err
    assert main(["denoise", "a", "b", "--backend", "tensorrt"]) == 2
