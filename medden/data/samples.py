"""Real medical images that installed packages ship, loadable without any download.

The samples come from ``pydicom`` (a core dependency) and from the packages of the
``samples`` extra (``pip install "medden[samples]"``): ``pydicom-data``, ``nilearn`` and
``scikit-image``. Optional packages are imported only when a sample needs them.

Every sample loads as a ``monai.data.MetaTensor``, float32, channel-first ``(C, H, W)`` or
``(C, H, W, D)`` with spatial axes in MONAI/ITK index order (see :mod:`medden`: ``H`` runs
along a DICOM row, so a DICOM image of ``Rows x Columns = 1955 x 1841`` loads as
``(1, 1841, 1955)``). Values are in modality units: DICOM samples have the modality
LUT applied (CT in Hounsfield units), MONOCHROME1 is inverted so higher is brighter, the
MNI template lies in [0, 1] and the histology image is RGB in [0, 255].

Example:
    >>> from medden.data import list_samples, load_sample
    >>> img = load_sample("CT_small")
    >>> tuple(img.shape), img.dtype, img.meta["modality"]
    ((1, 128, 128), torch.float32, 'CT')
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medden.io.files import atomic_write, prepare_dir
from medden.io.dicom_series import read_dicom_image, write_volume_as_series
from medden.io.nifti import write_nifti

__all__ = ["Sample", "export_samples", "get_sample", "list_samples", "load_sample", "sample_path"]


@dataclass(frozen=True)
class Sample:
    """Description of one sample image.

    Attributes:
        name: the name to pass to :func:`load_sample`.
        modality: DICOM modality code (``"CT"``, ``"MR"``, ``"CR"``, ``"SM"``).
        description: what the image shows.
        package: the pip distribution that ships it.
        module: the import name of that distribution, used to check it is installed.
        extra: the medden extra that installs ``package``, or None for a core dependency.
        spatial_dims: 2 or 3.
        shape: the channel-first shape :func:`load_sample` returns.
        filename: the DICOM file name inside the package, None for non-DICOM samples.
        body_part: DICOM BodyPartExamined used when the sample is written as a series.
    """

    name: str
    modality: str
    description: str
    package: str
    module: str
    extra: str | None
    spatial_dims: int
    shape: tuple[int, ...]
    filename: str | None = None
    body_part: str | None = None

    @property
    def installed(self) -> bool:
        """Whether the package that ships the sample can be imported."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    @property
    def install_hint(self) -> str:
        """The pip command that installs the sample's package."""
        return (
            f'pip install "medden[{self.extra}]"' if self.extra else f"pip install {self.package}"
        )


_PYDICOM_DATA = {"package": "pydicom-data", "module": "data_store", "extra": "samples"}
_PYDICOM = {"package": "pydicom", "module": "pydicom", "extra": None}


def _dicom(name: str, modality: str, description: str, shape: tuple, source: dict) -> Sample:
    dims, filename = len(shape) - 1, f"{name}.dcm"
    return Sample(
        name, modality, description, **source, spatial_dims=dims, shape=shape, filename=filename
    )


# fmt: off
_SAMPLES = {s.name: s for s in (
    _dicom("RG1_UNCR", "CR", "chest radiograph, MONOCHROME1", (1, 1841, 1955), _PYDICOM_DATA),
    _dicom("MR2_UNCR", "MR", "shoulder MR slice", (1, 1024, 1024), _PYDICOM_DATA),
    _dicom("693_UNCR", "CT", "head CT slice in HU", (1, 512, 512), _PYDICOM_DATA),
    _dicom("emri_small", "MR", "enhanced MR, 10 frames", (1, 64, 64, 10), _PYDICOM_DATA),
    _dicom("MR_small", "MR", "small MR slice", (1, 64, 64), _PYDICOM),
    _dicom("CT_small", "CT", "small CT slice in HU", (1, 128, 128), _PYDICOM),
    Sample("mni152", "MR", "MNI152 2009a T1 brain template, 1 mm, in [0, 1]", "nilearn",
           "nilearn", "samples", 3, (1, 197, 233, 189), body_part="BRAIN"),
    Sample("immunohistochemistry", "SM", "IHC-stained colon histology, RGB in [0, 255]",
           "scikit-image", "skimage", "samples", 2, (3, 512, 512), body_part="COLON"),
)}
# fmt: on


def list_samples() -> list[Sample]:
    """All known samples, installed or not (check ``Sample.installed``)."""
    return list(_SAMPLES.values())


def get_sample(name: str) -> Sample:
    """The :class:`Sample` called ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    try:
        return _SAMPLES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown sample {name!r}; choose one of: {', '.join(_SAMPLES)}."
        ) from None


def _require(sample: Sample):
    """Import the sample's package, or raise ModuleNotFoundError saying how to install it."""
    try:
        return importlib.import_module(sample.module)
    except ImportError as err:
        raise ModuleNotFoundError(
            f"sample {sample.name!r} is shipped by the package {sample.package!r}, which is not "
            f"installed; install it with: {sample.install_hint}"
        ) from err


def sample_path(name: str) -> Path:
    """Path of a DICOM sample's file inside its package (never modify it).

    Raises:
        ValueError: unknown name, or a sample that is not a DICOM file.
        ModuleNotFoundError: the package that ships it is not installed.
    """
    sample = get_sample(name)
    if sample.filename is None:
        dicom_names = [s.name for s in _SAMPLES.values() if s.filename]
        raise ValueError(
            f"sample {name!r} is not a DICOM file; use load_sample({name!r}), or one of "
            f"{', '.join(dicom_names)}."
        )
    _require(sample)
    from pydicom.data import get_testdata_file

    path = get_testdata_file(sample.filename, download=False)  # never download at run time
    if path is None:
        raise ModuleNotFoundError(
            f"{sample.filename} was not found in the installed {sample.package!r}; "
            f"reinstall it with: {sample.install_hint}"
        )
    return Path(path)


def load_sample(name: str):
    """Load a sample image in modality units.

    Args:
        name: one of ``[s.name for s in list_samples()]``.

    Returns:
        ``monai.data.MetaTensor``, float32, shape ``Sample.shape`` (``(C, H, W)`` or
        ``(C, H, W, D)``, see the module docstring). Meta: ``affine`` (4x4 RAS, mm; from
        the DICOM geometry when present, else pixel spacing, else identity), ``modality``,
        ``sample_name``, ``filename_or_obj``, ``space``.

    Raises:
        ValueError: unknown name.
        ModuleNotFoundError: the package that ships the sample is not installed.
    """
    from monai.data import MetaTensor

    sample = get_sample(name)
    if sample.filename is not None:
        img = read_dicom_image(sample_path(name))
    elif sample.module == "nilearn":
        _require(sample)
        from nilearn.datasets import load_mni152_template

        nii = load_mni152_template(resolution=1)
        data = np.asarray(nii.get_fdata(dtype=np.float32))[None]
        source = nii.get_filename() or "nilearn.datasets.load_mni152_template(resolution=1)"
        img = MetaTensor(
            data,
            affine=torch.as_tensor(nii.affine, dtype=torch.float64),
            meta={"filename_or_obj": source},
        )
    else:
        _require(sample)
        from skimage import data as skdata

        rgb = skdata.immunohistochemistry().astype(np.float32)  # (rows, columns, 3)
        data = np.ascontiguousarray(rgb.transpose(2, 1, 0))
        img = MetaTensor(
            data,
            affine=torch.eye(4, dtype=torch.float64),
            meta={"filename_or_obj": "skimage.data.immunohistochemistry()"},
        )
    img.meta.update(modality=sample.modality, sample_name=sample.name, space="RAS")
    return img


def export_samples(
    out_dir: str | os.PathLike, names: list[str] | None = None, *, overwrite: bool = False
) -> dict[str, list[Path]]:
    """Write samples as NIfTI and as DICOM under ``out_dir``.

    ``out_dir/nifti/<name>.nii.gz`` holds the loaded image with its affine.
    ``out_dir/dicom/<name>/`` holds, for DICOM samples, a byte-for-byte copy of the package's
    file, and for the others a series written by
    :func:`medden.io.dicom_series.write_volume_as_series`. All writes are atomic and the
    package files are only read.

    Args:
        out_dir: output folder; created if missing.
        names: samples to export; all installed ones if None.
        overwrite: replace files left by an earlier export instead of raising.

    Returns:
        For each exported name, the paths written (the NIfTI file first).

    Raises:
        ValueError: unknown name.
        NotADirectoryError: ``out_dir`` exists and is a file.
        FileExistsError: an output exists and ``overwrite`` is False.
        ModuleNotFoundError: a requested sample's package is not installed.
    """
    samples = (
        [get_sample(n) for n in names] if names else [s for s in list_samples() if s.installed]
    )
    out_dir = prepare_dir(out_dir)
    nifti_dir = prepare_dir(out_dir / "nifti")
    written = {}
    for sample in samples:
        img = load_sample(sample.name)
        paths = [write_nifti(img, nifti_dir / f"{sample.name}.nii.gz", overwrite=overwrite)]
        series_dir = prepare_dir(out_dir / "dicom" / sample.name)
        if sample.filename is not None:
            paths.append(
                _copy_file(sample_path(sample.name), series_dir / sample.filename, overwrite)
            )
        else:
            volume = img if sample.spatial_dims == 3 else img[..., None]
            paths += write_volume_as_series(
                volume,
                img.affine,
                series_dir,
                modality=sample.modality,
                body_part=sample.body_part,
                series_description=f"medden sample {sample.name}",
                overwrite=overwrite,
            )
        written[sample.name] = paths
    return written


def _copy_file(source: Path, dest: Path, overwrite: bool) -> Path:
    if dest.exists() and os.path.samefile(source, dest):
        raise ValueError(f"refusing to overwrite the input file {str(source)!r} with itself.")
    return atomic_write(dest, lambda tmp: shutil.copyfile(source, tmp), overwrite=overwrite)
