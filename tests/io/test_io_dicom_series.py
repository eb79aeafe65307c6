"""Tests for medden.io.dicom_series: DICOM reading, affines and series writing."""

import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut

from medden.io import dicom_affine, read_dicom_image, write_volume_as_series
from medden.io.dicom_series import PATIENT_ID


def _oblique_affine(spacing=(0.9, 0.7, 2.5), origin=(12.0, -30.0, 45.0)):
    """A RAS affine rotated 20 degrees about z and 10 about x, with anisotropic spacing."""
    a, b = np.deg2rad(20), np.deg2rad(10)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def _read_series(paths):
    """Datasets of a written series and its values as (H, W, D), via pydicom only."""
    datasets = [pydicom.dcmread(p) for p in paths]
    values = np.stack([apply_modality_lut(ds.pixel_array, ds).T for ds in datasets], axis=-1)
    return datasets, values


@pytest.fixture
def smooth_volume():
    x, y, z = np.meshgrid(
        np.linspace(0, 1, 24), np.linspace(0, 1, 18), np.linspace(0, 1, 5), indexing="ij"
    )
    return (1000.0 * np.sin(3 * x) * np.cos(2 * y) + 37.123 * z).astype(np.float32)  # (24, 18, 5)


@pytest.mark.parametrize(
    "modality,sop", [("MR", "1.2.840.10008.5.1.4.1.1.4"), ("CT", "1.2.840.10008.5.1.4.1.1.2")]
)
@pytest.mark.parametrize("container", [np.asarray, torch.as_tensor])
def test_series_round_trip_geometry_and_values(tmp_path, smooth_volume, modality, sop, container):
    affine = _oblique_affine()
    paths = write_volume_as_series(
        container(smooth_volume[None]),
        affine,
        tmp_path,
        modality=modality,
        series_description="round trip",
    )
    assert [p.name for p in paths] == [f"slice_{k:04d}.dcm" for k in range(5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        p.name for p in paths
    ]  # no temp files left
    datasets, values = _read_series(paths)
    first = datasets[0]
    assert (
        first.SOPClassUID == sop
        and first.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    )
    assert len({ds.SOPInstanceUID for ds in datasets}) == 5
    assert (
        len(
            {(ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID) for ds in datasets}
        )
        == 1
    )
    assert first.PatientID == PATIENT_ID
    # positions step along the slice normal by the slice spacing
    normal = np.cross(
        np.asarray(first.ImageOrientationPatient[:3], float), first.ImageOrientationPatient[3:]
    )
    positions = np.array([ds.ImagePositionPatient for ds in datasets], dtype=float)
    steps = np.diff(positions, axis=0)
    np.testing.assert_allclose(steps @ normal, 2.5, atol=1e-4)
    np.testing.assert_allclose(
        np.linalg.norm(steps - np.outer(steps @ normal, normal), axis=1), 0, atol=1e-4
    )
    assert float(first.SliceThickness) == pytest.approx(2.5)
    # the affine read back is the affine written
    np.testing.assert_allclose(dicom_affine(first), affine, atol=1e-5)
    slope = float(first.get("RescaleSlope", 1.0))
    np.testing.assert_allclose(values, smooth_volume, atol=slope / 2 + 1e-3)
    assert slope < 2200 / 65535 * 1.01  # the 16-bit range is used, so precision is kept


def test_simpleitk_reads_the_series_like_the_nifti(tmp_path, smooth_volume):
    """GDCM/ITK, an independent reader, sees the same geometry and voxels in both files."""
    sitk = pytest.importorskip("SimpleITK")
    from medden.io import write_nifti

    affine = _oblique_affine()
    write_volume_as_series(
        smooth_volume, affine, tmp_path / "dicom", modality="MR", series_description="itk"
    )
    write_nifti(smooth_volume[None], tmp_path / "vol.nii.gz", affine)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "dicom")))
    from_dicom, from_nifti = reader.Execute(), sitk.ReadImage(str(tmp_path / "vol.nii.gz"))
    for getter in ("GetOrigin", "GetSpacing", "GetDirection"):
        np.testing.assert_allclose(
            getattr(from_dicom, getter)(), getattr(from_nifti, getter)(), atol=1e-4
        )
    slope = float(pydicom.dcmread(tmp_path / "dicom" / "slice_0000.dcm").RescaleSlope)
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(from_dicom),
        sitk.GetArrayFromImage(from_nifti),
        atol=slope / 2 + 1e-3,
    )


def test_integer_values_are_stored_exactly(tmp_path):
    hu = np.random.default_rng(0).integers(-1024, 3000, size=(16, 12, 3)).astype(np.float32)
    paths = write_volume_as_series(hu, np.eye(4), tmp_path, modality="CT", series_description="hu")
    datasets, values = _read_series(paths)
    assert datasets[0].PixelRepresentation == 1 and float(datasets[0].RescaleSlope) == 1.0
    np.testing.assert_array_equal(values, hu)


def test_rgb_secondary_capture(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, size=(3, 20, 16, 1)).astype(np.float32)
    (path,) = write_volume_as_series(
        rgb, np.eye(4), tmp_path, modality="SM", series_description="rgb"
    )
    ds = pydicom.dcmread(path)
    assert (
        ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        and ds.PhotometricInterpretation == "RGB"
    )
    assert (ds.Rows, ds.Columns) == (16, 20)
    np.testing.assert_array_equal(read_dicom_image(path).numpy(), rgb[..., 0])


@pytest.mark.parametrize(
    "modality,shape,body_part",
    [
        ("MR", (1, 12, 10, 2), "BRAIN"),
        ("CT", (12, 10, 2), None),
        ("CR", (1, 12, 10, 1), None),
        ("SM", (3, 12, 10, 1), "COLON"),
    ],
)
def test_written_files_pass_dciodvfy(tmp_path, dciodvfy, modality, shape, body_part):
    volume = np.random.default_rng(2).uniform(0, 200.5, size=shape)
    paths = write_volume_as_series(
        volume.round() if modality == "SM" else volume,
        _oblique_affine(),
        tmp_path,
        modality=modality,
        series_description="dciodvfy",
        body_part=body_part,
    )
    assert dciodvfy(paths[0]) == []


@pytest.mark.filterwarnings("ignore:NvImgCodecPydicomReader")
def test_read_dicom_image_matches_monai_pydicom_reader():
    from monai.transforms import LoadImage

    path = get_testdata_file("CT_small.dcm", download=False)  # ships with pydicom
    ours = read_dicom_image(path)
    theirs = LoadImage(reader="PydicomReader", image_only=True, ensure_channel_first=True)(path)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    # MONAI puts an arbitrary third column on 2D images; the in-plane axes and origin must agree
    np.testing.assert_allclose(ours.affine[:3, [0, 1, 3]], theirs.affine[:3, [0, 1, 3]], atol=1e-4)


def test_dicom_affine_falls_back_to_spacing_then_identity():
    ds = pydicom.Dataset()
    np.testing.assert_array_equal(dicom_affine(ds), np.eye(4))
    ds.PixelSpacing = [0.5, 0.25]  # row spacing, column spacing
    np.testing.assert_array_equal(dicom_affine(ds), np.diag([0.25, 0.5, 1.0, 1.0]))
    ds.PixelSpacing = [0, 0]  # as in RG1_UNCR.dcm: unusable
    np.testing.assert_array_equal(dicom_affine(ds), np.eye(4))


@pytest.mark.parametrize(
    "volume,affine,kwargs,match",
    [
        (np.zeros((4, 4)), np.eye(4), {}, r"volume must be \(H, W, D\)"),
        (np.zeros((2, 4, 4, 2)), np.eye(4), {}, r"C 1 or 3, got shape \(2, 4, 4, 2\)"),
        (np.full((4, 4, 2), np.nan), np.eye(4), {}, "non-finite"),
        (np.zeros((4, 4, 2)), np.eye(3), {}, r"finite 4x4 matrix, got shape \(3, 3\)"),
        (
            np.zeros((4, 4, 2)),
            np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]),
            {},
            "non-orthogonal",
        ),
        (np.zeros((4, 4, 2)), np.diag([1.0, 1, 0, 1]), {}, "zero-length axis"),
        (
            np.zeros((4, 4, 2)),
            np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1.0]]),
            {},
            "slice axis lies in the image plane",
        ),
        (np.zeros((3, 4, 4, 1)), np.eye(4), {"modality": "MR"}, "RGB volume"),
        (np.full((3, 4, 4, 1), 300.0), np.eye(4), {}, r"range \[300, 300\]"),
    ],
)
def test_bad_inputs_raise(tmp_path, volume, affine, kwargs, match):
    kwargs = {"modality": "OT", "series_description": "bad", **kwargs}
    with pytest.raises(ValueError, match=match):
        write_volume_as_series(volume, affine, tmp_path, **kwargs)


def test_never_overwrites_unless_asked_and_refuses_a_file_as_folder(tmp_path):
    volume, kwargs = np.ones((4, 4, 2)), {"modality": "CT", "series_description": "x"}
    (first, _) = write_volume_as_series(volume, np.eye(4), tmp_path, **kwargs)
    before = first.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_volume_as_series(volume, np.eye(4), tmp_path, **kwargs)
    assert first.read_bytes() == before
    write_volume_as_series(volume, np.eye(4), tmp_path, overwrite=True, **kwargs)
    assert first.read_bytes() != before  # new UIDs
    with pytest.raises(NotADirectoryError, match="is a file"):
        write_volume_as_series(volume, np.eye(4), first, **kwargs)


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pydicom.Dataset, "save_as", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_volume_as_series(
            np.ones((4, 4, 2)), np.eye(4), tmp_path, modality="CT", series_description="x"
        )
    assert list(tmp_path.iterdir()) == []


def test_atomic_writes_give_files_the_usual_permissions(tmp_path):
    import os

    from medden.io.files import atomic_write

    path = atomic_write(tmp_path / "x.txt", lambda tmp: tmp.write_text("x"))
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
