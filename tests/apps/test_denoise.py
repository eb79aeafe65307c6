"""`medden denoise`: DICOM folders and NIfTI files end to end, reports, resume, refusals, exit codes,
batch size and bundle intensity percentiles through a run, and reading ahead (loading a bundle:
tests/bundle/test_loading.py)."""

import json
import shutil
import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file

import medden.inference
import medden.io
from medden.apps.cli import main
from medden.apps.batch_denoise import denoise_path
from medden.bundle import load_bundle
from medden.inference import denoise_image

from helpers import bundle_variant, file_digests, write_ct_series

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "recorruption_ixi_bernoulli"


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(BUNDLE, device="cpu")


def test_denoise_dicom_folder_end_to_end(tmp_path, bundle):
    src = tmp_path / "in"
    ct_uid = write_ct_series(src / "ct" / "nested")
    shutil.copy(get_testdata_file("MR_small.dcm"), src / "mr.dcm")
    shutil.copy(get_testdata_file("MR_truncated.dcm"), src / "broken.dcm")
    (src / "notes.txt").write_text("not dicom")
    before = file_digests(src)

    report = denoise_path(src, tmp_path / "out", bundle)
    assert file_digests(src) == before  # inputs untouched
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
    write_ct_series(src)
    denoise_path(src, tmp_path / "out", bundle)
    first = file_digests(tmp_path / "out" / "dicom")
    report = denoise_path(src, tmp_path / "out", bundle)
    assert [r["status"] for r in report["series"]] == ["done (resumed, skipped)"]
    assert file_digests(tmp_path / "out" / "dicom") == first
    report = denoise_path(src, tmp_path / "out", bundle, resume=False)
    assert [r["status"] for r in report["series"]] == ["done"]
    assert set(file_digests(tmp_path / "out" / "dicom")) == set(first)  # same files again, no duplicate series


def test_output_inside_input_is_refused(tmp_path, bundle):
    write_ct_series(tmp_path / "in")
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
    write_ct_series(tmp_path / "in")
    by_name = ["--bundle", "recorruption_ixi_bernoulli", "--device", "cpu", "--batch-size", "2"]
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), *by_name]) == 0
    assert "1 done, 0 failed" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "medden_report.json").read_text())["bundle"].startswith(
        "recorruption_ixi_bernoulli")
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out4"), "--bundle", "no_such_bundle"]) == 1
    assert "unknown bundle 'no_such_bundle'" in capsys.readouterr().err
    assert not (tmp_path / "out4").exists()  # the bundle is checked before anything is written
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out4"), "--batch-size", "0"]) == 2
    assert "expected a whole number >= 1, got 0" in capsys.readouterr().err
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
    uids = [write_ct_series(src / f"s{i}", n=2) for i in range(3)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "medden.apps.cli",
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


def _network_batches(bundle) -> list[int]:
    """Record the batch size of every network call of ``bundle`` (a forward hook)."""
    sizes: list[int] = []
    bundle.network.register_forward_hook(lambda module, args, out: sizes.append(args[0].shape[0]))
    return sizes


def test_batch_size_sets_slices_per_network_call(tmp_path):
    write_ct_series(tmp_path / "in", n=3)
    default = load_bundle(BUNDLE, device="cpu")
    assert default.inferer.base_inferer.sw_batch_size == 8  # the bundle's own
    calls = _network_batches(default)
    denoise_path(tmp_path / "in", tmp_path / "out_default", default)
    assert calls == [3]  # three 128x128 slices, one window each, all in one call

    single = load_bundle(BUNDLE, device="cpu", batch_size=1)
    assert single.inferer.base_inferer.sw_batch_size == 1
    calls = _network_batches(single)
    denoise_path(tmp_path / "in", tmp_path / "out_single", single)
    assert calls == [1, 1, 1]
    pixels = {name: [pydicom.dcmread(f).pixel_array for f in sorted((tmp_path / name / "dicom").rglob("*.dcm"))]
              for name in ("out_default", "out_single")}
    assert len(pixels["out_single"]) == 3  # same files (same derived UIDs), same pixels up to rounding
    for one, eight in zip(pixels["out_single"], pixels["out_default"], strict=True):
        np.testing.assert_allclose(one.astype(int), eight.astype(int), atol=1)
    assert file_digests(tmp_path / "out_single" / "dicom").keys() == file_digests(tmp_path / "out_default" / "dicom").keys()


def test_bundle_intensity_percentiles_are_used(tmp_path, monkeypatch):
    default = load_bundle(BUNDLE, device="cpu")
    assert default.percentiles == (0.0, 100.0) and "intensity_percentiles" not in default.parameters
    bundle = load_bundle(bundle_variant(tmp_path, BUNDLE, intensity_percentiles=[0.5, 99.5]), device="cpu", trust=True)
    assert bundle.percentiles == (0.5, 99.5) and bundle.parameters["intensity_percentiles"] == [0.5, 99.5]

    rng = np.random.default_rng(1)
    data = rng.uniform(0, 1, (48, 40, 3)).astype(np.float32)
    data[data < 0.5] = 0  # missing pixels, what this bundle fills
    data[:2, :2] = 20.0  # outliers: the 99.5th percentile is far below the maximum
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "in" / "vol.nii.gz")
    denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    written = np.asarray(nib.load(tmp_path / "out" / "nifti" / "vol_denoised.nii.gz").dataobj)
    volume = data[None]
    expected = denoise_image(volume, bundle.network, bundle.inferer, percentiles=(0.5, 99.5))[0]
    unscaled = denoise_image(volume, bundle.network, bundle.inferer)[0]
    np.testing.assert_allclose(written, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(expected - unscaled).max() > 1e-2  # the percentiles matter for this image

    seen = []

    def recording(image, network, inferer, percentiles=(0.0, 100.0), device=None, smoothing=0):
        seen.append(percentiles)
        return denoise_image(image, network, inferer, percentiles, device, smoothing)

    monkeypatch.setattr(medden.inference, "denoise_image", recording)
    write_ct_series(tmp_path / "dicom_in" / "a", n=2)
    write_ct_series(tmp_path / "dicom_in" / "b", n=2)
    report = denoise_path(tmp_path / "dicom_in", tmp_path / "dicom_out", bundle)
    assert report["processed"] == 2 and seen == [(0.5, 99.5), (0.5, 99.5)]


def test_next_series_is_read_while_the_current_one_is_denoised(tmp_path, bundle, monkeypatch):
    uids = sorted(write_ct_series(tmp_path / "in" / f"s{i}", n=2) for i in range(3))
    read_threads: dict[str, str] = {}
    second_read_started = threading.Event()
    overlapped = []
    load, write = medden.io.load_dicom_series, medden.io.write_derived_series

    def reading(plan):
        read_threads[plan.series_uid] = threading.current_thread().name
        if plan.series_uid == uids[1]:
            second_read_started.set()
        return load(plan)

    def writing(series, *args, **kwargs):
        if series.series_uid == uids[0]:  # sequential reading would start series 2 only after this
            overlapped.append(second_read_started.wait(timeout=30))
        return write(series, *args, **kwargs)

    monkeypatch.setattr(medden.io, "load_dicom_series", reading)
    monkeypatch.setattr(medden.io, "write_derived_series", writing)
    report = denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    assert overlapped == [True]
    assert report["processed"] == 3 and [r["series_uid"] for r in report["series"]] == uids
    assert set(read_threads) == set(uids)
    assert all(name != threading.main_thread().name for name in read_threads.values())


def test_a_series_that_fails_to_read_is_reported_and_the_run_goes_on(tmp_path, bundle, monkeypatch):
    uids = sorted(write_ct_series(tmp_path / "in" / f"s{i}", n=2) for i in range(3))
    load = medden.io.load_dicom_series

    def failing(plan):
        if plan.series_uid == uids[1]:
            raise OSError("disk went away")
        return load(plan)

    monkeypatch.setattr(medden.io, "load_dicom_series", failing)
    report = denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    assert [(r["series_uid"], r["status"]) for r in report["series"]] == [
        (uids[0], "done"), (uids[1], "failed"), (uids[2], "done")]
    assert report["series"][1]["reason"] == "OSError: disk went away"
    assert report["processed"] == 2 and report["failed"] == 1
    manifest = json.loads((tmp_path / "out" / "medden_manifest.json").read_text())["series"]
    assert sorted(manifest) == [uids[0], uids[2]]  # the failed one is retried by the next run
