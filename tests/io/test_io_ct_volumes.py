"""Readers of the registry-shipped CT volumes, on tiny files written in the exact formats."""

import io
import plistlib
import tarfile

import numpy as np
import pytest

from medden.io.ct_volumes import read_invesalius_project, read_pyradiomics_ct


def _add(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    archive.addfile(info, io.BytesIO(payload))


def _volume(shape=(3, 4, 5)):
    """(slices, rows, columns) int16 whose every voxel encodes its own position."""
    k, r, c = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return (100 * k + 10 * r + c - 1000).astype(np.int16)


def _inv3(path, volume, modality="CT", raw=None):
    meta = {"matrix": {"dtype": "int16", "filename": "matrix.dat", "shape": list(volume.shape)},
            "modality": modality, "name": "test", "spacing": [0.5, 0.75, 2.0]}
    with tarfile.open(path, "w:gz") as archive:
        _add(archive, "tmpabc/main.plist", plistlib.dumps(meta))
        _add(archive, "tmpabc/matrix.dat", volume.tobytes() if raw is None else raw)
    return path


def test_invesalius_project_reads_slices_last_with_row_column_slice_spacing(tmp_path):
    volume = _volume()
    image, spacing = read_invesalius_project(_inv3(tmp_path / "x.inv3", volume))
    assert image.shape == (1, 4, 5, 3) and image.dtype == np.float32
    np.testing.assert_array_equal(image[0, 2, 3, 1], volume[1, 2, 3])  # slice 1, row 2, column 3
    np.testing.assert_array_equal(image[0], volume.transpose(1, 2, 0))
    assert spacing == (0.75, 0.5, 2.0)  # plist spacing is (x, y, z): columns, rows, slices


def test_invesalius_project_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install invesalius-examples"):
        read_invesalius_project(tmp_path / "missing.inv3")
    with pytest.raises(ValueError, match="not CT"):
        read_invesalius_project(_inv3(tmp_path / "mr.inv3", _volume(), modality="MR"))
    with pytest.raises(ValueError, match="does not hold int16"):
        read_invesalius_project(_inv3(tmp_path / "short.inv3", _volume(), raw=b"\0" * 10))
    (tmp_path / "plain.inv3").write_bytes(b"not a tar")
    with pytest.raises(ValueError, match="not an InVesalius project"):
        read_invesalius_project(tmp_path / "plain.inv3")


def _nrrd(path, volume):
    sitk = pytest.importorskip("SimpleITK")
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing((0.5, 0.75, 5.0))
    sitk.WriteImage(image, str(path), True)
    return path


def test_pyradiomics_ct_reads_the_nrrd_or_the_source_archive(tmp_path):
    volume = _volume()
    nrrd = _nrrd(tmp_path / "lung2_image.nrrd", volume)
    image, spacing = read_pyradiomics_ct(nrrd)
    np.testing.assert_array_equal(image[0], volume.transpose(1, 2, 0))
    assert spacing == (0.75, 0.5, 5.0)
    archive_path = tmp_path / "pyradiomics-3.0.1.tar.gz"
    with tarfile.open(archive_path, "w:gz") as archive:
        _add(archive, "pyradiomics-3.0.1/data/lung1_image.nrrd", b"other")
        _add(archive, "pyradiomics-3.0.1/data/lung2_image.nrrd", nrrd.read_bytes())
    from_archive, _ = read_pyradiomics_ct(archive_path)
    np.testing.assert_array_equal(from_archive, image)
    with pytest.raises(ValueError, match="holds no 'lung3_image.nrrd'"):
        read_pyradiomics_ct(archive_path, name="lung3_image.nrrd")
    with pytest.raises(FileNotFoundError, match="pip download"):
        read_pyradiomics_ct(tmp_path / "none.tar.gz")
