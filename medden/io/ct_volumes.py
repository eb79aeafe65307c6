"""Readers of the real CT volumes that package registries ship: held-out test volumes, never training data.

medden's installed samples hold no real CT volume (pydicom-data's CT files are single slices),
so the volume benchmark reads two that a user can install from a package registry:

===================== ====================================== ============================================
volume                install                                file
===================== ====================================== ============================================
head CT, 108 slices   ``apt-get install invesalius-examples`` ``/usr/share/doc/invesalius-examples/
256 x 256, 0.96 mm,   (Debian, GPL-2; the InVesalius sample   examples/Cranium.inv3``: an InVesalius
1.5 mm slices         "ProMED CT 0051")                       project (tar.gz: ``main.plist`` + raw int16)
chest CT, 61 slices   ``pip download --no-deps --no-binary    ``pyradiomics-3.0.1.tar.gz``:
512 x 512, 0.63 mm,   :all: pyradiomics==3.0.1`` (PyPI,       ``data/lung2_image.nrrd`` (gzip NRRD, HU)
5 mm slices           BSD-3; pyradiomics' test case)
===================== ====================================== ============================================

Both readers return ``((1, H, W, D) float32 HU, (row, column, slice) spacing in mm)``, slices
last in acquisition order, H along the image rows.
"""

from __future__ import annotations

import os
import plistlib
import tarfile
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["INVESALIUS_CRANIUM", "PYRADIOMICS_CHEST", "read_invesalius_project", "read_pyradiomics_ct"]

#: where Debian's invesalius-examples installs its head CT project
INVESALIUS_CRANIUM = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
#: the chest CT inside pyradiomics' source archive
PYRADIOMICS_CHEST = "lung2_image.nrrd"


def _member(archive: tarfile.TarFile, name: str, path: str | os.PathLike) -> tarfile.TarInfo:
    for member in archive.getmembers():
        if member.isfile() and member.name.rsplit("/", 1)[-1] == name:
            return member
    raise ValueError(f"{str(path)!r} holds no {name!r}; is it the right file?")


def read_invesalius_project(path: str | os.PathLike = INVESALIUS_CRANIUM) -> tuple[np.ndarray, tuple[float, ...]]:
    """The CT volume of an InVesalius project file (``.inv3``: a gzip tar of ``main.plist`` and a raw matrix).

    Returns:
        ``((1, H, W, D) float32 in HU, (row, column, slice) spacing mm)``.

    Raises:
        FileNotFoundError: no such file (install Debian's ``invesalius-examples``).
        ValueError: not an InVesalius project, not CT, or a matrix whose size disagrees with its shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist; install it with: apt-get install invesalius-examples.")
    try:
        with tarfile.open(path, "r:gz") as archive:
            meta = plistlib.load(archive.extractfile(_member(archive, "main.plist", path)))
            matrix = meta["matrix"]
            raw = archive.extractfile(_member(archive, matrix["filename"], path)).read()
    except (tarfile.TarError, plistlib.InvalidFileException, KeyError, OSError) as err:
        raise ValueError(f"{str(path)!r} is not an InVesalius project ({type(err).__name__}: {err}).") from err
    if meta.get("modality") != "CT":
        raise ValueError(f"{str(path)!r} holds modality {meta.get('modality')!r}, not CT.")
    dtype, shape = np.dtype(matrix["dtype"]), tuple(int(n) for n in matrix["shape"])
    if len(shape) != 3 or len(raw) != dtype.itemsize * int(np.prod(shape)):
        raise ValueError(f"{str(path)!r}: matrix of {len(raw)} bytes does not hold {matrix['dtype']} of shape {shape}.")
    volume = np.frombuffer(raw, dtype).reshape(shape)  # (slices, rows, columns)
    x, y, z = (float(s) for s in meta["spacing"])
    return np.ascontiguousarray(volume.transpose(1, 2, 0)[None], np.float32), (y, x, z)


def read_pyradiomics_ct(path: str | os.PathLike, name: str = PYRADIOMICS_CHEST) -> tuple[np.ndarray, tuple[float, ...]]:
    """A CT volume in NRRD, given as the ``.nrrd`` file or as pyradiomics' source archive holding ``data/<name>``.

    Returns:
        ``((1, H, W, D) float32 in HU, (row, column, slice) spacing mm)``.

    Raises:
        FileNotFoundError: no such file (``pip download --no-deps --no-binary :all: pyradiomics==3.0.1``).
        ValueError: the archive has no ``name``, or the file is not a 3D scalar image.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist; get pyradiomics' source archive with: pip download "
                                "--no-deps --no-binary :all: pyradiomics==3.0.1")
    with tempfile.TemporaryDirectory() as folder:
        image_path = path
        if path.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(path, "r:gz") as archive:
                image_path = Path(folder) / name
                image_path.write_bytes(archive.extractfile(_member(archive, name, path)).read())
        try:
            image = sitk.ReadImage(str(image_path))
        except RuntimeError as err:
            raise ValueError(f"{str(path)!r} could not be read as an image: {err}") from err
        volume = sitk.GetArrayFromImage(image)  # (slices, rows, columns)
    if volume.ndim != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{str(path)!r} is not a 3D scalar volume (array shape {volume.shape}).")
    x, y, z = (float(s) for s in image.GetSpacing())
    return np.ascontiguousarray(volume.transpose(1, 2, 0)[None], np.float32), (y, x, z)
