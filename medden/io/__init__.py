"""Reading and writing medical image files (NIfTI, DICOM). Depends on no other medden layer."""

from medden.io.dicom_series import dicom_affine, read_dicom_image, write_volume_as_series
from medden.io.nifti import read_nifti, write_nifti

__all__ = [
    "dicom_affine",
    "read_dicom_image",
    "read_nifti",
    "write_nifti",
    "write_volume_as_series",
]
