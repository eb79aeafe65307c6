"""`medden denoise` against bad inputs and faults: every file and series fails alone, the report
says why, the exit code says "partial", a full disk stops the run with its report written, and
inputs reach the reader their content names."""

import copy
import errno
import json
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from helpers import ct_series_datasets, file_digests, write_ct_series
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

import medden.io
from medden.apps.batch_denoise import denoise_path
from medden.apps.cli import main
from medden.bundle import load_bundle

BUNDLE = "recorruption_ixi_bernoulli"


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(BUNDLE, device="cpu")


def _nifti(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).uniform(0, 100, (24, 20, 2)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def _save(datasets, folder, stem):
    folder.mkdir(parents=True, exist_ok=True)
    for k, ds in enumerate(datasets):
        ds.save_as(folder / f"{stem}{k}.dcm", enforce_file_format=False)


def _broken_folder(root):
    """Valid series and files beside one file of every broken kind; returns (valid names, broken names)."""
    write_ct_series(root / "valid" / "ct1", n=3)
    write_ct_series(root / "valid" / "ct2", n=2)
    _nifti(root / "valid" / "scan.nii.gz")
    (root / "wrong_extension").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), root / "wrong_extension" / "ct.nii")  # DICOM named .nii
    _nifti(tmp := root.parent / "vol.nii")
    shutil.move(tmp, root / "wrong_extension" / "vol.dcm")  # NIfTI named .dcm
    broken = root / "broken"
    broken.mkdir()
    data = (root / "valid" / "scan.nii.gz").read_bytes()
    (broken / "truncated.nii.gz").write_bytes(data[: len(data) // 2])
    (broken / "garbage.nii").write_bytes(bytes(range(256)) * 4)
    (broken / "zero_bytes").write_bytes(b"")
    (broken / "garbage.dcm").write_bytes(b"\x00" * 128 + b"nope" + bytes(range(200)))
    dicom = (root / "valid" / "ct1" / "img1").read_bytes()
    (broken / "truncated.dcm").write_bytes(dicom[: len(dicom) - 4000])
    no_sop, bad_position, no_rows = ct_series_datasets(3)
    del no_sop.SOPClassUID
    tag = Tag(0x00200032)
    bad_position[tag] = RawDataElement(tag, "DS", 8, b"abc\\1\\2 ", 0, False, True)
    del no_rows.Rows
    _save([no_sop], broken, "no_sop")
    _save([bad_position], broken, "bad_position")
    _save([no_rows], broken, "no_rows")
    (root / "README.txt").write_text("not an image, and not a failure")
    valid = {"scan.nii.gz", "vol.dcm"}
    names = {"truncated.nii.gz", "garbage.nii", "zero_bytes", "garbage.dcm", "truncated.dcm", "no_sop0.dcm",
             "bad_position0.dcm", "no_rows0.dcm"}
    return valid, names


def _reported(report):
    """Every file named in the report (skipped files and failed NIfTI rows) -> failed or not."""
    named = {s["path"].split("/")[-1]: s["failed"] for s in report["skipped"]}
    named.update({r["file"].split("/")[-1]: r["status"] == "failed" for r in report["series"] if "file" in r})
    return named


def test_every_broken_file_is_reported_beside_every_valid_series_written(tmp_path, bundle, capsys):
    src = tmp_path / "in"
    valid, broken = _broken_folder(src)
    before = file_digests(src)

    assert main(["denoise", str(src), str(tmp_path / "out"), "--bundle", BUNDLE, "--device", "cpu"]) == 3
    assert "partial" in capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "medden_report.json").read_text())
    assert file_digests(src) == before
    assert report["input_kind"] == "mixed" and report["outcome"] == "partial"
    dicom_done = [r for r in report["series"] if "series_uid" in r and r["status"] == "done"]
    assert len(dicom_done) == 3  # ct1, ct2 and the DICOM file named .nii
    assert sorted(r["slices"] for r in dicom_done) == [1, 2, 3]
    nifti_done = {r["file"].split("/")[-1] for r in report["series"] if "file" in r and r["status"] == "done"}
    assert nifti_done == valid
    named = _reported(report)
    assert {name for name in broken if named.get(name)} == broken, named
    assert named["README.txt"] is False  # reported, but not a failure
    assert report["failed_files"] + report["failed"] == len(broken)
    assert all(r["reason"] for r in report["series"] if r["status"] == "failed")
    assert len(list((tmp_path / "out" / "dicom").rglob("*.dcm"))) == 6
    assert len(list((tmp_path / "out" / "nifti").rglob("*.nii.gz"))) == 2


def test_the_report_names_files_relative_to_the_input_only(tmp_path, bundle):
    src = tmp_path / "DOE^JOHN_1960"  # PACS exports name folders after patients
    write_ct_series(src / "series", n=2)
    (src / "series" / "broken.dcm").write_bytes(b"\x00" * 200)
    _nifti(src / "bad.nii").write_bytes(b"\x00" * 400)
    report = denoise_path(src, tmp_path / "out", bundle)
    text = (tmp_path / "out" / "medden_report.json").read_text()
    assert "DOE^JOHN" not in text and str(tmp_path) not in text
    assert {s["path"] for s in report["skipped"]} == {"series/broken.dcm"}
    assert [r["file"] for r in report["series"] if "file" in r] == ["bad.nii"]


def test_exit_codes_complete_partial_and_nothing(tmp_path, capsys):
    write_ct_series(tmp_path / "good", n=2)
    write_ct_series(tmp_path / "mixed", n=2)
    (tmp_path / "mixed" / "torn.dcm").write_bytes(b"")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "torn.dcm").write_bytes(b"\x00" * 300)
    common = ["--bundle", BUNDLE, "--device", "cpu"]
    assert main(["denoise", str(tmp_path / "good"), str(tmp_path / "o1"), *common]) == 0
    assert main(["denoise", str(tmp_path / "mixed"), str(tmp_path / "o2"), *common]) == 3
    assert main(["denoise", str(tmp_path / "bad"), str(tmp_path / "o3"), *common]) == 1
    assert "nothing was denoised" in capsys.readouterr().err
    assert json.loads((tmp_path / "o3" / "medden_report.json").read_text())["outcome"] == "nothing denoised"
    (tmp_path / "empty").mkdir()
    assert main(["denoise", str(tmp_path / "empty"), str(tmp_path / "o4"), *common]) == 1
    assert "is empty" in capsys.readouterr().err and not (tmp_path / "o4").exists()


def test_a_full_disk_stops_the_run_with_its_report_and_the_rerun_resumes(tmp_path, bundle, monkeypatch, capsys):
    src = tmp_path / "in"
    uids = sorted(write_ct_series(src / f"s{i}", n=2) for i in range(3))
    real = medden.io.write_derived_series
    calls = []

    def full_disk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # as pydicom raises it: a plain OSError from the one with the errno
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError as err:
                raise OSError("With tag (7FE0,0010) got exception: [Errno 28] No space left on device") from err
        return real(*args, **kwargs)

    monkeypatch.setattr(medden.io, "write_derived_series", full_disk)
    assert main(["denoise", str(src), str(tmp_path / "out"), "--bundle", BUNDLE, "--device", "cpu"]) == 1
    assert "the run stopped" in capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "medden_report.json").read_text())
    assert report["outcome"] == "stopped" and "No space left on device" in report["stopped"]
    assert [r["status"] for r in report["series"]] == ["done"]
    manifest = json.loads((tmp_path / "out" / "medden_manifest.json").read_text())["series"]
    assert list(manifest) == uids[:1]

    monkeypatch.setattr(medden.io, "write_derived_series", real)
    again = denoise_path(src, tmp_path / "out", bundle)
    assert [r["status"] for r in again["series"]] == ["done (resumed, skipped)", "done", "done"]
    assert again["outcome"] == "complete"


def test_a_series_that_fails_anywhere_fails_alone(tmp_path, bundle, monkeypatch):
    src = tmp_path / "in"
    uids = sorted(write_ct_series(src / f"s{i}", n=2) for i in range(2))
    real = medden.io.write_derived_series

    def fails_once(series, *args, **kwargs):
        if series.series_uid == uids[0]:
            raise KeyError("a writer bug")  # not a ValueError: any error fails one series only
        return real(series, *args, **kwargs)

    monkeypatch.setattr(medden.io, "write_derived_series", fails_once)
    report = denoise_path(src, tmp_path / "out", bundle)
    assert [(r["series_uid"], r["status"]) for r in report["series"]] == [(uids[0], "failed"), (uids[1], "done")]
    assert report["series"][0]["reason"] == "KeyError: 'a writer bug'" and report["outcome"] == "partial"


def test_a_single_dicom_file_is_read_as_dicom(tmp_path, bundle):
    (tmp_path / "in").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "in" / "IM0001")
    report = denoise_path(tmp_path / "in" / "IM0001", tmp_path / "out", bundle)
    assert report["input_kind"] == "dicom" and report["outcome"] == "complete"
    assert len(list((tmp_path / "out" / "dicom").rglob("*.dcm"))) == 1


def test_a_top_level_nifti_does_not_hide_the_dicom_series_beside_it(tmp_path, bundle):
    src = tmp_path / "in"
    write_ct_series(src / "ct", n=2)
    _nifti(src / "atlas.nii")
    report = denoise_path(src, tmp_path / "out", bundle)
    assert report["input_kind"] == "mixed" and report["processed"] == 2
    assert len(list((tmp_path / "out" / "dicom").rglob("*.dcm"))) == 2
    assert (tmp_path / "out" / "nifti" / "atlas_denoised.nii.gz").is_file()


def test_rgb_dicom_is_denoised_by_the_cli_on_the_onnx_backend(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    source = pydicom.dcmread(get_testdata_file("SC_rgb.dcm"))
    rng = np.random.default_rng(0)
    noisy = copy.deepcopy(source)
    noisy.PixelData = np.clip(source.pixel_array + rng.normal(0, 20, source.pixel_array.shape), 0, 255).astype(
        np.uint8).tobytes()
    noisy.save_as(tmp_path / "in" / "rgb.dcm")
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--backend", "onnx", "--device", "cpu"]) == 0
    assert "onnx backend" in capsys.readouterr().out
    (written,) = (tmp_path / "out" / "dicom").rglob("*.dcm")
    out = pydicom.dcmread(written)
    assert out.PhotometricInterpretation == "RGB" and out.pixel_array.shape == source.pixel_array.shape


def test_an_rgb_bundle_refuses_a_grey_series_naming_the_channels(tmp_path):
    write_ct_series(tmp_path / "in", n=1)
    report = denoise_path(tmp_path / "in", tmp_path / "out", load_bundle("recorruption_camelyon_gaussian", "cpu"))
    (row,) = report["series"]
    assert row["status"] == "failed" and "takes 3-channel images, got 1 channel(s)" in row["reason"]
    assert report["outcome"] == "nothing denoised"


def test_a_result_noisier_than_its_input_is_flagged_and_warned(tmp_path, monkeypatch, capsys):
    from medden.bundle import Bundle

    write_ct_series(tmp_path / "in", n=2)

    def harmful(self, image, progress=None):  # a "denoiser" that adds noise and a pixel checkerboard
        image = np.asarray(image, np.float32)
        checker = (-1.0) ** np.add.outer(np.arange(image.shape[1]), np.arange(image.shape[2]))
        noise = np.random.default_rng(0).normal(0, 40, image.shape)
        return (image + 30 * checker[None, :, :, None] + noise).astype(np.float32)

    monkeypatch.setattr(Bundle, "denoise", harmful)
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--bundle", BUNDLE, "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.count("medden: warning:") == 2 and "repeating pattern" in err
    report = json.loads((tmp_path / "out" / "medden_report.json").read_text())
    (row,) = report["series"]
    assert report["warnings"] == 1 and len(row["warnings"]) == 2
    assert row["harm_checks"]["noise_up"]["value"] > row["harm_checks"]["noise_up"]["threshold"]
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out2"), "--bundle", BUNDLE, "--device", "cpu",
                 "--quiet"]) == 0
    captured = capsys.readouterr()  # --quiet: the warnings are counted in the one final line
    assert "medden: warning:" not in captured.err and "1 with warnings" in captured.out


def test_a_good_result_carries_its_checks_and_no_warning(tmp_path, bundle):
    datasets = ct_series_datasets(2)
    rng = np.random.default_rng(1)
    for ds in datasets:  # real noise to remove
        pixels = ds.pixel_array.astype(np.int32) + rng.normal(0, 60, ds.pixel_array.shape).astype(np.int32)
        ds.PixelData = np.clip(pixels, -2000, 4000).astype(ds.pixel_array.dtype).tobytes()
    (tmp_path / "in").mkdir()
    for k, ds in enumerate(datasets):
        ds.save_as(tmp_path / "in" / f"img{k}")
    (row,) = denoise_path(tmp_path / "in", tmp_path / "out", bundle)["series"]
    assert row["warnings"] == [] and set(row["harm_checks"]) == {"noise_up", "periodic_pattern", "tile_seam"}


@pytest.fixture
def small_disk(tmp_path):
    """A 600 KB tmpfs at ``tmp_path/disk``: a real full disk (needs root and mount rights, else skipped)."""
    import os
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8); the full-disk path is also covered by "
                    "test_a_full_disk_stops_the_run_with_its_report_and_the_rerun_resumes")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_real_full_disk_stops_the_run_and_more_room_resumes_it(tmp_path, small_disk, capsys):
    import subprocess

    for i in range(6):
        write_ct_series(tmp_path / "in" / f"s{i}", n=3)  # 18 derived files of ~40 KB: more than 600 KB
    command = ["denoise", str(tmp_path / "in"), str(small_disk / "out"), "--bundle", BUNDLE, "--device", "cpu"]
    assert main(command) == 1
    assert "the run stopped: [Errno 28] No space left on device" in capsys.readouterr().err
    report = json.loads((small_disk / "out" / "medden_report.json").read_text())
    done = [r for r in report["series"] if r["status"] == "done"]
    assert report["outcome"] == "stopped" and 0 < len(done) < 6 and "No space left" in report["stopped"]
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    assert main(command) == 0
    report = json.loads((small_disk / "out" / "medden_report.json").read_text())
    assert sum(r["status"] == "done (resumed, skipped)" for r in report["series"]) == len(done)
    assert len(list((small_disk / "out" / "dicom").rglob("*.dcm"))) == 18


def _mutations(files: list[bytes], rng) -> list[bytes]:
    """A damaged copy of each file, in turn: cut short, header bytes overwritten, a span zeroed, garbage appended."""
    out = []
    for k, data in enumerate(files):
        kind, copy_ = k % 4, bytearray(data)
        if kind == 0:
            copy_ = copy_[: int(rng.integers(0, len(data)))]
        elif kind == 1:
            start = int(rng.integers(0, min(len(data), 1200)))
            copy_[start:start + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
        elif kind == 2:
            start = int(rng.integers(0, len(data)))
            copy_[start:start + int(rng.integers(1, 4000))] = b"\0" * len(copy_[start:start + 4000])
        else:
            copy_ += rng.integers(0, 256, int(rng.integers(1, 500)), dtype=np.uint8).tobytes()
        out.append(bytes(copy_))
    return out


def test_fuzzed_files_never_cost_a_valid_series(tmp_path, bundle):
    rng = np.random.default_rng(21)
    src = tmp_path / "in"
    valid = {write_ct_series(src / "valid" / "ct1", n=3): 3, write_ct_series(src / "valid" / "ct2", n=2): 2}
    fuzz_datasets = ct_series_datasets(24)  # slices of a series of their own, each damaged one way
    _save(fuzz_datasets, tmp_path / "fuzz_source", "slice")
    dicom = [(tmp_path / "fuzz_source" / f"slice{k}.dcm").read_bytes() for k in range(24)]
    nifti = _nifti(tmp_path / "fuzz_source" / "vol.nii.gz").read_bytes()
    (src / "fuzz").mkdir()
    for k, data in enumerate(_mutations(dicom, rng)):
        (src / "fuzz" / f"d{k:02d}.dcm").write_bytes(data)
    for k, data in enumerate(_mutations([nifti] * 8, rng)):
        (src / "fuzz" / f"n{k:02d}.nii.gz").write_bytes(data)
    before = file_digests(src)

    report = denoise_path(src, tmp_path / "out", bundle)  # never raises
    assert file_digests(src) == before
    done = {r["series_uid"]: r["slices"] for r in report["series"] if r.get("series_uid") in valid}
    assert done == valid and all(r["status"] == "done" for r in report["series"] if r.get("series_uid") in valid)
    named = set(_reported(report)) | {r["file"].split("/")[-1] for r in report["series"] if "file" in r}
    fuzz_rows = [r for r in report["series"] if r.get("series_uid") == fuzz_datasets[0].SeriesInstanceUID]
    unaccounted = {p.name for p in (src / "fuzz").iterdir()} - named
    assert not unaccounted or fuzz_rows  # every damaged file is reported, or read into the fuzz series
    assert report["outcome"] == "partial" and report["failed_files"] + report["failed"] > 0


def test_a_source_file_that_vanishes_after_planning_fails_its_series_only(tmp_path, bundle, monkeypatch):
    src = tmp_path / "in"
    uids = sorted(write_ct_series(src / f"s{i}", n=2) for i in range(2))
    real = medden.io.plan_dicom_series

    def then_a_file_vanishes(*args, **kwargs):  # as when another program moves a file mid-run
        plans, skipped = real(*args, **kwargs)
        plans[0].paths[0].unlink()
        return plans, skipped

    monkeypatch.setattr(medden.io, "plan_dicom_series", then_a_file_vanishes)
    report = denoise_path(src, tmp_path / "out", bundle)
    assert [(r["series_uid"], r["status"]) for r in report["series"]] == [(uids[0], "failed"), (uids[1], "done")]
    assert "FileNotFoundError" in report["series"][0]["reason"] and str(tmp_path) not in report["series"][0]["reason"]
