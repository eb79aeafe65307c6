"""How `medden denoise` names series: safe terminal labels, and output folders from --name-template (dcm2niix
spirit) that are filesystem-safe, unique on collision, never leave OUTPUT, never hold patient fields, and stay
put across resumed runs."""

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medden.apps.batch_denoise import denoise_path
from medden.apps.cli import main
from medden.apps.naming import (
    DEFAULT_NAME_TEMPLATE,
    collision_suffix,
    parse_name_template,
    printable,
    render_name,
    safe_filename,
    series_fields,
    series_folder_names,
    series_label,
)
from medden.bundle import load_bundle

from helpers import ct_series_datasets

HOSTILE = ["../../etc", "..", ".", "", "   ", "a/b\\c", "\x00\x1b[31mred\x1b[0m", "-rf *", "CON", "nul.txt",
           "Kopf ü 頭部 T1", "\u202egnp.exe", "x" * 5000, "%s%d%%", "T1;rm -rf /"]


@pytest.mark.parametrize("text", HOSTILE)
def test_safe_filename_gives_one_portable_component_or_nothing(text):
    name = safe_filename(text)
    assert len(name) <= 100 and name not in (".", "..") and "/" not in name and "\\" not in name
    assert all(c.isascii() and (c.isalnum() or c in "._+-") for c in name)
    assert not name.startswith(("-", ".")) and ".." not in name
    assert name.split(".")[0].upper() not in {"CON", "NUL"}


@pytest.mark.parametrize("description", HOSTILE)
def test_every_hostile_description_renders_a_folder_name_and_a_printable_label(description):
    fields = series_fields({"Modality": "MR", "SeriesNumber": 3, "SeriesDescription": description})
    name = render_name(parse_name_template(DEFAULT_NAME_TEMPLATE), fields)
    assert name.startswith("MR_3") and safe_filename(name) == name
    assert render_name(parse_name_template("%d"), fields)  # an empty description still names a folder
    label = series_label(fields, "study/../x")
    assert label.isprintable() and len(label) <= 60 + 43
    assert "\x1b" not in label and "\u202e" not in label and "\x00" not in label


def test_printable_drops_controls_and_cuts_long_text():
    assert printable("T1\x1b[2J  axial\n\tpost\u202e") == "T1[2J axial post"
    assert printable("x" * 100, 10) == "xxxxxxx..." and printable(None) == ""
    assert printable("Kopf ü 頭部") == "Kopf ü 頭部"  # readable unicode stays in labels


def test_series_fields_read_no_patient_field():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SeriesDescription = "chest"
    fields = series_fields(ds)
    assert fields == {"modality": "CT", "series_number": "1", "series_description": "chest"}
    assert str(ds.PatientName) not in str(fields) and ds.PatientID not in str(fields)


@pytest.mark.parametrize("template, message", [
    ("%i_%d", "%i (patient ID) is refused"), ("%n", "%n (patient name) is refused"),
    ("%b_%m", "%b (birth date) is refused"), ("%x", "unknown field %x"), ("%m%", "ends with a lone '%'"),
    ("%m/%d", "holds a path separator"), ("..\\%d", "holds a path separator"), ("fixed", "has no field")])
def test_bad_templates_are_refused_with_the_reason(template, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_name_template(template)


def test_percent_literal_and_uid_field():
    fields = {"modality": "MR", "series_number": "7", "series_description": "T2 FLAIR"}
    assert render_name(parse_name_template("%m-%s-%d_100%%"), fields) == "MR-7-T2_FLAIR_100"
    assert render_name(parse_name_template("%u"), fields, "1.2.3") == "1.2.3"


def test_same_names_get_a_stable_suffix_from_their_uid_compared_without_case():
    template = parse_name_template(DEFAULT_NAME_TEMPLATE)
    series = {"1.1": {"modality": "MR", "series_number": "3", "series_description": "T1"},
              "1.2": {"modality": "MR", "series_number": "3", "series_description": "t1"},
              "1.3": {"modality": "MR", "series_number": "4", "series_description": "T1"}}
    names = series_folder_names(template, series)
    assert names == {"1.1": "MR_3_T1" + collision_suffix("1.1"), "1.2": "MR_3_t1" + collision_suffix("1.2"),
                     "1.3": "MR_4_T1"}
    assert series_folder_names(template, series) == names  # the same on every run
    assert len({n.lower() for n in names.values()}) == 3


def _series(folder, description, number=3):
    """A 2-slice CT series with the given description and number; patient fields as in CT_small."""
    folder.mkdir(parents=True)
    for k, ds in enumerate(ct_series_datasets(2)):
        ds.SeriesDescription, ds.SeriesNumber = description, number
        ds.save_as(folder / f"img{k}")
    return ds.SeriesInstanceUID


@pytest.fixture(scope="module")
def bundle():
    from pathlib import Path

    return load_bundle(Path(__file__).resolve().parents[2] / "bundles" / "recorruption_ixi_bernoulli", device="cpu")


def test_denoise_names_folders_safely_and_uniquely_and_resumes_with_them(tmp_path, bundle):
    first = _series(tmp_path / "in" / "a", "../../etc")
    second = _series(tmp_path / "in" / "b", "../../etc")  # the same name twice
    third = _series(tmp_path / "in" / "c", "x" * 64, number=5)
    report = denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    assert report["processed"] == 3
    folders = sorted(p.name for p in (tmp_path / "out" / "dicom").iterdir())
    assert folders == sorted(["CT_3_etc" + collision_suffix(first), "CT_3_etc" + collision_suffix(second),
                              "CT_5_" + "x" * 64])
    assert not (tmp_path / "etc").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    outputs = {row["series_uid"]: row["output"] for row in report["series"]}
    assert outputs[third] == "dicom/CT_5_" + "x" * 64
    patient = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert not any(str(patient.PatientName).split("^")[0] in name or patient.PatientID in name for name in folders)
    again = denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    assert {r["status"] for r in again["series"]} == {"done (resumed, skipped)"}
    redone = denoise_path(tmp_path / "in", tmp_path / "out", bundle, resume=False)
    assert {r["output"] for r in redone["series"]} == set(outputs.values())  # a redone series keeps its folder
    assert sorted(p.name for p in (tmp_path / "out" / "dicom").iterdir()) == folders


def test_a_folder_holding_another_series_is_never_written_into(tmp_path, bundle):
    first = _series(tmp_path / "in1" / "a", "T1")
    denoise_path(tmp_path / "in1", tmp_path / "out", bundle)
    assert [p.name for p in (tmp_path / "out" / "dicom").iterdir()] == ["CT_3_T1"]
    other = _series(tmp_path / "in2" / "b", "T1")  # another series of the same name, into the same OUTPUT
    report = denoise_path(tmp_path / "in2", tmp_path / "out", bundle)
    assert report["series"][0]["output"] == "dicom/CT_3_T1" + collision_suffix(other)
    kept = {pydicom.dcmread(p).SeriesInstanceUID for p in (tmp_path / "out" / "dicom" / "CT_3_T1").iterdir()}
    assert len(kept) == 1 and first not in kept  # still the first run's derived series
    (tmp_path / "out" / "dicom" / "CT_5_x").mkdir()
    (tmp_path / "out" / "dicom" / "CT_5_x" / "notes.txt").write_text("mine")  # not medden's: left alone
    _series(tmp_path / "in3" / "c", "x", number=5)
    report = denoise_path(tmp_path / "in3", tmp_path / "out", bundle)
    assert report["series"][0]["output"].startswith("dicom/CT_5_x_")
    assert (tmp_path / "out" / "dicom" / "CT_5_x" / "notes.txt").read_text() == "mine"


def test_cli_name_template(tmp_path, capsys):
    uid = _series(tmp_path / "in" / "a", "T1 axial")
    args = ["--bundle", "recorruption_ixi_bernoulli", "--device", "cpu"]
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), *args, "--name-template", "%s-%d"]) == 0
    assert [p.name for p in (tmp_path / "out" / "dicom").iterdir()] == ["3-T1_axial"]
    assert "CT T1 axial (a)" in capsys.readouterr().out
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out2"), *args, "--name-template", "%u"]) == 0
    (folder,) = (tmp_path / "out2" / "dicom").iterdir()
    assert folder.name == pydicom.dcmread(next(folder.iterdir())).SeriesInstanceUID != uid
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out3"), *args, "--name-template", "%n_%d"]) == 1
    assert "%n (patient name) is refused" in capsys.readouterr().err and not (tmp_path / "out3").exists()
