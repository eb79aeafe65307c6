"""``medden export``: every format is written, checked and recorded, a failed check replaces
nothing, and ``medden denoise --backend`` runs the result (loading exports, backends and the
``auto`` choice: tests/bundle/test_exports.py)."""

import json
import shutil

import numpy as np
import pytest
import torch

from medden.apps.cli import main
from medden.apps.export import CALIBRATION_NOISES, corrupted_windows, export_bundle
from medden.bundle import load_bundle, shipped_bundles
from medden.bundle.denoiser_interface import BundleDenoiser
from medden.bundle.exports import is_current, read_export_record
from medden.bundle.layout import EXPORTED_FILES

from helpers import copy_bundle, noisy_ct_slice

pytest.importorskip("onnxruntime")
IMAGE_BUNDLES = [b for b in shipped_bundles() if b != "n2n_kspace_mri"]  # k-space N2N has no image inferer


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


def test_bad_formats_and_calibration_inputs_give_clear_errors(tmp_path):
    bundle = copy_bundle("general_denoiser", tmp_path / "b")
    with pytest.raises(ValueError, match="formats must be some of"):
        export_bundle(bundle, ["tflite"], trust=True)
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3 \\(RGB\\).*calibration"):
        corrupted_windows(2, "train", 4)
    with pytest.raises(ValueError, match="unknown calibration noise"):
        corrupted_windows(1, "train", 4, noises=["speckle"])


def test_a_failed_check_leaves_the_previous_export_in_place(exported, tmp_path, monkeypatch):
    import medden.apps.export

    bundle = tmp_path / "b"
    shutil.copytree(exported[0], bundle)
    before = (bundle / EXPORTED_FILES["onnx"]).read_bytes()
    monkeypatch.setattr(medden.apps.export, "FLOAT_TOLERANCE", -1.0)  # no export can pass
    with pytest.raises(ValueError, match="differs from PyTorch by up to .* it was not written"):
        export_bundle(bundle, ["onnx"], trust=True)
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
    record = export_bundle(bundle, ["torchscript", "onnx"], trust=True)
    assert record["onnx"]["max_abs_difference"] <= 1e-4 and record["torchscript"]["max_abs_difference"] <= 1e-4
    network = load_bundle(bundle, "cpu", trust=True).network
    odd = [1, int(record["onnx"]["checked_shapes"][0][1]), 75, 53]
    try:
        network(torch.rand(odd))
        takes_odd_sizes = True
    except (ValueError, RuntimeError):  # e.g. the general U-Net asks for multiples of 16 (its inferer pads windows)
        takes_odd_sizes = False
    for backend in ("torchscript", "onnx"):  # an export must take every size the network takes
        assert (odd in record[backend]["checked_shapes"]) == takes_odd_sizes
    exported, reference = (BundleDenoiser(bundle, "cpu", backend=b, trust=True) for b in ("onnx", "torch"))
    image = np.random.default_rng(0).random((reference.bundle.image_channels, 64, 80), dtype=np.float32)
    np.testing.assert_allclose(exported(image), reference(image), atol=1e-4)


def test_cli_exports_and_denoises_with_a_chosen_backend(tmp_path, capsys):
    bundle = copy_bundle("general_denoiser", tmp_path / "b")
    assert main(["export", str(bundle), "--formats", "onnx", "--trust-bundle"]) == 0
    out = capsys.readouterr().out
    assert "models/model.onnx" in out and "max |difference|" in out
    import nibabel as nib

    noisy, _ = noisy_ct_slice()
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(noisy[0][..., None], np.eye(4)), tmp_path / "in" / "slice.nii.gz")
    assert main(["denoise", str(tmp_path / "in" / "slice.nii.gz"), str(tmp_path / "out"), "--bundle", str(bundle), "--trust-bundle"]) == 0
    assert "onnx backend" in capsys.readouterr().out  # auto: the only current export
    report = json.loads((tmp_path / "out" / "medden_report.json").read_text())
    assert report["processed"] == 1
    assert main(["denoise", str(tmp_path / "in" / "slice.nii.gz"), str(tmp_path / "out2"), "--bundle", str(bundle), "--trust-bundle",
                 "--backend", "onnx-int8"]) == 1
    assert "no onnx-int8 export" in capsys.readouterr().err
    assert main(["denoise", "a", "b", "--backend", "tensorrt"]) == 2
