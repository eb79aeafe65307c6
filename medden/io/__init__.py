"""Reading and writing medical image files (NIfTI, DICOM). Depends on no other medden layer."""

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
from medden.io.nifti import read_nifti, write_nifti

__all__ = [
    "CheckpointError",
    "load_checkpoint",
    "load_network_weights",
    "publish_model",
    "save_checkpoint",
    "DicomSeries",
    "DicomSeriesPlan",
    "SkippedFile",
    "dicom_affine",
    "discover_dicom_files",
    "load_dicom_series",
    "plan_dicom_series",
    "read_dicom_folder",
    "read_dicom_image",
    "read_nifti",
    "write_derived_series",
    "write_nifti",
    "write_volume_as_series",
]
