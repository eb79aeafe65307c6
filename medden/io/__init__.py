"""Every file format in and out: one way in, one rule for the way out.

* :func:`identify_input` (:mod:`medden.io.inputs`): what an input path holds (DICOM folder or
  file, NIfTI file or folder, PNG/TIFF image or folder), by content, with a clear error for
  anything else.
* :func:`check_output_dir` (:mod:`medden.io.files`): the one rule for a folder of outputs: it
  is not the input folder, nor inside it, nor around the input. Every file is written
  atomically (:func:`medden.io.files.atomic_write`).
* Formats: DICOM folders and derived series (``dicom_*``, ``derived_series``), NIfTI
  (``nifti``), RGB tiles (``tiles``), fastMRI single-coil ``.h5`` (``fastmri``), JSRT raw
  ``.IMG`` (``jsrt``), checkpoints (``checkpoint``).

Images are channel-first ``(C, H, W[, D])`` (see :mod:`medden`). Depends only on
:mod:`medden.core`.
"""

from medden.io.checkpoint import CheckpointError, load_checkpoint, load_network_weights, publish_model, save_checkpoint
from medden.io.derived_series import write_derived_series
from medden.io.dicom_folder import (
    DicomSeriesPlan,
    discover_dicom_files,
    load_dicom_series,
    plan_dicom_series,
    read_dicom_folder,
)
from medden.io.dicom_series import dicom_affine, read_dicom_image, write_volume_as_series
from medden.io.dicom_types import DicomSeries, SkippedFile
from medden.io.files import check_output_dir
from medden.io.inputs import InputKind, InputSource, identify_input
from medden.io.nifti import read_nifti, write_nifti

__all__ = [
    "CheckpointError",
    "load_checkpoint",
    "load_network_weights",
    "publish_model",
    "save_checkpoint",
    "DicomSeries",
    "DicomSeriesPlan",
    "InputKind",
    "InputSource",
    "SkippedFile",
    "check_output_dir",
    "dicom_affine",
    "discover_dicom_files",
    "identify_input",
    "load_dicom_series",
    "plan_dicom_series",
    "read_dicom_folder",
    "read_dicom_image",
    "read_nifti",
    "write_derived_series",
    "write_nifti",
    "write_volume_as_series",
]
