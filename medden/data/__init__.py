"""Data: sample images shipped by installed packages, and readers for real datasets.

Submodules: ``samples`` (installed sample images), ``slices`` (MNI152 slabs, IXI T1),
``modalities`` (the general model's mixed images), ``datasets`` (corrupted and undersampled
datasets), ``fastmri`` (single-coil ``.h5``), ``mri`` (k-space slices), ``paired`` (real
Noise2Noise pairs), ``jsrt`` (raw JSRT chest radiographs), ``camelyon`` (histology patch folders
and the embedded histology default), ``unpaired`` (disjoint clean and noisy sets).
"""

from medden.data.samples import (
    Sample,
    export_samples,
    get_sample,
    list_samples,
    load_sample,
    sample_path,
)

__all__ = ["Sample", "export_samples", "get_sample", "list_samples", "load_sample", "sample_path"]
