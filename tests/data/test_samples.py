"""Tests for medden.data.samples: listing, loading in modality units, export round trip."""

import doctest
import sys

import numpy as np
import pydicom
import pytest
import torch

import medden.data.samples as samples_module
from medden.data import export_samples, get_sample, list_samples, load_sample, sample_path
from medden.io import read_nifti

SAMPLES = {s.name: s for s in list_samples()}


def _installed(name):
    sample = SAMPLES[name]
    return pytest.param(
        name, marks=pytest.mark.skipif(not sample.installed, reason=f"needs {sample.install_hint}")
    )


def _raw(name):
    """The stored pixels of a DICOM sample in loaded axis order (column, row[, frame])."""
    pixels = pydicom.dcmread(sample_path(name)).pixel_array.astype(np.float64)
    return pixels.T if pixels.ndim == 2 else pixels.transpose(2, 1, 0)


def test_registry_is_consistent():
    assert len(SAMPLES) == 8 and {"CT_small", "MR_small", "mni152", "immunohistochemistry"} <= set(
        SAMPLES
    )
    for s in SAMPLES.values():
        assert len(s.shape) == s.spatial_dims + 1 and s.shape[0] in (1, 3)
        assert (s.extra is None) == (s.package == "pydicom")
    with pytest.raises(AttributeError):
        SAMPLES["CT_small"].name = "other"  # frozen


@pytest.mark.parametrize("name", [_installed(n) for n in SAMPLES])
def test_load_every_sample(name):
    sample, img = SAMPLES[name], load_sample(name)
    assert tuple(img.shape) == sample.shape and img.dtype == torch.float32
    assert torch.isfinite(img).all()
    assert img.meta["modality"] == sample.modality and img.meta["sample_name"] == name
    assert img.meta["filename_or_obj"]
    affine = img.affine.numpy()
    assert affine.shape == (4, 4) and np.all(affine[3] == [0, 0, 0, 1])
    if sample.filename is not None:
        ds = pydicom.dcmread(sample_path(name), stop_before_pixels=True)
        spacing = [float(v) for v in ds.get("PixelSpacing", [0, 0])]
        expected = spacing[::-1] if min(spacing) > 0 else [1.0, 1.0]  # (column, row) spacing
        np.testing.assert_allclose(np.linalg.norm(affine[:3, :2], axis=0), expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["CT_small", _installed("693_UNCR")])
def test_ct_is_in_hounsfield_units(name):
    img = load_sample(name)[0].numpy()
    np.testing.assert_array_equal(img, _raw(name) - 1024)  # RescaleSlope 1, RescaleIntercept -1024
    if name == "693_UNCR":  # head CT: inside the field of view (> -2000), air is at -1000 HU
        assert -1010 <= np.percentile(img[img > -2000], 10) <= -990


@pytest.mark.skipif(not SAMPLES["MR2_UNCR"].installed, reason="needs pydicom-data")
def test_mr_rescale_is_applied():
    ds = pydicom.dcmread(sample_path("MR2_UNCR"), stop_before_pixels=True)
    expected = _raw("MR2_UNCR") * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(load_sample("MR2_UNCR")[0].numpy(), expected, rtol=1e-6)


@pytest.mark.skipif(not SAMPLES["RG1_UNCR"].installed, reason="needs pydicom-data")
def test_monochrome1_is_inverted_within_stored_range():
    img = load_sample("RG1_UNCR")
    np.testing.assert_array_equal(img[0].numpy(), 2**15 - 1 - _raw("RG1_UNCR"))  # BitsStored 15
    np.testing.assert_array_equal(img.affine.numpy(), np.eye(4))  # PixelSpacing is 0\0


@pytest.mark.skipif(not SAMPLES["emri_small"].installed, reason="needs pydicom-data")
def test_multiframe_frames_go_last():
    np.testing.assert_array_equal(load_sample("emri_small")[0].numpy(), _raw("emri_small"))


@pytest.mark.skipif(not SAMPLES["immunohistochemistry"].installed, reason="needs scikit-image")
def test_histology_is_rgb_channel_first():
    from skimage import data

    img = load_sample("immunohistochemistry")
    np.testing.assert_array_equal(img.numpy(), data.immunohistochemistry().transpose(2, 1, 0))


@pytest.mark.skipif(not SAMPLES["mni152"].installed, reason="needs nilearn")
def test_mni_template_keeps_its_affine():
    img = load_sample("mni152")
    assert 0 <= img.min() and img.max() <= 1
    np.testing.assert_array_equal(img.affine.numpy()[:3, :3], np.eye(3))


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown sample 'CT_big'; choose one of: .*CT_small"):
        load_sample("CT_big")
    with pytest.raises(ValueError, match="is not a DICOM file"):
        sample_path("mni152")


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("mni152", "nilearn"),
        ("immunohistochemistry", "skimage"),
        ("CT_small", "pydicom"),
        ("693_UNCR", "data_store"),
    ],
)
def test_missing_package_names_the_install_command(monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    hint = 'pip install "medden\\[samples\\]"' if module != "pydicom" else "pip install pydicom"
    assert not get_sample(name).installed
    with pytest.raises(ModuleNotFoundError, match=f"{get_sample(name).package}.*{hint}"):
        load_sample(name)


def test_export_round_trip(tmp_path, dciodvfy):
    names = ["MR_small", "CT_small"] + (
        ["immunohistochemistry"] if SAMPLES["immunohistochemistry"].installed else []
    )
    written = export_samples(tmp_path, names)
    assert list(written) == names
    for name in names:
        img, nifti = load_sample(name), read_nifti(tmp_path / "nifti" / f"{name}.nii.gz")
        np.testing.assert_array_equal(nifti.numpy(), img.numpy())
        np.testing.assert_allclose(nifti.affine.numpy(), img.affine.numpy(), atol=1e-5)
    for name in ["MR_small", "CT_small"]:  # DICOM samples: byte-for-byte copies
        copy = tmp_path / "dicom" / name / f"{name}.dcm"
        assert written[name] == [tmp_path / "nifti" / f"{name}.nii.gz", copy]
        assert copy.read_bytes() == sample_path(name).read_bytes()
    if "immunohistochemistry" in names:
        (series,) = written["immunohistochemistry"][1:]
        assert pydicom.dcmread(series).PhotometricInterpretation == "RGB"
        assert dciodvfy(series) == []
    with pytest.raises(FileExistsError):
        export_samples(tmp_path, ["CT_small"])
    assert export_samples(tmp_path, ["CT_small"], overwrite=True)


def test_export_never_copies_a_file_onto_itself(tmp_path):
    source = tmp_path / "a.dcm"
    source.write_bytes(b"data")
    with pytest.raises(ValueError, match="refusing to overwrite the input"):
        samples_module._copy_file(source, source, overwrite=True)
    assert source.read_bytes() == b"data"


def test_docstring_examples_run():
    assert doctest.testmod(samples_module, raise_on_error=False).failed == 0


def test_block_averaging_drops_partial_edge_blocks_instead_of_zero_padding():
    from medden.data.modalities import downsample

    plane = np.full((9, 11), 5.0, np.float32)  # 9 x 11 is not a multiple of 4 either way
    small = downsample(plane, 4)
    assert small.shape == (2, 2)
    np.testing.assert_allclose(small, 5.0)  # a zero-padded edge block would average below 5


@pytest.mark.skipif(not SAMPLES["RG1_UNCR"].installed, reason="needs pydicom-data")
def test_embedded_chest_radiograph_has_no_dark_edge_line():
    from medden.data.modalities import sample_plane

    plane = sample_plane("RG1_UNCR.dcm", 4)[0]
    assert plane.shape == (1841 // 4, 1955 // 4)
    for edge in (plane[0], plane[-1], plane[:, 0], plane[:, -1]):
        assert edge.mean() > 0.2
