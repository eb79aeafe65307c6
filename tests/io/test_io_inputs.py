"""The input dispatcher: every kind of input named by its content, and clear errors for anything else."""

import gzip
import shutil

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medden.io import write_nifti
from medden.io.inputs import VOLUME_INPUTS, InputKind, file_signature, identify_input


def _nifti(path):
    write_nifti(np.zeros((1, 4, 4), np.float32), path)
    return path


def _png(path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path, format="PNG")
    return path


def _dicom(path):
    shutil.copy(get_testdata_file("CT_small.dcm"), path)
    return path


@pytest.mark.parametrize("name, make, kind", [
    ("scan.nii.gz", _nifti, InputKind.NIFTI_FILE),
    ("scan.nii", _nifti, InputKind.NIFTI_FILE),
    ("tile.png", _png, InputKind.IMAGE_FILE),
    ("slice.dcm", _dicom, InputKind.DICOM_FILE),
    ("IM0001", _dicom, InputKind.DICOM_FILE),  # DICOM files often have no suffix: the marker decides
])
def test_single_files_are_named_by_content(tmp_path, name, make, kind):
    source = identify_input(make(tmp_path / name))
    read_by = source.dicom_files if kind is InputKind.DICOM_FILE else source.files
    assert source.kind is kind and read_by == (tmp_path / name,)


def test_tiff_files_are_images(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "tile.tif")
    assert identify_input(tmp_path / "tile.tif").kind is InputKind.IMAGE_FILE
    assert file_signature(tmp_path / "tile.tif") == "tiff"


def test_a_misnamed_file_is_named_by_its_content(tmp_path):
    assert identify_input(_png(tmp_path / "really_a_png.nii")).kind is InputKind.IMAGE_FILE


def test_folders(tmp_path):
    nifti, images, dicom = tmp_path / "nifti", tmp_path / "images", tmp_path / "dicom"
    for folder in (nifti, images, dicom / "series1"):
        folder.mkdir(parents=True)
    _nifti(nifti / "b.nii.gz"), _nifti(nifti / "a.nii")
    (nifti / "readme.txt").write_text("ignored")
    _png(images / "t1.png"), _png(images / "t0.png")
    _dicom(dicom / "series1" / "IM0001")
    source = identify_input(nifti)
    assert source.kind is InputKind.NIFTI_FOLDER and [p.name for p in source.files] == ["a.nii", "b.nii.gz"]
    source = identify_input(images)
    assert source.kind is InputKind.IMAGE_FOLDER and [p.name for p in source.files] == ["t0.png", "t1.png"]
    source = identify_input(dicom)  # nested series: DICOM discovery is recursive
    assert source.kind is InputKind.DICOM_FOLDER and source.files == ()
    assert source.kind.is_dicom and not source.kind.is_nifti


def test_a_dicom_export_with_loose_images_is_a_dicom_folder(tmp_path):
    flat, nested = tmp_path / "flat", tmp_path / "nested"
    flat.mkdir(), (nested / "series1").mkdir(parents=True)
    _dicom(flat / "IM0001"), _png(flat / "thumbnail.png")
    _dicom(nested / "series1" / "IM0001"), _png(nested / "screenshot.png")
    assert identify_input(flat).kind is InputKind.DICOM_FOLDER
    assert identify_input(nested).kind is InputKind.DICOM_FOLDER


def test_unknown_and_empty_inputs_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing' does not exist"):
        identify_input(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty' is empty"):
        identify_input(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes.txt' \(.txt\) is not a file medden reads.*DICOM folder"):
        identify_input(tmp_path / "notes.txt")
    with pytest.raises(TypeError, match="input must be a path"):
        identify_input(3)


def test_accept_refuses_other_kinds(tmp_path):
    with pytest.raises(ValueError, match="is a image file; this reads only: dicom folder, dicom file, nifti file, "
                                         "nifti folder, mixed folder"):
        identify_input(_png(tmp_path / "t.png"), VOLUME_INPUTS)
    assert identify_input(_nifti(tmp_path / "a.nii"), VOLUME_INPUTS).kind is InputKind.NIFTI_FILE


def test_signatures_see_through_gzip_and_name_a_corrupt_stream(tmp_path):
    path = _nifti(tmp_path / "a.nii.gz")
    assert file_signature(path) == "nifti.gz" and file_signature(_nifti(tmp_path / "b.nii")) == "nifti"
    (tmp_path / "other.gz").write_bytes(gzip.compress(b"plain text"))
    assert file_signature(tmp_path / "other.gz") is None
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b" + b"\0" * 40)
    with pytest.raises(ValueError, match="bad.nii.gz' is a corrupt gzip file"):
        file_signature(tmp_path / "bad.nii.gz")
