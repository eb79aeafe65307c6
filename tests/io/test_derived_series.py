"""Tests for medden.io.derived_series: derived DICOM series written from denoised volumes.

Sources are pydicom's and pydicom-data's real test files, turned into ``DicomSeries`` here
(not by the folder reader) with the reader's conventions: modality LUT applied, MONOCHROME1
inverted, ``(C, H, W, D)`` axis order, enhanced objects rescaled per frame.
"""

import logging
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid

import medden
from medden.io import dicom_affine, read_dicom_image, write_derived_series
from medden.io.derived_series import (
    DERIVATION_CODE,
    copy_header,
    EQUIPMENT_PURPOSE_CODE,
    SERIES_NUMBER_OFFSET,
    SOURCE_PURPOSE_CODE,
)
from medden.io.dicom_types import DicomSeries
from helpers import to_backend

PATIENT_NAME, PATIENT_ID = "Doe^Jane", "PID-424242"
DERIVE = {"method": "recorruption", "model": "unet-small", "parameters": {"eta": 0.5, "seed": 3}}


# ----------------------------------------------------------------------------- sources


def _frame_values(ds: pydicom.Dataset, frame: int, pixels: np.ndarray) -> np.ndarray:
    """One frame in modality units, rescaled by its Pixel Value Transformation group."""
    groups = [
        (ds.get("PerFrameFunctionalGroupsSequence") or [None] * (frame + 1))[frame],
        (ds.get("SharedFunctionalGroupsSequence") or [None])[0],
    ]
    for group in groups:
        if group is not None and "PixelValueTransformationSequence" in group:
            transform = group.PixelValueTransformationSequence[0]
            return pixels * float(transform.RescaleSlope) + float(transform.RescaleIntercept)
    return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)


def _series(paths, frame_order=None) -> DicomSeries:
    """A DicomSeries from single-frame files in slice order, or one multi-frame file."""
    paths = [Path(p) for p in paths]
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    if frame_order is None:
        volume = np.stack([np.asarray(read_dicom_image(p)) for p in paths], axis=-1)
    else:
        full = pydicom.dcmread(paths[0])
        pixels = full.pixel_array.astype(np.float64)
        frames = [_frame_values(full, f, pixels[f]).T for f in frame_order]
        volume = np.stack(frames, axis=-1)[None]
    return DicomSeries(
        series_uid=str(headers[0].SeriesInstanceUID),
        volume=volume.astype(np.float32),
        affine=dicom_affine(headers[0]),
        headers=headers,
        paths=paths,
        frame_order=frame_order,
        inverted_monochrome1=headers[0].PhotometricInterpretation == "MONOCHROME1",
    )


def _testdata(name: str, frame_order=None) -> DicomSeries:
    return _series([get_testdata_file(name)], frame_order)


def _slices(folder, name="CT_small.dcm", n=4, **tags):
    """``n`` copies of a real slice as one series, stepped along the slice normal."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(get_testdata_file(name))
    pixels = ds.pixel_array
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    step = float(ds.get("SpacingBetweenSlices") or ds.SliceThickness)
    origin = np.asarray(ds.ImagePositionPatient, dtype=float)
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    paths = []
    for k in range(n):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in origin + k * step * normal]
        ds.PixelData = (pixels + 7 * k).astype(pixels.dtype).tobytes()
        paths.append(folder / f"slice{k}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return _series(paths)


def _read(paths):
    return [pydicom.dcmread(p) for p in paths]


def _modality(ds: pydicom.Dataset) -> np.ndarray:
    return np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float64)


def _code(item) -> tuple[str, str, str]:
    return item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning


@pytest.fixture
def ct_series(tmp_path):
    return _slices(tmp_path / "src", "CT_small.dcm", n=4)


# ----------------------------------------------------------------------------- identity


def test_new_unique_uids_and_kept_study_patient_geometry(tmp_path, ct_series):
    paths = write_derived_series(ct_series, ct_series.volume, tmp_path / "out", **DERIVE)
    out, src = _read(paths), _read(ct_series.paths)
    sops = [ds.SOPInstanceUID for ds in out]
    assert len(set(sops)) == 4 and not set(sops) & {ds.SOPInstanceUID for ds in src}
    assert [ds.file_meta.MediaStorageSOPInstanceUID for ds in out] == sops
    assert {ds.SeriesInstanceUID for ds in out} != {src[0].SeriesInstanceUID}
    assert len({ds.SeriesInstanceUID for ds in out}) == 1
    for new, old in zip(out, src):
        for keyword in (
            "StudyInstanceUID",
            "FrameOfReferenceUID",
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "SOPClassUID",
            "Modality",
            "InstanceNumber",
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "PixelSpacing",
            "SliceThickness",
            "BitsAllocated",
            "BitsStored",
            "HighBit",
            "PixelRepresentation",
            "RescaleSlope",
            "RescaleIntercept",
            "WindowCenter",
        ):
            assert new.get(keyword) == old.get(keyword), keyword
        assert new.SeriesNumber == old.SeriesNumber + SERIES_NUMBER_OFFSET
    assert write_derived_series(
        ct_series, ct_series.volume, tmp_path / "other", series_number=7, **DERIVE
    )[0].exists()
    assert pydicom.dcmread(next((tmp_path / "other").rglob("*.dcm"))).SeriesNumber == 7


def test_source_headers_in_memory_are_left_untouched(tmp_path, ct_series):
    """Derived instances copy their source headers element by element; the sources never change."""
    before = [(h.to_json_dict(), list(h.keys())) for h in ct_series.headers]
    write_derived_series(ct_series, ct_series.volume, tmp_path / "out", method="m", model="x", parameters={})
    assert [(h.to_json_dict(), list(h.keys())) for h in ct_series.headers] == before


def test_derived_marking_references_and_equipment(tmp_path, ct_series):
    paths = write_derived_series(ct_series, ct_series.volume, tmp_path / "out", **DERIVE)
    for new, old in zip(_read(paths), _read(ct_series.paths)):
        assert list(new.ImageType) == ["DERIVED", "SECONDARY", *list(old.ImageType)[2:]]
        assert new.SeriesDescription.endswith("[medden]") and len(new.SeriesDescription) <= 64
        for text in ("recorruption", "unet-small", '"eta": 0.5', medden.__version__):
            assert text in new.DerivationDescription
        assert [_code(c) for c in new.DerivationCodeSequence] == [DERIVATION_CODE]
        (ref,) = new.SourceImageSequence
        assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (
            old.SOPClassUID,
            old.SOPInstanceUID,
        )
        assert [_code(c) for c in ref.PurposeOfReferenceCodeSequence] == [SOURCE_PURPOSE_CODE]
        equipment = new.ContributingEquipmentSequence[-1]
        assert (equipment.Manufacturer, equipment.SoftwareVersions) == (
            "medden",
            medden.__version__,
        )
        assert [_code(c) for c in equipment.PurposeOfReferenceCodeSequence] == [
            EQUIPMENT_PURPOSE_CODE
        ]
        assert [e.tag for e in new if e.tag.is_private] == [e.tag for e in old if e.tag.is_private]


def test_codes_are_standard_codes():
    """The coded concepts are the PS3.16 ones pydicom ships, in the context groups used."""
    assert codes.cid7203.Smoothing.value == DERIVATION_CODE[0]  # Image Derivation
    purpose = codes.cid7202.SourceImageForImageProcessingOperation  # Source image purpose
    assert (purpose.value, purpose.scheme_designator) == SOURCE_PURPOSE_CODE[:2]
    assert codes.DCM.ModifyingEquipment.value == EQUIPMENT_PURPOSE_CODE[0]


def test_series_description_fits_lo_and_keeps_suffix(tmp_path):
    series = _slices(tmp_path / "src", n=1, SeriesDescription="x" * 64)
    (path,) = write_derived_series(
        series, series.volume, tmp_path / "out", description_suffix=" denoised", **DERIVE
    )
    assert pydicom.dcmread(path).SeriesDescription == "x" * 55 + " denoised"


def test_stale_pixel_tags_removed_other_tags_kept(tmp_path):
    series = _testdata("MR_small.dcm")
    header = series.headers[0]
    icon = pydicom.Dataset()
    icon.Rows = icon.Columns = 1
    header.IconImageSequence = [icon]
    header.BurnedInAnnotation = "YES"
    header.LossyImageCompression = "01"
    header.LossyImageCompressionRatio, header.LossyImageCompressionMethod = "5", "ISO_10918_1"
    assert "SmallestImagePixelValue" in header and "LargestImagePixelValue" in header
    (path,) = write_derived_series(series, series.volume + 5000, tmp_path / "out", **DERIVE)
    ds = pydicom.dcmread(path)
    for keyword in ("IconImageSequence", "SmallestImagePixelValue", "LargestImagePixelValue"):
        assert keyword not in ds
    assert (ds.BurnedInAnnotation, ds.LossyImageCompression) == ("YES", "01")
    assert ds.LossyImageCompressionMethod == "ISO_10918_1"
    assert ds.WindowCenter == header.WindowCenter


# ----------------------------------------------------------------------------- pixel values


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR2_UNCR.dcm"])
def test_stored_values_round_trip_within_one_lsb(tmp_path, name, backend):
    series = _testdata(name)
    header = series.headers[0]
    slope = float(header.get("RescaleSlope", 1))
    rng = np.random.default_rng(0)
    denoised = series.volume + rng.uniform(-3, 3, series.volume.shape) * slope
    denoised = denoised.astype(np.float32)
    (path,) = write_derived_series(
        series, to_backend(denoised, backend), tmp_path / "out", **DERIVE
    )
    back = _modality(pydicom.dcmread(path)).T
    bits = header.BitsStored - header.PixelRepresentation  # representable modality range
    stored_range = np.array([-header.PixelRepresentation * 2**bits, 2**bits - 1])
    ends = apply_modality_lut(stored_range, header)
    expected = np.clip(denoised[0, ..., 0], *ends)
    assert np.abs(back - expected).max() <= slope / 2 + 1e-3 * slope + 1e-2
    assert np.abs(back - expected).max() > slope / 4  # values really were re-quantised


@pytest.mark.parametrize(
    "name,low,high",
    [
        ("CT_small.dcm", -(2**15), 2**15 - 1),  # signed 16 of 16
        ("693_UNCR.dcm", -(2**13), 2**13 - 1),  # signed 14 of 16
        ("MR2_UNCR.dcm", 0, 2**12 - 1),  # unsigned 12 of 16, slope 3.77
    ],
)
def test_values_clipped_to_stored_range(tmp_path, name, low, high):
    series = _testdata(name)
    denoised = series.volume.copy()
    denoised[:, ::2] = 1e9
    denoised[:, 1::2] = -1e9
    (path,) = write_derived_series(series, denoised, tmp_path / "out", **DERIVE)
    ds, src = pydicom.dcmread(path), series.headers[0]
    assert (ds.pixel_array.min(), ds.pixel_array.max()) == (low, high)
    assert ds.pixel_array.dtype.kind == ("i" if src.PixelRepresentation else "u")
    assert [ds[k].value for k in ("BitsAllocated", "BitsStored", "HighBit")] == [
        src[k].value for k in ("BitsAllocated", "BitsStored", "HighBit")
    ]


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm", "RG3_UNCR.dcm"])
def test_identity_denoising_reproduces_stored_pixels(tmp_path, name):
    """stored -> modality (reader) -> stored (writer) is the identity, MONOCHROME1 included."""
    series = _testdata(name)
    (path,) = write_derived_series(series, series.volume, tmp_path / "out", **DERIVE)
    ds, src = pydicom.dcmread(path), pydicom.dcmread(series.paths[0])
    assert ds.PhotometricInterpretation == src.PhotometricInterpretation
    np.testing.assert_array_equal(ds.pixel_array, src.pixel_array)


def test_modality_lut_sequence_inverted_to_nearest_entry(tmp_path):
    series = _testdata("mlut_18.dcm")  # a 4096-entry Modality LUT Sequence, no rescale
    assert "ModalityLUTSequence" in series.headers[0]
    (path,) = write_derived_series(series, series.volume + 0.4, tmp_path / "out", **DERIVE)
    ds, src = pydicom.dcmread(path), pydicom.dcmread(series.paths[0])
    np.testing.assert_array_equal(_modality(ds), _modality(src))


def test_monochrome1_re_inverted(tmp_path):
    """Brighter in the reader's MONOCHROME2 sense is a lower stored MONOCHROME1 value."""
    series = _testdata("RG3_UNCR.dcm")
    assert series.inverted_monochrome1
    (path,) = write_derived_series(series, series.volume + 10, tmp_path / "out", **DERIVE)
    stored, src = pydicom.dcmread(path).pixel_array, pydicom.dcmread(series.paths[0]).pixel_array
    inside = (src >= 10) & (src <= 1013)  # away from the 10-bit range ends, nothing clips
    np.testing.assert_array_equal(stored[inside], src[inside].astype(int) - 10)


@pytest.mark.parametrize(
    "transfer_syntax,uid", [("rle", RLELossless), ("jpeg2000-lossless", JPEG2000Lossless)]
)
@pytest.mark.parametrize("name", ["CT_small.dcm", "693_UNCR.dcm", "SC_rgb.dcm"])
def test_lossless_compression_decodes_exactly(tmp_path, name, transfer_syntax, uid):
    series = _testdata(name)
    rng = np.random.default_rng(1)
    denoised = series.volume + rng.normal(0, 20, series.volume.shape).astype(np.float32)
    (plain,) = write_derived_series(series, denoised, tmp_path / "a", **DERIVE)
    (packed,) = write_derived_series(
        series, denoised, tmp_path / "b", transfer_syntax=transfer_syntax, **DERIVE
    )
    plain, packed = pydicom.dcmread(plain), pydicom.dcmread(packed)
    assert packed.file_meta.TransferSyntaxUID == uid
    assert packed.SOPInstanceUID == plain.SOPInstanceUID  # same derivation, same UIDs
    assert packed.file_meta.MediaStorageSOPInstanceUID == packed.SOPInstanceUID
    assert packed.get("LossyImageCompression") == series.headers[0].get("LossyImageCompression")
    np.testing.assert_array_equal(packed.pixel_array, plain.pixel_array)


@pytest.mark.parametrize(
    "name,frames",
    [
        ("MR_small_RLE.dcm", None),
        ("MR_small_jp2klossless.dcm", None),
        ("emri_small_jpeg_2k_lossless.dcm", list(range(10))),
    ],
)
def test_compressed_sources_written_uncompressed(tmp_path, name, frames):
    series = _testdata(name, frames)
    (path,) = write_derived_series(series, series.volume, tmp_path / "out", **DERIVE)
    ds, src = pydicom.dcmread(path), pydicom.dcmread(series.paths[0])
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    n_frames = int(ds.get("NumberOfFrames") or 1)
    assert len(ds.PixelData) == ds.Rows * ds.Columns * n_frames * ds.BitsAllocated // 8
    np.testing.assert_array_equal(ds.pixel_array, src.pixel_array)


def test_big_endian_header_binary_values_converted():
    """OW values of a big-endian source are byte-swapped for the little-endian output."""
    big = pydicom.dcmread(get_testdata_file("OBXXXX1A_expb.dcm"), stop_before_pixels=True)
    little = pydicom.dcmread(get_testdata_file("OBXXXX1A.dcm"), stop_before_pixels=True)
    copied = copy_header(big)
    for colour in ("Red", "Green", "Blue"):
        keyword = f"{colour}PaletteColorLookupTableData"
        assert copied[keyword].value == little[keyword].value != big[keyword].value
    assert copied.original_encoding == (None, None)
    assert big.RedPaletteColorLookupTableData != little.RedPaletteColorLookupTableData  # untouched


def test_palette_colour_refused(tmp_path):
    path = get_testdata_file("OBXXXX1A.dcm")
    header = pydicom.dcmread(path, stop_before_pixels=True)
    volume = np.zeros((1, header.Columns, header.Rows, 1), dtype=np.float32)
    series = DicomSeries(str(header.SeriesInstanceUID), volume, np.eye(4), [header], [Path(path)])
    with pytest.raises(ValueError, match="Palette indices cannot be denoised"):
        write_derived_series(series, volume, tmp_path / "out", **DERIVE)


# ----------------------------------------------------------------------------- multi-frame


def test_enhanced_ct_frames_references_and_groups(tmp_path):
    series = _testdata("eCT_Supplemental.dcm", frame_order=[1, 0])  # sorted along the normal
    header = series.headers[0]  # as if acquired: ORIGINAL image and frame types
    frame_types = header.SharedFunctionalGroupsSequence[0].CTImageFrameTypeSequence[0]
    header.ImageType = frame_types.FrameType = ["ORIGINAL", "PRIMARY", "PERFUSION", "RCBF"]
    offsets = np.array([0.0, 100.0], dtype=np.float32)  # slice k of the volume gets +100 k
    (path,) = write_derived_series(series, series.volume + offsets, tmp_path / "out", **DERIVE)
    ds, src = pydicom.dcmread(path), pydicom.dcmread(series.paths[0])
    assert ds.NumberOfFrames == 2
    assert list(ds.ImageType) == ["DERIVED", "PRIMARY", "PERFUSION", "RCBF"]
    frame_type = ds.SharedFunctionalGroupsSequence[0].CTImageFrameTypeSequence[0].FrameType
    assert list(frame_type) == list(ds.ImageType)
    # frames keep the source order: frame 1 is slice 0 (+0), frame 0 is slice 1 (+100)
    np.testing.assert_array_equal(ds.pixel_array[0], src.pixel_array[0] + 100)
    np.testing.assert_array_equal(ds.pixel_array[1], src.pixel_array[1])
    for f, (new, old) in enumerate(
        zip(ds.PerFrameFunctionalGroupsSequence, src.PerFrameFunctionalGroupsSequence)
    ):
        assert new.PlanePositionSequence == old.PlanePositionSequence
        (derivation,) = new.DerivationImageSequence
        assert [_code(c) for c in derivation.DerivationCodeSequence] == [DERIVATION_CODE]
        (ref,) = derivation.SourceImageSequence
        assert ref.ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert ref.ReferencedFrameNumber == f + 1
    (evidence,) = ds.SourceImageEvidenceSequence
    instance = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert instance.ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert "SourceImageSequence" not in ds and "DerivationDescription" not in ds


def test_enhanced_mr_without_functional_groups_is_valid_multiframe(tmp_path):
    series = _testdata("emri_small.dcm", frame_order=list(range(10)))
    (path,) = write_derived_series(series, series.volume, tmp_path / "out", **DERIVE)
    ds, src = pydicom.dcmread(path), pydicom.dcmread(series.paths[0])
    assert ds.SOPClassUID == src.SOPClassUID and ds.NumberOfFrames == 10
    assert list(ds.ImageType) == ["DERIVED", "PRIMARY", "T1", "NONE"]
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    np.testing.assert_array_equal(ds.pixel_array, src.pixel_array)


def test_enhanced_mr_leaves_out_attributes_only_original_images_need(tmp_path):
    """MR Pulse Sequence and Bulk Motion attributes (PS3.3 C.8.13.4, C.7.6.18.3), and the
    Spoiling that depends on Echo Pulse Sequence, leave a DERIVED enhanced MR; classic MR keeps
    its Type 2 MR Acquisition Type."""
    series = _testdata("emri_small.dcm", frame_order=list(range(10)))
    header = series.headers[0]
    modifier = pydicom.Dataset()
    modifier.InversionRecovery, modifier.Spoiling = "NO", "RF"
    shared = pydicom.Dataset()
    shared.MRModifierSequence = [modifier]
    header.SharedFunctionalGroupsSequence = [shared]
    header.PerFrameFunctionalGroupsSequence = [pydicom.Dataset() for _ in range(10)]
    (path,) = write_derived_series(series, series.volume, tmp_path / "out", **DERIVE)
    ds = pydicom.dcmread(path)
    for keyword in (
        "PulseSequenceName",
        "MRAcquisitionType",
        "EchoPulseSequence",
        "NumberOfKSpaceTrajectories",
        "BulkMotionCompensationTechnique",
    ):
        assert keyword in header and keyword not in ds, keyword
    (kept,) = ds.SharedFunctionalGroupsSequence[0].MRModifierSequence
    assert "Spoiling" not in kept and kept.InversionRecovery == "NO"
    assert header.SharedFunctionalGroupsSequence[0].MRModifierSequence[0].Spoiling == "RF"
    classic = _testdata("MR_small.dcm")
    (path,) = write_derived_series(classic, classic.volume, tmp_path / "classic", **DERIVE)
    assert pydicom.dcmread(path).MRAcquisitionType == classic.headers[0].MRAcquisitionType


def test_frame_subset_keeps_matching_functional_groups(tmp_path):
    series = _testdata("eCT_Supplemental.dcm", frame_order=[1])
    (path,) = write_derived_series(series, series.volume, tmp_path / "out", **DERIVE)
    ds, src = pydicom.dcmread(path), pydicom.dcmread(series.paths[0])
    assert ds.NumberOfFrames == 1 and len(ds.PerFrameFunctionalGroupsSequence) == 1
    position = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence
    assert position == src.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence
    np.testing.assert_array_equal(ds.pixel_array, src.pixel_array[1])


# ----------------------------------------------------------------------------- validators


@pytest.mark.parametrize(
    "name,frames,transfer_syntax",
    [
        ("CT_small.dcm", None, "explicit"),
        ("CT_small.dcm", None, "rle"),
        ("CT_small.dcm", None, "jpeg2000-lossless"),
        ("MR_small.dcm", None, "explicit"),
        ("MR2_UNCR.dcm", None, "explicit"),
        ("RG3_UNCR.dcm", None, "explicit"),
        ("eCT_Supplemental.dcm", [1, 0], "explicit"),
        ("emri_small.dcm", list(range(10)), "explicit"),
        ("emri_small_big_endian.dcm", list(range(10)), "explicit"),
        ("emri_small_RLE.dcm", list(range(10)), "rle"),
    ],
)
def test_dciodvfy_finds_no_new_errors(tmp_path, dciodvfy, name, frames, transfer_syntax):
    """No error the source does not already have (CT_small and MR_small: none at all)."""
    series = _testdata(name, frames)
    (path,) = write_derived_series(
        series, series.volume, tmp_path / "out", transfer_syntax=transfer_syntax, **DERIVE
    )
    source_errors = set(dciodvfy(series.paths[0]))
    errors = dciodvfy(path)
    assert [e for e in errors if e not in source_errors] == []
    if name in ("CT_small.dcm", "MR_small.dcm"):
        assert errors == []


def _corners(affine, shape):
    grid = np.array(np.meshgrid(*[[0, n - 1] for n in shape], indexing="ij")).reshape(3, -1)
    world = (affine @ np.vstack([grid, np.ones(grid.shape[1])]))[:3].T
    return world[np.lexsort(np.round(world, 3).T)]


def test_dcm2niix_geometry_matches_source(tmp_path, ct_series):
    exe = shutil.which("dcm2niix")
    if exe is None:
        pytest.skip("dcm2niix not found; install it (apt-get install dcm2niix)")
    nib = pytest.importorskip("nibabel")
    out = write_derived_series(ct_series, ct_series.volume, tmp_path / "out", **DERIVE)
    images = {}
    for key, folder in (("source", ct_series.paths[0].parent), ("derived", out[0].parent)):
        target = tmp_path / f"nii_{key}"
        target.mkdir()
        subprocess.run(
            [exe, "-z", "n", "-b", "n", "-f", key, "-o", str(target), str(folder)],
            capture_output=True,
            check=True,
            timeout=60,
        )
        (nifti,) = target.glob("*.nii")
        images[key] = nib.load(nifti)
    derived, source = images["derived"], images["source"]
    assert derived.shape == source.shape == (128, 128, 4)
    np.testing.assert_allclose(derived.affine, source.affine, atol=1e-4)
    np.testing.assert_array_equal(derived.get_fdata(), source.get_fdata())
    np.testing.assert_allclose(
        _corners(derived.affine, derived.shape),
        _corners(ct_series.affine, ct_series.volume.shape[1:]),
        atol=1e-3,
    )


def test_simpleitk_reads_same_geometry(tmp_path, ct_series):
    sitk = pytest.importorskip("SimpleITK")
    out = write_derived_series(ct_series, ct_series.volume, tmp_path / "out", **DERIVE)
    images = []
    for folder in (ct_series.paths[0].parent, out[0].parent):
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        images.append(reader.Execute())
    source, derived = images
    assert derived.GetSize() == source.GetSize() == (128, 128, 4)
    for getter in ("GetOrigin", "GetSpacing", "GetDirection"):
        np.testing.assert_allclose(getattr(derived, getter)(), getattr(source, getter)(), atol=1e-6)
    lps = np.diag([-1.0, -1.0, 1.0]) @ ct_series.affine[:3]  # our RAS affine in ITK's LPS
    direction = np.asarray(derived.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(direction * derived.GetSpacing(), lps[:, :3], atol=1e-4)
    np.testing.assert_allclose(derived.GetOrigin(), lps[:, 3], atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(derived), sitk.GetArrayFromImage(source))


# ----------------------------------------------------------------------------- files


def test_no_overwrite_atomic_and_deterministic(tmp_path, ct_series, caplog):
    caplog.set_level(logging.DEBUG)
    paths = write_derived_series(ct_series, ct_series.volume, tmp_path / "out", **DERIVE)
    before = [p.read_bytes() for p in paths]
    paths[0].unlink()
    with pytest.raises(FileExistsError, match="overwrite=True") as err:
        write_derived_series(ct_series, ct_series.volume + 1, tmp_path / "out", **DERIVE)
    assert not paths[0].exists()  # refused before writing anything
    assert [p.read_bytes() for p in paths[1:]] == before[1:]
    again = write_derived_series(
        ct_series, ct_series.volume, tmp_path / "out", overwrite=True, **DERIVE
    )
    assert again == paths and all(p.exists() for p in paths)
    assert sorted(p.name for p in paths[0].parent.iterdir()) == [p.name for p in paths]  # no temp
    other = write_derived_series(
        ct_series, ct_series.volume, tmp_path / "out", **{**DERIVE, "parameters": {"eta": 1}}
    )
    assert other[0].parent != paths[0].parent
    for text in (caplog.text, str(err.value)):
        assert PATIENT_NAME not in text and PATIENT_ID not in text


def test_refuses_to_write_in_source_folder(tmp_path, ct_series):
    folder = ct_series.paths[0].parent
    for out_dir in (folder, folder / "denoised"):
        with pytest.raises(ValueError, match="outside the input folder"):
            write_derived_series(ct_series, ct_series.volume, out_dir, **DERIVE)
    assert sorted(p.name for p in folder.iterdir()) == [p.name for p in ct_series.paths]


def test_file_names_come_only_from_uids(tmp_path):
    evil = "../../evil/..\\x"
    series = _slices(
        tmp_path / "src", n=2, SeriesDescription=evil, PatientName=evil, PatientID="/etc/passwd"
    )
    paths = write_derived_series(series, series.volume, tmp_path / "out", **DERIVE)
    names = [p.relative_to(tmp_path / "out").as_posix() for p in paths]
    assert all(re.fullmatch(r"[0-9]+(\.[0-9]+)*/\d{4}\.dcm", name) for name in names), names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]
    assert pydicom.dcmread(paths[0]).SeriesDescription == "../../evil/../x [medden]"


@pytest.mark.parametrize(
    "change,error,match",
    [
        ({"denoised": np.zeros((1, 2, 2, 1))}, ValueError, "shape of series.volume"),
        ({"denoised": "volume"}, TypeError, "numpy.ndarray or torch.Tensor"),
        ({"nan": True}, ValueError, "non-finite"),
        ({"transfer_syntax": "jpeg-baseline"}, ValueError, "never writes lossy"),
        ({"series_number": 1}, ValueError, "differ from the source"),
        ({"series_number": "2"}, TypeError, "series_number must be an int"),
        ({"description_suffix": "x" * 65}, ValueError, "at most 64"),
        ({"description_suffix": " a\\b"}, ValueError, "without backslashes"),
        ({"method": " "}, ValueError, "method must not be empty"),
        ({"parameters": [1]}, TypeError, "parameters must be a mapping"),
    ],
)
def test_bad_arguments(tmp_path, change, error, match):
    series = _testdata("CT_small.dcm")  # SeriesNumber 1
    denoised = series.volume.copy()
    if change.pop("nan", False):
        denoised[0, 0, 0, 0] = np.nan
    kwargs = {**DERIVE, "denoised": denoised, **change}
    with pytest.raises(error, match=match):
        write_derived_series(series, out_dir=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "a\\b", "x\x00", "tab\there", "x" * 256])
def test_a_folder_name_that_is_not_one_safe_component_is_refused(tmp_path, ct_series, name):
    with pytest.raises(ValueError, match="as a series folder name: it must be one path component"):
        write_derived_series(ct_series, ct_series.volume, tmp_path / "out", folder_name=lambda uid, n: name, **DERIVE)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.dcm"))


def test_folder_name_gets_the_new_uid_and_number(tmp_path, ct_series):
    seen = []
    name = "CT_ünïcode-ok"
    paths = write_derived_series(ct_series, ct_series.volume, tmp_path / "out",
                                 folder_name=lambda uid, number: seen.append((uid, number)) or name, **DERIVE)
    ds = pydicom.dcmread(paths[0])
    assert seen == [(ds.SeriesInstanceUID, ds.SeriesNumber)]
    assert {p.parent for p in paths} == {tmp_path / "out" / "CT_ünïcode-ok"}
