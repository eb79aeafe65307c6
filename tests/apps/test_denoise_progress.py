"""What `medden denoise` shows while and after it runs: per-slice progress of DICOM series and NIfTI
volumes, series named by modality, description and folder, failure reasons in the terminal, --quiet
and --verbose."""

import io
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medden.apps.batch_denoise import ItemProgress, denoise_path
from medden.apps.cli import main
from medden.apps.terminal import VERBOSE, DenoiseProgress
from medden.bundle import load_bundle

from helpers import write_ct_series

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "recorruption_ixi_bernoulli"
ARGS = ["--bundle", "recorruption_ixi_bernoulli", "--device", "cpu"]


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(BUNDLE, device="cpu", batch_size=1)  # one slice per network call: a report per slice


def _inputs(folder: Path) -> None:
    """A 4-slice CT series in ct/a, a 5-slice NIfTI volume, and an unreadable DICOM file."""
    write_ct_series(folder / "ct" / "a", n=4)
    data = np.random.default_rng(0).uniform(0, 1, (24, 20, 5)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), folder / "vol.nii.gz")
    shutil.copy(get_testdata_file("MR_truncated.dcm"), folder / "broken.dcm")


def test_progress_reports_every_series_and_file_slice_by_slice(tmp_path, bundle):
    _inputs(tmp_path / "in")
    events: list[ItemProgress] = []
    report = denoise_path(tmp_path / "in", tmp_path / "out", bundle, progress=events.append)
    assert report["processed"] == 2
    by_item = {}
    for event in events:
        by_item.setdefault(event.index, []).append(event)
    assert sorted(by_item) == [1, 2] and {e.count for e in events} == {2}
    series, volume = by_item[1], by_item[2]
    assert series[0].label == "CT (ct/a)" and series[0].status is None and series[0].total == 4
    assert [e.done for e in series if e.status is None] == [0, 1, 2, 3, 4]  # one event per slice
    assert series[-1].status == "done" and series[-1].done == 4
    assert volume[0].label == "vol.nii.gz" and volume[-1].status == "done"
    assert [e.done for e in volume if e.status is None] == [0, 1, 2, 3, 4, 5]
    events.clear()
    denoise_path(tmp_path / "in", tmp_path / "out", bundle, progress=events.append)  # all resumed: one event each
    assert [(e.index, e.status) for e in events] == [(1, "done (resumed, skipped)"), (2, "done (resumed, skipped)")]
    assert events[0].label == "CT (ct/a)"


def test_terminal_renderer_prints_failures_always_and_finished_items_when_verbose():
    out = io.StringIO()
    bars = DenoiseProgress(stream=out)
    bars(ItemProgress(1, 2, "CT (a)", 0, 3))
    bars(ItemProgress(1, 2, "CT (a)", 3, 3, "done"))
    bars(ItemProgress(2, 2, "MR (b)", 0, 3))
    bars(ItemProgress(2, 2, "MR (b)", 0, 3, "failed", "no slice could be decoded"))
    assert out.getvalue() == "[2/2] MR (b): failed: no slice could be decoded\n"  # not a terminal: no bars
    verbose = io.StringIO()
    bars = DenoiseProgress(VERBOSE, stream=verbose)
    bars(ItemProgress(1, 1, "CT (a)", 3, 3, "done (resumed, skipped)"))
    assert verbose.getvalue() == "[1/1] CT (a): done (resumed, skipped)\n"


def test_cli_summary_names_series_and_prints_failure_reasons(tmp_path, capsys, monkeypatch):
    _inputs(tmp_path / "in")
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), *ARGS]) == 3  # the broken file: partial
    captured = capsys.readouterr()
    assert "CT (ct/a)" in captured.out and "vol.nii.gz" in captured.out
    assert "medden: unreadable: broken.dcm: " in captured.err and "truncated" in captured.err
    patient = str(pydicom.dcmread(get_testdata_file("CT_small.dcm")).PatientName)
    assert patient not in captured.out + captured.err

    def fail(self, image, progress=None):
        raise RuntimeError("the network ran out of memory")

    monkeypatch.setattr("medden.bundle.bundle.Bundle.denoise", fail)
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out2"), *ARGS]) == 1
    captured = capsys.readouterr()
    assert "medden: failed: CT (ct/a): " in captured.err and "ran out of memory" in captured.err
    assert "medden: failed: vol.nii.gz: " in captured.err


def test_quiet_prints_only_the_final_line_and_verbose_more(tmp_path, capsys):
    _inputs(tmp_path / "in")
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), *ARGS, "--quiet"]) == 3
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [captured.out.strip()] and captured.out.startswith("2 done, 0 failed")
    assert "broken.dcm" in captured.err  # errors still show
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out2"), *ARGS, "--verbose"]) == 3
    captured = capsys.readouterr()
    assert "series UID / output" in captured.out and "[1/2] CT (ct/a): done" in captured.err
    assert "medden: medden.apps.batch_denoise: " in captured.err  # log messages
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out3"), *ARGS, "-q", "-v"]) == 2
