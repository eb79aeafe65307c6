"""Reading and writing medical image files (NIfTI, DICOM). Depends on no other medden layer."""

from medden.io.checkpoint import CheckpointError, load_checkpoint, load_network_weights, publish_model, save_checkpoint
from medden.io.dicom_series import dicom_affine, read_dicom_image, write_volume_as_series
from medden.io.nifti import read_nifti, write_nifti

__all__ = [
    "CheckpointError",
    "load_checkpoint",
    "load_network_weights",
    "publish_model",
    "save_checkpoint",
    "dicom_affine",
    "read_dicom_image",
    "read_nifti",
    "write_nifti",
    "write_volume_as_series",
]
