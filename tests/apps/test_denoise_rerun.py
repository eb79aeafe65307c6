"""A rerun of `medden denoise` redoes exactly what changed: resume is keyed on the source files and
the model, and derived UIDs come from the exact weights, so two models never share a UID."""

import json

import pydicom
import pytest
import torch
from helpers import copy_bundle, ct_series_datasets

from medden.apps.batch_denoise import denoise_path
from medden.apps.cli import main
from medden.apps.run_record import ModelMismatchError
from medden.bundle import load_bundle

BUNDLE = "recorruption_ixi_bernoulli"
RESUMED = "done (resumed, skipped)"


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(BUNDLE, device="cpu")


def _write(datasets, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for ds in datasets:
        ds.save_as(folder / f"img{ds.InstanceNumber:02d}")


def _uids(out):
    """(SeriesInstanceUID, SOPInstanceUID) -> pixel bytes of every derived file under ``out``."""
    found = {}
    for path in sorted((out / "dicom").rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        found[(ds.SeriesInstanceUID, ds.SOPInstanceUID)] = ds.PixelData
    return found


def _other_weights(tmp_path, name="same_name"):
    """Two trusted copies of the bundle in folders of one name, the second with other weights."""
    first = copy_bundle(BUNDLE, tmp_path / "a" / name)
    second = copy_bundle(BUNDLE, tmp_path / "b" / name)
    state = torch.load(second / "models" / "model.pt", weights_only=True)
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key] * 1.5
    torch.save(state, second / "models" / "model.pt")
    return load_bundle(first, "cpu", trust=True), load_bundle(second, "cpu", trust=True)


def test_two_bundles_of_one_name_with_other_weights_never_share_a_uid(tmp_path):
    _write(ct_series_datasets(2), tmp_path / "in")
    first, second = _other_weights(tmp_path)
    assert first.name == second.name
    denoise_path(tmp_path / "in", tmp_path / "out1", first)
    denoise_path(tmp_path / "in", tmp_path / "out2", second)
    one, two = _uids(tmp_path / "out1"), _uids(tmp_path / "out2")
    assert len(one) == len(two) == 2
    assert not {s for s, _ in one} & {s for s, _ in two} and not {i for _, i in one} & {i for _, i in two}
    denoise_path(tmp_path / "in", tmp_path / "out3", load_bundle(tmp_path / "a" / "same_name", "cpu", trust=True))
    assert _uids(tmp_path / "out3") == one  # the same input and model: the same UIDs and pixels, idempotent


def test_slices_added_to_a_finished_series_are_denoised_on_the_rerun(tmp_path, bundle):
    datasets = ct_series_datasets(8)
    _write(datasets[:5], tmp_path / "in")
    first = denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    assert first["series"][0]["status"] == "done" and len(_uids(tmp_path / "out")) == 5

    _write(datasets[5:], tmp_path / "in")
    again = denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    (row,) = again["series"]
    assert row["status"] == "done" and row["slices"] == 8 and row["redone"].startswith("its source files changed")
    assert len(_uids(tmp_path / "out")) == 8

    for ds in datasets[:3]:  # slices removed: their stale derived files go too
        (tmp_path / "in" / f"img{ds.InstanceNumber:02d}").unlink()
    denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    assert len(_uids(tmp_path / "out")) == 5
    assert denoise_path(tmp_path / "in", tmp_path / "out", bundle)["series"][0]["status"] == RESUMED


def test_a_finished_series_whose_outputs_are_gone_is_redone(tmp_path, bundle):
    _write(ct_series_datasets(3), tmp_path / "in")
    denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    next((tmp_path / "out" / "dicom").rglob("*.dcm")).unlink()
    (row,) = denoise_path(tmp_path / "in", tmp_path / "out", bundle)["series"]
    assert row["status"] == "done" and "missing" in row["redone"]
    assert len(_uids(tmp_path / "out")) == 3


def test_a_rerun_with_another_model_is_refused_unless_overwrite(tmp_path, capsys):
    _write(ct_series_datasets(2), tmp_path / "in")
    first, second = _other_weights(tmp_path)
    denoise_path(tmp_path / "in", tmp_path / "out", first)
    old = _uids(tmp_path / "out")
    with pytest.raises(ModelMismatchError, match="already holds results of another model.*--overwrite"):
        denoise_path(tmp_path / "in", tmp_path / "out", second)
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--bundle", BUNDLE]) == 1
    assert "already holds results of another model" in capsys.readouterr().err
    assert _uids(tmp_path / "out") == old

    report = denoise_path(tmp_path / "in", tmp_path / "out", second, overwrite=True)
    assert report["model"]["weights_sha256"] == second.parameters["weights_sha256"]
    new = _uids(tmp_path / "out")
    assert len(new) == 2 and not set(new) & set(old)  # only the new model's files remain
    assert len(list((tmp_path / "out" / "dicom").iterdir())) == 1
    for path in (tmp_path / "out" / "dicom").rglob("*.dcm"):
        assert second.parameters["weights_sha256"] in pydicom.dcmread(path).DerivationDescription
    manifest = json.loads((tmp_path / "out" / "medden_manifest.json").read_text())["series"]
    assert {row["model"] for row in manifest.values()} == {report["model"]["digest"]}


def test_fit_into_an_output_with_results_needs_overwrite(tmp_path, capsys):
    _write(ct_series_datasets(2), tmp_path / "in")
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--bundle", BUNDLE, "--device", "cpu"]) == 0
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--fit", "--fit-minutes", "0.01"]) == 1
    assert "--fit makes a new model" in capsys.readouterr().err
    assert not (tmp_path / "out" / "fitted_bundle").exists()  # refused before any fitting
