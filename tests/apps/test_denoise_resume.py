"""A `medden denoise` run killed half-way and started again completes the rest, without
duplicate series, torn files or leftover temporary files, and never touches its inputs."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom
import pytest
from helpers import file_digests, write_ct_series

import medden.io
import medden.io.derived_series
from medden.apps.batch_denoise import denoise_path
from medden.bundle import load_bundle

SLICES = 3
RESUMED = "done (resumed, skipped)"


@pytest.fixture(scope="module")
def bundle():
    return load_bundle("recorruption_ixi_bernoulli", device="cpu")


def _source_series(src: Path) -> dict[str, str]:
    """SOPInstanceUID -> SeriesInstanceUID of every input file."""
    return {ds.SOPInstanceUID: ds.SeriesInstanceUID for ds in map(pydicom.dcmread, src.rglob("img*"))}


def _check_final_state(src: Path, out: Path, uids: list[str], inputs_before: dict[str, str]) -> None:
    """One complete derived series per input series, nothing else, inputs untouched."""
    sources = _source_series(src)
    folders = sorted(p for p in (out / "dicom").iterdir())
    derived_from = []
    for folder in folders:
        files = sorted(p.name for p in folder.iterdir())
        assert files == [f"{k:04d}.dcm" for k in range(SLICES)], folder
        parents = {sources[ds.SourceImageSequence[0].ReferencedSOPInstanceUID]
                   for ds in (pydicom.dcmread(folder / name) for name in files)}  # full reads: no torn file
        assert len(parents) == 1
        derived_from.append(parents.pop())
    assert sorted(derived_from) == uids  # each input series exactly once
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]
    assert leftovers == []  # atomic_write's temporary files are ".<stem>.<random>.tmp<suffix>"
    manifest = json.loads((out / "medden_manifest.json").read_text())["series"]
    assert sorted(manifest) == uids and all(row["status"] == "done" for row in manifest.values())
    assert file_digests(src) == inputs_before


def _killed_in_second_series(monkeypatch) -> None:
    """Make the 2nd derived series write one file, tear the next one mid-write and stop, like a kill."""
    write = medden.io.write_derived_series
    calls = []

    def torn_write(path, write_file, *, overwrite=False):
        if calls[-1] == "wrote one":
            suffix = "".join(path.suffixes)  # a kill leaves atomic_write's temporary file behind
            fd, _ = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
            os.write(fd, b"DICM half a file")
            os.close(fd)
            raise KeyboardInterrupt
        calls.append("wrote one")
        return real_atomic_write(path, write_file, overwrite=overwrite)

    real_atomic_write = medden.io.derived_series.atomic_write

    def writing(*args, **kwargs):
        calls.append("series")
        if calls.count("series") == 2:
            monkeypatch.setattr(medden.io.derived_series, "atomic_write", torn_write)
        return write(*args, **kwargs)

    monkeypatch.setattr(medden.io, "write_derived_series", writing)


def test_run_killed_mid_series_then_rerun_completes_the_rest(tmp_path, bundle, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    uids = sorted(write_ct_series(src / f"s{i}", n=SLICES) for i in range(3))
    inputs_before = file_digests(src)

    with monkeypatch.context() as patch:
        _killed_in_second_series(patch)
        with pytest.raises(KeyboardInterrupt):
            denoise_path(src, out, bundle)
    assert sorted(json.loads((out / "medden_manifest.json").read_text())["series"]) == uids[:1]
    partial = [sorted(p.name for p in folder.iterdir()) for folder in (out / "dicom").iterdir()]
    assert sorted(map(len, partial)) == [2, SLICES]  # one file and one torn temporary file in the 2nd series
    assert not (out / "medden_report.json").exists()

    loaded = []
    load = medden.io.load_dicom_series
    monkeypatch.setattr(medden.io, "load_dicom_series", lambda plan: loaded.append(plan.series_uid) or load(plan))
    report = denoise_path(src, out, bundle)
    assert [(r["series_uid"], r["status"]) for r in report["series"]] == [
        (uids[0], RESUMED), (uids[1], "done"), (uids[2], "done")]
    assert sorted(loaded) == uids[1:]  # the finished series was not even read
    assert report["processed"] == 3 and report["failed"] == 0
    _check_final_state(src, out, uids, inputs_before)


def _finished_series(out: Path) -> list[str]:
    try:
        manifest = json.loads((out / "medden_manifest.json").read_text())["series"]
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return sorted(uid for uid, row in manifest.items() if row.get("status") == "done")


def test_sigkilled_process_then_rerun_completes_the_rest(tmp_path, bundle):
    src, out = tmp_path / "in", tmp_path / "out"
    uids = sorted(write_ct_series(src / f"s{i}", n=SLICES) for i in range(4))
    inputs_before = file_digests(src)
    command = [sys.executable, "-m", "medden.apps.cli", "denoise", str(src), str(out),
               "--bundle", "recorruption_ixi_bernoulli", "--device", "cpu", "--batch-size", "1"]
    process = subprocess.Popen(command, env=dict(os.environ, OMP_NUM_THREADS="1"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while process.poll() is None and not _finished_series(out) and time.monotonic() < deadline:
        time.sleep(0.005)
    killed = process.poll() is None
    if killed:
        process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert killed or process.returncode == 0, stderr.decode()[-3000:]
    done_at_kill = _finished_series(out)
    for path in (out / "dicom").rglob("*.dcm"):  # whatever was left: only whole files under final names
        pydicom.dcmread(path).pixel_array

    report = denoise_path(src, out, bundle)
    assert [r["series_uid"] for r in report["series"]] == uids and report["processed"] == 4
    assert [r["series_uid"] for r in report["series"] if r["status"] == RESUMED] == done_at_kill
    _check_final_state(src, out, uids, inputs_before)
    if not killed:
        pytest.skip("the denoising process finished before it could be killed; the final state was checked")
    assert done_at_kill  # killed after at least one finished series
