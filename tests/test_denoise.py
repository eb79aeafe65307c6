"""`medden denoise`: DICOM folders and NIfTI files end to end, reports, resume, refusals, exit codes."""

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medden.cli import main
from medden.denoise import denoise_path, load_bundle

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "recorruption_ixi_bernoulli"


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(BUNDLE, device="cpu")


def _ct_series(folder: Path, n: int = 3) -> str:
    """A small CT series made from CT_small: n slices, new UIDs, positions 2 mm apart, no .dcm suffix."""
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series_uid = generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        ds = source.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [float(v) + (2.0 * k if i == 2 else 0.0) for i, v in enumerate(source.ImagePositionPatient)]
        ds.InstanceNumber = k + 1
        ds.save_as(folder / f"img{n - k}")
    return series_uid


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_denoise_dicom_folder_end_to_end(tmp_path, bundle):
    src = tmp_path / "in"
    ct_uid = _ct_series(src / "ct" / "nested")
    shutil.copy(get_testdata_file("MR_small.dcm"), src / "mr.dcm")
    shutil.copy(get_testdata_file("MR_truncated.dcm"), src / "broken.dcm")
    (src / "notes.txt").write_text("not dicom")
    before = _digest(src)

    report = denoise_path(src, tmp_path / "out", bundle)
    assert _digest(src) == before  # inputs untouched
    assert report["input_kind"] == "dicom" and report["processed"] == 2 and report["failed"] == 0
    assert any("broken.dcm" in s["path"] for s in report["skipped"])
    written = sorted((tmp_path / "out" / "dicom").rglob("*.dcm"))
    assert len(written) == 4
    ct_out = [pydicom.dcmread(p) for p in written if pydicom.dcmread(p).Modality == "CT"]
    assert len(ct_out) == 3 and all(ds.SeriesInstanceUID != ct_uid for ds in ct_out)
    assert all("DERIVED" in ds.ImageType for ds in ct_out)
    for row in report["series"]:
        assert row["noise_sigma_before"] > 0 and row["noise_sigma_after"] >= 0
        preview = tmp_path / "out" / row["preview"]
        from PIL import Image

        with Image.open(preview) as png:
            assert png.mode == "L" and png.size in {(256, 128), (128, 64)}  # before | after, side by side
    text = (tmp_path / "out" / "medden_report.json").read_text()
    assert json.loads(text)["processed"] == 2
    patient = str(pydicom.dcmread(get_testdata_file("CT_small.dcm")).PatientName)
    assert patient and patient not in text


def test_rerun_resumes_without_duplicates(tmp_path, bundle):
    src = tmp_path / "in"
    _ct_series(src)
    denoise_path(src, tmp_path / "out", bundle)
    first = _digest(tmp_path / "out" / "dicom")
    report = denoise_path(src, tmp_path / "out", bundle)
    assert [r["status"] for r in report["series"]] == ["done (resumed, skipped)"]
    assert _digest(tmp_path / "out" / "dicom") == first
    report = denoise_path(src, tmp_path / "out", bundle, resume=False)
    assert [r["status"] for r in report["series"]] == ["done"]
    assert set(_digest(tmp_path / "out" / "dicom")) == set(first)  # same files again, no duplicate series


def test_output_inside_input_is_refused(tmp_path, bundle):
    _ct_series(tmp_path / "in")
    with pytest.raises(ValueError, match="lies inside the input folder"):
        denoise_path(tmp_path / "in", tmp_path / "in" / "out", bundle)
    with pytest.raises(ValueError, match="lies inside output"):
        denoise_path(tmp_path / "in", tmp_path, bundle)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        denoise_path(tmp_path / "missing", tmp_path / "out", bundle)


def test_denoise_nifti_file_keeps_affine(tmp_path, bundle):
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    data = np.random.default_rng(0).uniform(0, 1, (40, 36, 3)).astype(np.float32)
    data[data < 0.5] = 0  # missing pixels, what this bundle fills
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "in" / "vol.nii.gz")
    report = denoise_path(tmp_path / "in" / "vol.nii.gz", tmp_path / "out", bundle)
    assert report["input_kind"] == "nifti" and report["processed"] == 1
    out = nib.load(tmp_path / "out" / "nifti" / "vol_denoised.nii.gz")
    np.testing.assert_allclose(out.affine, affine)
    assert out.shape == data.shape


def test_cli_exit_codes(tmp_path, capsys):
    _ct_series(tmp_path / "in")
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--bundle", str(BUNDLE), "--device", "cpu"]) == 0
    assert "1 done, 0 failed" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["denoise", str(tmp_path / "empty"), str(tmp_path / "out2"), "--bundle", str(BUNDLE)]) == 1
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "in" / "o"), "--bundle", str(BUNDLE)]) == 1
    assert "lies inside the input folder" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out3"), "--bundle", str(tmp_path)]) == 1
    assert main(["denoise", str(tmp_path / "in")]) == 2


def test_torchrun_shards_series_across_two_processes(tmp_path):
    import os
    import subprocess
    import sys

    src = tmp_path / "in"
    uids = [_ct_series(src / f"s{i}", n=2) for i in range(3)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "medden.cli",
         "denoise", str(src), str(tmp_path / "out"), "--bundle", str(BUNDLE), "--device", "cpu"],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "medden_report.json").read_text())
    assert sorted(r["series_uid"] for r in report["series"]) == sorted(uids)  # each series once
    assert report["processed"] == 3
    assert len(list((tmp_path / "out" / "dicom").iterdir())) == 3
    manifests = sorted(p.name for p in (tmp_path / "out").glob("medden_manifest*.json"))
    assert manifests == ["medden_manifest.rank0.json", "medden_manifest.rank1.json"]
    rerun = denoise_path(src, tmp_path / "out", load_bundle(BUNDLE, device="cpu"))  # one process resumes all
    assert all(r["status"] == "done (resumed, skipped)" for r in rerun["series"])
