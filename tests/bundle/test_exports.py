"""Running a bundle's exports: each backend loads its checked file and denoises like PyTorch,
``auto`` takes the fastest current export, stale or missing exports are refused, and a load
reads ``models/export.json`` and hashes ``models/model.pt`` once."""

import json
import shutil

import numpy as np
import pytest
import torch

import medden.bundle.exports
import medden.bundle.loading
from medden.apps.export import export_bundle
from medden.bundle import load_bundle, shipped_bundles
from medden.bundle.backends import OnnxNetwork, load_exported_network
from medden.bundle.denoiser_interface import BundleDenoiser
from medden.bundle.exports import BACKENDS, auto_choice, checked_export, choose_backend, current_exports, is_current, read_export_record
from medden.bundle.layout import EXPORTED_FILES
from medden.io import save_checkpoint
from medden.networks import network_device

from helpers import REPO, copy_bundle, noisy_ct_slice

pytest.importorskip("onnxruntime")


def _exported_network(bundle, backend):
    return load_exported_network(checked_export(bundle, backend, current_exports(bundle)), backend)


@pytest.mark.parametrize("backend", ["torchscript", "onnx"])
def test_float_exports_match_pytorch_on_an_unseen_shape_and_batch(exported, backend):
    bundle, _ = exported
    reference = load_bundle(bundle, "cpu", trust=True).network
    network = _exported_network(bundle, backend)
    x = torch.rand(3, 1, 160, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(network(x), reference(x), atol=1e-4)
    assert network_device(network) == torch.device("cpu")


def test_every_backend_denoises_a_slice_like_the_float_model(exported):
    bundle, _ = exported
    noisy, _ = noisy_ct_slice()
    outputs = {}
    for backend in BACKENDS:
        denoiser = BundleDenoiser(bundle, "cpu", backend=backend, trust=True)
        assert denoiser.bundle.backend == backend
        assert ("backend" in denoiser.bundle.parameters) == (backend != "torch")  # exports are named in the UIDs
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
    assert load_bundle(bundle, "cpu", backend="auto", trust=True).backend == "torch"
    with pytest.raises(ValueError, match="not made from the bundle's current models/model.pt.*medden export"):
        load_bundle(bundle, "cpu", backend="onnx", trust=True)
    export_bundle(bundle, ["onnx"], trust=True)  # exporting again makes it current; the other stale ones stay out of the record
    assert is_current(bundle, "onnx") and not is_current(bundle, "onnx-int8")
    assert set(read_export_record(bundle)) == {"model_sha256", "onnx"}


def test_onnx_network_explains_an_input_it_cannot_take(exported):
    network = _exported_network(exported[0], "onnx")
    with pytest.raises(ValueError, match=r"could not run on an input of shape \(1, 3, 64, 64\)"):
        network(torch.rand(1, 3, 64, 64))  # a grey network given RGB


def test_shipped_exports_are_current():
    for name in shipped_bundles():
        root = REPO / "bundles" / name
        record = read_export_record(root)
        for backend, path in EXPORTED_FILES.items():
            if (root / path).is_file():
                assert backend in record and is_current(root, backend), f"{name}: {path} is stale; run medden export"


def test_missing_and_broken_exports_give_clear_errors(tmp_path):
    bundle = copy_bundle("general_denoiser", tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="no onnx export.*medden export .* --formats onnx"):
        load_bundle(bundle, "cpu", backend="onnx", trust=True)
    with pytest.raises(ValueError, match="cannot run the overridden model_path"):
        load_bundle(bundle, "cpu", backend="onnx", overrides={"model_path": str(bundle / "models" / "model.pt")}, trust=True)
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        OnnxNetwork(tmp_path / "broken.onnx")
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'; choose one of auto, torch"):
        load_bundle(bundle, "cpu", backend="tensorrt", trust=True)


@pytest.mark.parametrize("backend", ["auto", "onnx", "torch"])
def test_a_load_reads_the_record_and_hashes_the_weights_at_most_once(exported, monkeypatch, backend):
    calls = {"record": 0, "hash": 0, "check": 0}

    def counting(key, function):
        def wrapper(*args, **kwargs):
            calls[key] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(medden.bundle.exports, "read_export_record",
                        counting("record", medden.bundle.exports.read_export_record))
    monkeypatch.setattr(medden.bundle.exports, "model_sha256", counting("hash", medden.bundle.exports.model_sha256))
    monkeypatch.setattr(medden.bundle.loading, "check_backend", counting("check", medden.bundle.loading.check_backend))
    bundle = load_bundle(exported[0], "cpu", backend=backend, trust=True)
    assert bundle.backend == (auto_choice(exported[1]) if backend == "auto" else backend)
    read = 0 if backend == "torch" else 1  # torch needs no export record
    assert calls == {"record": read, "hash": read, "check": 1}
