"""Tests for medden.io.dicom_folder: discovering, grouping, ordering and decoding DICOM folders.

Every series is built from real files in pydicom's and pydicom-data's test data: single
slices are copied with new UIDs and positions shifted along the slice normal, written in
shuffled order to nested folders, some without ``.dcm``.
"""

import logging
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000Lossless, MPEG2MPML, generate_uid

from medden.io import (
    discover_dicom_files,
    load_dicom_series,
    plan_dicom_series,
    read_dicom_folder,
    read_dicom_image,
)
from medden.io.dicom_folder import INSTALL_DICOM_EXTRA

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_IDENTIFIERS = ("DOE^JANE", "PID-0042", "1961")  # PatientName, PatientID, part of BirthDate


def _data(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not in pydicom's test data (install pydicom-data)")
    return path


def _oblique_iop(degrees: float = 20.0) -> list[float]:
    a = np.deg2rad(degrees)
    row = [np.cos(a), np.sin(a), 0.0]
    col = [0.0, np.cos(np.deg2rad(10)), -np.sin(np.deg2rad(10))]
    col = list(np.asarray(col) - (np.asarray(col) @ row) * np.asarray(row))
    col = list(np.asarray(col) / np.linalg.norm(col))
    return [round(float(v), 6) for v in (*row, *col)]


def _write_series(
    folder: Path,
    source: str = "CT_small.dcm",
    n: int = 5,
    step: float = 2.5,
    *,
    iop: list[float] | None = None,
    offsets: list[float] | None = None,
    series_uid: str | None = None,
    change=None,
    seed: int = 0,
) -> tuple[str, list[Path]]:
    """Copies of one real slice at ``offsets`` (mm) along the normal, in shuffled files.

    Slice ``k`` (in position order) gets stored values ``raw + 7 k`` when the source is
    uncompressed, so the order can be read back from the values. ``change(ds, k)`` edits
    each copy. Returns the series UID and the files in slice order.
    """
    rng = np.random.default_rng(seed)
    series_uid = series_uid or generate_uid()
    base = pydicom.dcmread(_data(source))
    if iop is not None:
        base.ImageOrientationPatient = iop
    iop_values = np.asarray(base.ImageOrientationPatient, float)
    normal = np.cross(iop_values[:3], iop_values[3:])
    origin = np.asarray(base.ImagePositionPatient, float)
    offsets = offsets if offsets is not None else [k * step for k in range(n)]
    order = rng.permutation(len(offsets))  # file k on disk holds slice order[k]
    paths: list[Path | None] = [None] * len(offsets)
    for disk_index, k in enumerate(order):
        ds = pydicom.dcmread(_data(source))
        ds.ImageOrientationPatient = base.ImageOrientationPatient
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [round(float(v), 4) for v in origin + offsets[k] * normal]
        ds.InstanceNumber = int(k) + 1
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = (
            _IDENTIFIERS[0],
            _IDENTIFIERS[1],
            "19610101",
        )
        if not ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.PixelData = (ds.pixel_array + 7 * int(k)).astype(ds.pixel_array.dtype).tobytes()
        if change is not None:
            change(ds, int(k))
        sub = folder / f"d{disk_index % 3}" / ("nested" if disk_index % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        name = f"IM{(disk_index * 7919) % 1000:04d}" + (".dcm" if disk_index % 2 else "")
        path = sub / name
        ds.save_as(path)
        paths[k] = path
    return series_uid, paths


def _reference_slices(paths: list[Path]) -> np.ndarray:
    """(H, W, D) modality values of single-frame files, with pydicom only."""
    return np.stack(
        [apply_modality_lut(pydicom.dcmread(p).pixel_array, pydicom.dcmread(p)).T for p in paths],
        axis=-1,
    ).astype(np.float32)


def _sitk_affine(image: sitk.Image) -> np.ndarray:
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps


def _only(series_list, uid):
    found = [s for s in series_list if s.series_uid == uid]
    assert len(found) == 1, [s.series_uid for s in series_list]
    return found[0]


# ----------------------------------------------------------------------------- discovery


def test_discover_walks_nested_folders_ignores_dicomdir_and_reports_non_dicom(tmp_path):
    _, paths = _write_series(tmp_path, n=3)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "d1" / "empty").write_bytes(b"")
    shutil.copy(_data("DICOMDIR"), tmp_path / "DICOMDIR")
    shutil.copy(_data("DICOMDIR"), tmp_path / "d0" / "index.dcm")  # a DICOMDIR by SOP class
    files, skipped = discover_dicom_files(tmp_path)
    assert sorted(files) == sorted(paths)
    assert {s.path: s.failed for s in skipped} == {Path("notes.txt"): False, Path("d1/empty"): True}
    assert {s.path: s.reason for s in skipped} == {Path("notes.txt"): "not a DICOM file (no 'DICM' marker after the "
                                                   "preamble)", Path("d1/empty"): "empty file (0 bytes), probably an "
                                                   "interrupted copy"}


@pytest.mark.parametrize(
    "folder,error,match",
    [(42, TypeError, "folder must be a path"), ("missing", NotADirectoryError, "does not exist")],
)
def test_bad_folder_raises(tmp_path, folder, error, match):
    with pytest.raises(error, match=match):
        read_dicom_folder(tmp_path / folder if isinstance(folder, str) else folder)


# ----------------------------------------------------------------------------- ordering


def test_series_ordered_along_normal_matches_simpleitk(tmp_path):
    uid, paths = _write_series(tmp_path, n=6, step=2.5, iop=_oblique_iop())
    assert sorted(paths) != paths  # file order says nothing about slice order
    series, skipped = read_dicom_folder(tmp_path)
    assert skipped == []
    (s,) = series
    assert s.series_uid == uid and s.paths == paths and s.frame_order is None and s.notes == []
    assert s.volume.dtype == np.float32 and s.volume.shape == (1, 128, 128, 6)
    assert all("PixelData" not in h for h in s.headers)  # headers only
    np.testing.assert_array_equal(s.volume[0], _reference_slices(paths))

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path), uid, False, True))
    image = reader.Execute()
    np.testing.assert_allclose(s.affine, _sitk_affine(image), atol=1e-4)
    np.testing.assert_array_equal(s.volume[0], sitk.GetArrayFromImage(image).transpose(2, 1, 0))
    # the affine maps voxel (0, 0, k) to slice k's position (RAS)
    for k, path in enumerate(paths):
        position = LPS_TO_RAS[:3, :3] @ np.asarray(pydicom.dcmread(path).ImagePositionPatient)
        np.testing.assert_allclose(s.affine @ [0, 0, k, 1], [*position, 1], atol=1e-3)


def test_plan_then_load_equals_read(tmp_path):
    _write_series(tmp_path, n=3)
    plans, skipped = plan_dicom_series(tmp_path)
    assert skipped == [] and len(plans) == 1 and plans[0].shape == (1, 128, 128, 3)
    loaded, failed = load_dicom_series(plans[0])
    (read,) = read_dicom_folder(tmp_path)[0]
    assert failed == []
    np.testing.assert_array_equal(loaded.volume, read.volume)
    np.testing.assert_array_equal(loaded.affine, plans[0].affine)


def test_non_uniform_spacing_is_noted_and_the_mean_step_used(tmp_path):
    _write_series(tmp_path, offsets=[0.0, 2.5, 5.0, 10.0])
    (s,), _ = read_dicom_folder(tmp_path)
    assert any("not uniform" in note for note in s.notes)
    np.testing.assert_allclose(s.affine[:3, 2], [0, 0, 10.0 / 3], atol=1e-3)


def _tilt(ds, k):
    """Shift slice k by 0.8 mm per slice along y, as a CT gantry tilt of about 18 degrees."""
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [x, y + 0.8 * k, z]


def test_gantry_tilt_is_noted_and_the_affine_follows_the_positions(tmp_path):
    _, paths = _write_series(tmp_path, n=4, change=_tilt)
    (s,), _ = read_dicom_folder(tmp_path)
    assert any("off the slice normal" in n for n in s.notes)
    for k, path in enumerate(paths):
        position = LPS_TO_RAS[:3, :3] @ np.asarray(pydicom.dcmread(path).ImagePositionPatient)
        np.testing.assert_allclose(s.affine @ [0, 0, k, 1], [*position, 1], atol=1e-3)


@pytest.mark.parametrize("case", ["oblique", "tilt", "enhanced"])
def test_matches_dcm2niix(tmp_path, case):
    """Same world-space volume as dcm2niix (without its tilt correction), after reorienting."""
    exe = shutil.which("dcm2niix")
    if exe is None:
        pytest.skip("dcm2niix not found; install it (apt-get install dcm2niix) to cross-check")
    nib = pytest.importorskip("nibabel")
    folder = tmp_path / "in"
    if case == "enhanced":
        folder.mkdir()
        shutil.copy(_data("eCT_Supplemental.dcm"), folder / "f")
    else:
        _write_series(
            folder,
            n=5,
            iop=_oblique_iop() if case == "oblique" else None,
            change=_tilt if case == "tilt" else None,
        )
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        [exe, "-z", "n", "-f", "vol", "-o", str(out), str(folder)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    (s,), _ = read_dicom_folder(folder)
    ours = nib.as_closest_canonical(nib.Nifti1Image(s.volume[0], s.affine))
    theirs = nib.as_closest_canonical(nib.load(out / "vol.nii"))  # tilt-corrected copy ignored
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-3)
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())


def test_missing_positions_fall_back_to_instance_number(tmp_path):
    def drop_position(ds, k):
        del ds.ImagePositionPatient

    _, paths = _write_series(tmp_path, n=4, change=drop_position)
    (s,), _ = read_dicom_folder(tmp_path)
    assert s.paths == paths  # InstanceNumber k + 1 is slice k
    np.testing.assert_array_equal(s.volume[0], _reference_slices(paths))
    assert any("ordered by InstanceNumber" in note for note in s.notes)


# ----------------------------------------------------------------------------- splits


def test_mixed_sizes_are_split(tmp_path):
    uid, ct = _write_series(tmp_path / "ct", n=3)
    _, mr = _write_series(tmp_path / "mr", source="MR_small.dcm", n=2, series_uid=uid)
    series, skipped = read_dicom_folder(tmp_path)
    assert skipped == []
    assert sorted(s.series_uid for s in series) == [uid, f"{uid}#2"]
    sizes = {s.volume.shape for s in series}
    assert sizes == {(1, 128, 128, 3), (1, 64, 64, 2)}
    assert all(any("split by image layout" in n for n in s.notes) for s in series)


def test_inconsistent_orientation_is_split_and_reported(tmp_path):
    tilted = _oblique_iop(15.0)
    jitter = [1.0, 0.0, 0.0005, 0.0, 1.0, 0.0]  # within tolerance of the axial stack

    def orient(ds, k):
        ds.ImageOrientationPatient = (
            tilted if k >= 3 else (jitter if k == 1 else ds.ImageOrientationPatient)
        )

    uid, _ = _write_series(tmp_path, n=5, change=orient)
    series, _ = read_dicom_folder(tmp_path)
    assert sorted(s.n_slices for s in series) == [2, 3]
    assert {s.series_uid for s in series} == {uid, f"{uid}#2"}
    assert all(any("split by ImageOrientationPatient" in n for n in s.notes) for s in series)


@pytest.mark.parametrize("echo_numbers", [True, False])
def test_repeats_at_one_position_are_split(tmp_path, echo_numbers):
    def second_echo(ds, k):
        if k >= 3:  # slices 3-5 repeat the positions of 0-2
            ds.ImagePositionPatient = [
                v - 2.5 * 3 * (i == 2) for i, v in enumerate(ds.ImagePositionPatient)
            ]
        if echo_numbers:
            ds.EchoNumbers = 1 + (k >= 3)
        elif "EchoNumbers" in ds:
            del ds.EchoNumbers

    _write_series(tmp_path, n=6, change=second_echo)
    series, _ = read_dicom_folder(tmp_path)
    assert [s.n_slices for s in series] == [3, 3]
    expected = "split by EchoNumbers" if echo_numbers else "split by repetition"
    assert all(any(expected in n for n in s.notes) for s in series)
    # repeat 2 holds the brighter copies (raw + 7 k with k >= 3)
    assert series[1].volume.mean() - series[0].volume.mean() == pytest.approx(21.0)


def test_duplicate_files_are_skipped(tmp_path):
    _, paths = _write_series(tmp_path, n=3)
    shutil.copy(paths[1], tmp_path / "copy_of_slice")
    (s,), skipped = read_dicom_folder(tmp_path)
    assert s.n_slices == 3
    assert len(skipped) == 1 and "duplicate" in skipped[0].reason


# ----------------------------------------------------------------------------- skipping


def test_non_images_and_truncated_files_are_skipped_while_the_rest_is_read(tmp_path):
    uid, paths = _write_series(tmp_path / "series", n=3)
    names = ("test-SR.dcm", "rtplan.dcm", "liver_1frame.dcm", "waveform_ecg.dcm")
    for name in (*names, "MR_truncated.dcm"):
        shutil.copy(_data(name), tmp_path / name)
    (tmp_path / "cut_in_header").write_bytes(Path(_data("CT_small.dcm")).read_bytes()[:1000])
    series, skipped = read_dicom_folder(tmp_path)
    assert [s.series_uid for s in series] == [uid]
    reasons = {s.path.name: s.reason for s in skipped}
    assert set(reasons) == {*names, "MR_truncated.dcm", "cut_in_header"}
    assert "SR Storage: no pixel data" in reasons["test-SR.dcm"]
    assert "RT Plan Storage: no pixel data" in reasons["rtplan.dcm"]
    assert "ECG Waveform Storage: no pixel data" in reasons["waveform_ecg.dcm"]
    assert "Segmentation Storage" in reasons["liver_1frame.dcm"]
    assert "pixel data is truncated: 8130 of 8192 bytes" in reasons["MR_truncated.dcm"]
    assert "probably truncated" in reasons["cut_in_header"]


def test_a_slice_that_fails_to_decode_is_left_out_and_geometry_rechecked(tmp_path):
    def corrupt_middle(ds, k):
        if k == 1:
            ds.PixelData = encapsulate([b"\x01\x00\x00\x00" + b"\x00" * 60])  # a broken RLE frame

    uid, paths = _write_series(
        tmp_path, source="MR_small_RLE.dcm", n=3, step=3.0, change=corrupt_middle
    )
    (s,), skipped = read_dicom_folder(tmp_path)
    assert s.n_slices == 2 and s.paths == [paths[0], paths[2]]
    assert [f.path for f in skipped] == [paths[1].relative_to(tmp_path)]
    assert "could not be decoded" in skipped[0].reason
    np.testing.assert_allclose(np.linalg.norm(s.affine[:3, 2]), 6.0, atol=1e-3)
    assert any("left out" in n for n in s.notes)


def test_unsupported_transfer_syntax_is_skipped(tmp_path):
    ds = pydicom.dcmread(_data("MR_small.dcm"))
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.save_as(tmp_path / "video.dcm")
    shutil.copy(_data("CT_small.dcm"), tmp_path / "ct")
    series, skipped = read_dicom_folder(tmp_path)
    assert len(series) == 1
    assert [s.path for s in skipped] == [Path("video.dcm")]
    assert "cannot be decoded by pydicom" in skipped[0].reason


def test_missing_decoder_plugin_says_how_to_install_it(tmp_path, monkeypatch):
    shutil.copy(_data("MR_small_jp2klossless.dcm"), tmp_path / "j2k")
    plans, _ = plan_dicom_series(tmp_path)
    decoder = get_decoder(JPEG2000Lossless)
    monkeypatch.setattr(decoder, "_available", {})
    # found when planning...
    _, skipped = plan_dicom_series(tmp_path)
    assert len(skipped) == 1 and INSTALL_DICOM_EXTRA in skipped[0].reason
    # ... and when the plugin vanished between planning and decoding
    series, failed = load_dicom_series(plans[0])
    assert series is None and INSTALL_DICOM_EXTRA in failed[0].reason


# ----------------------------------------------------------------------------- decoding


def _read_single(tmp_path: Path, name: str):
    """Read a folder holding only a copy of test file ``name``."""
    folder = tmp_path / Path(name).name.replace(".", "_")
    folder.mkdir()
    shutil.copy(_data(name), folder / "file")
    (series,), skipped = read_dicom_folder(folder)
    assert skipped == []
    return series


@pytest.mark.parametrize(
    "compressed,uncompressed",
    [
        ("MR_small_RLE.dcm", "MR_small.dcm"),  # RLE
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),  # JPEG 2000 lossless
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),  # JPEG-LS lossless
        ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb.dcm"),  # JPEG lossless, RGB
        ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),  # multi-frame JPEG 2000
        ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),
        ("emri_small_RLE.dcm", "emri_small.dcm"),
        ("693_J2KR.dcm", "693_UNCR.dcm"),  # CT, JPEG 2000 reversible
    ],
)
def test_lossless_compression_decodes_exactly(tmp_path, compressed, uncompressed):
    a, b = _read_single(tmp_path, compressed), _read_single(tmp_path, uncompressed)
    assert a.volume.shape == b.volume.shape
    np.testing.assert_array_equal(a.volume, b.volume)
    np.testing.assert_array_equal(a.affine, b.affine)


@pytest.mark.parametrize(
    "lossy,reference,tolerance",
    [
        ("SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb.dcm", 8),  # JPEG baseline, RGB
        ("SC_rgb_dcmtk_+eb+cy+n2.dcm", "SC_rgb.dcm", 8),  # JPEG baseline, YBR_FULL -> RGB
    ],
)
def test_lossy_jpeg_decodes_close_to_the_original(tmp_path, lossy, reference, tolerance):
    a, b = _read_single(tmp_path, lossy), _read_single(tmp_path, reference)
    assert a.volume.shape == b.volume.shape == (3, 100, 100, 1)
    assert np.abs(a.volume - b.volume).max() <= tolerance


@pytest.mark.parametrize(
    "name", ["SC_jpeg_no_color_transform.dcm", "JPGExtended.dcm", "JPEG-LL.dcm"]
)
def test_jpeg_variants_decode_like_pydicom(tmp_path, name):
    series = _read_single(tmp_path, name)
    ds = pydicom.dcmread(_data(name))
    pixels = ds.pixel_array
    expected = (
        pixels.transpose(2, 1, 0) if pixels.ndim == 3 else apply_modality_lut(pixels, ds).T[None]
    )
    np.testing.assert_array_equal(series.volume[..., 0], expected.astype(np.float32))


def test_monochrome1_is_inverted_and_flagged(tmp_path):
    name = "dicomdirtests/77654033/CR1/6154"
    path = Path(_data(name))
    series = _read_single(tmp_path, name)
    assert series.inverted_monochrome1
    np.testing.assert_array_equal(series.volume[..., 0], read_dicom_image(path).numpy())
    raw = pydicom.dcmread(path)
    stored = apply_modality_lut(raw.pixel_array, raw).T
    assert np.corrcoef(series.volume[0, ..., 0].ravel(), stored.ravel())[0, 1] < -0.99


# ----------------------------------------------------------------------------- multi-frame


def test_enhanced_ct_frames_ordered_along_normal_with_per_frame_rescale(tmp_path):
    ds = pydicom.dcmread(_data("eCT_Supplemental.dcm"))
    raw = ds.pixel_array  # (2, 512, 512), frame 0 at z = -159, frame 1 at z = -149
    shared = ds.SharedFunctionalGroupsSequence[0]
    del shared.PixelValueTransformationSequence
    for frame, slope in enumerate((2.0, 1.0)):  # a per-frame rescale that differs by frame
        item = Dataset()
        item.RescaleSlope, item.RescaleIntercept, item.RescaleType = slope, -1024, "US"
        ds.PerFrameFunctionalGroupsSequence[frame].PixelValueTransformationSequence = Sequence(
            [item]
        )
    ds.save_as(tmp_path / "enhanced")
    (s,), skipped = read_dicom_folder(tmp_path)
    assert skipped == [] and s.is_multiframe and len(s.headers) == 1
    # the normal is -z (row -x, column +y): frame 1 (z = -149) comes first
    assert s.frame_order == [1, 0]
    np.testing.assert_array_equal(s.volume[0, ..., 0], (raw[1] * 1.0 - 1024).T)
    np.testing.assert_array_equal(s.volume[0, ..., 1], (raw[0] * 2.0 - 1024).T)
    np.testing.assert_allclose(s.affine[:3, 3], [-99.5, 301.5, -149.0], atol=1e-4)
    np.testing.assert_allclose(s.affine[:3, 2], [0.0, 0.0, -10.0], atol=1e-4)
    np.testing.assert_allclose(np.diag(s.affine)[:2], [0.388672, -0.388672], atol=1e-6)


def test_legacy_multiframe_without_positions_keeps_frame_order(tmp_path):
    s = _read_single(tmp_path, "emri_small.dcm")
    ds = pydicom.dcmread(_data("emri_small.dcm"))
    assert s.frame_order == list(range(10)) and s.volume.shape == (1, 64, 64, 10)
    np.testing.assert_array_equal(s.volume[0], ds.pixel_array.transpose(2, 1, 0))
    assert any("ordered by frame number" in n for n in s.notes)


# ----------------------------------------------------------------------------- real export


def test_real_export_folder_with_dicomdir(tmp_path):
    """pydicom's dicomdirtests: a PACS-style export with a DICOMDIR, localizers, CT and CR."""
    root = Path(_data("dicomdirtests/DICOMDIR")).parent
    series, skipped = read_dicom_folder(root)
    assert not any(s.path.name == "DICOMDIR" for s in skipped)
    tiny = [s for s in skipped if "TINY_ALPHA" in str(s.path) and s.path.name != "README"]
    assert tiny and all("before any pixel data" in s.reason for s in tiny)  # header-only CT
    # a three-plane localizer is split by orientation
    localizer = "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.136"
    parts = [s for s in series if s.series_uid.split("#")[0] == localizer]
    assert len(parts) == 3
    # a five-slice CT matches SimpleITK
    ct_uid = "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.6"
    ct = _only(series, ct_uid)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(root / "98892001" / "CT5N"), ct_uid))
    image = reader.Execute()
    np.testing.assert_allclose(ct.affine, _sitk_affine(image), atol=1e-4)
    np.testing.assert_array_equal(ct.volume[0], sitk.GetArrayFromImage(image).transpose(2, 1, 0))
    # CT slices at 103.02, 104.27, 105.52 and -99.48 mm: non-uniform spacing is noted
    ct2 = _only(series, "1.3.6.1.4.1.5962.1.1.0.0.0.1196530851.28319.0.2")
    assert ct2.n_slices == 4 and any("not uniform" in n for n in ct2.notes)


# ----------------------------------------------------------------------------- privacy


def test_patient_identifiers_never_reach_reasons_notes_logs_or_warnings(tmp_path, caplog):
    def bad_instance_number(ds, k):
        tag = 0x00200013  # InstanceNumber, an invalid IS that pydicom warns (and logs) about
        ds._dict[tag] = RawDataElement(tag, "IS", 2, f"{k}A".encode(), 0, False, True)
        ds.ImageOrientationPatient = _oblique_iop(30.0) if k == 0 else ds.ImageOrientationPatient

    _write_series(tmp_path, n=3, change=bad_instance_number)
    shutil.copy(_data("MR_truncated.dcm"), tmp_path / "truncated")
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series, skipped = read_dicom_folder(tmp_path)
    texts = [s.reason for s in skipped] + [n for s in series for n in s.notes]
    texts += [r.getMessage() for r in caplog.records] + [str(w.message) for w in caught]
    assert skipped and any(s.notes for s in series)
    assert not [t for t in texts if any(i in t for i in _IDENTIFIERS)]
    assert not caught and not [r for r in caplog.records if r.name.startswith("pydicom")]
