"""`medden denoise` writes a JSON sidecar next to every denoised NIfTI file (dcm2niix / BIDS style): its source
relative to INPUT, the bundle, the SHA-256 of the weights that ran, the backend, medden's version, the noise
before and after, the date; nothing about the patient; written atomically and kept by resume."""

import hashlib
import json
from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import medden
from medden.apps.batch_denoise import denoise_path
from medden.bundle import load_bundle

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _volume(path: Path, depth: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).uniform(0, 1, (24, 20, depth)).astype(np.float32)
    header = nib.Nifti1Header()
    header["descrip"] = b"DOE^JANE 1970-01-01"  # a header field that must not reach the sidecar
    nib.save(nib.Nifti1Image(data, np.eye(4), header), path)


def test_every_denoised_nifti_gets_a_sidecar_with_provenance_and_noise(tmp_path):
    bundle = load_bundle(BUNDLES / "recorruption_ixi_bernoulli", device="cpu")
    _volume(tmp_path / "in" / "sub" / "scan.nii.gz")
    report = denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    row = report["series"][0]
    sidecar = tmp_path / "out" / "nifti" / "sub" / "scan_denoised.json"
    assert row["sidecar"] == "nifti/sub/scan_denoised.json" and sidecar.is_file()
    data = json.loads(sidecar.read_text())
    assert data["Sources"] == ["sub/scan.nii.gz"] and data["SourcesRelativeTo"] == "INPUT"
    assert data["Bundle"] == {"Name": "recorruption_ixi_bernoulli", "Version": bundle.name.split()[-1],
                              "WeightsSHA256": _sha256(BUNDLES / "recorruption_ixi_bernoulli" / "models" / "model.pt"),
                              "Backend": "torch"}
    assert data["GeneratedBy"] == [{"Name": "medden", "Version": medden.__version__, "Description": "medden denoise"}]
    assert data["NoiseSigmaBefore"] == pytest.approx(row["noise_sigma_before"])
    assert data["NoiseSigmaAfter"] == pytest.approx(row["noise_sigma_after"])
    assert datetime.fromisoformat(data["DateCreated"]).tzinfo is not None
    text = sidecar.read_text()
    assert "DOE" not in text and "1970" not in text and str(tmp_path) not in text  # no header fields, no full path
    assert sorted(p.name for p in sidecar.parent.iterdir()) == ["scan_denoised.json", "scan_denoised.nii.gz"]

    sidecar.unlink()  # a result without its sidecar is incomplete: a rerun redoes it
    report = denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    assert report["series"][0]["status"] == "done" and sidecar.is_file()
    report = denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    assert report["series"][0]["status"] == "done (resumed, skipped)"


@pytest.mark.parametrize("backend, weights", [("torch", "model.pt"), ("onnx", "model.onnx")])
def test_the_sidecar_names_the_weights_and_backend_that_ran(tmp_path, backend, weights):
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    bundle = load_bundle(BUNDLES / "general_denoiser_v3", device="cpu", backend=backend)
    _volume(tmp_path / "in" / "one.nii.gz", depth=1)
    _volume(tmp_path / "in" / "vol.nii.gz", depth=6)
    denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    models = BUNDLES / "general_denoiser_v3" / "models"
    one = json.loads((tmp_path / "out" / "nifti" / "one_denoised.json").read_text())
    vol = json.loads((tmp_path / "out" / "nifti" / "vol_denoised.json").read_text())
    assert vol["Bundle"]["WeightsSHA256"] == _sha256(models / weights) and vol["Bundle"]["Backend"] == backend
    # a single image runs the bundle's own 2D network, always from its PyTorch weights
    assert one["Bundle"]["WeightsSHA256"] == _sha256(models / "model_2d.pt") and one["Bundle"]["Backend"] == "torch"
