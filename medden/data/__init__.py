"""Data: sample images shipped by installed packages, and datasets (splits and ``Dataset`` classes).

Submodules: ``samples`` (installed sample images), ``slices`` (MNI152 slabs, IXI T1),
``modalities`` (the general model's mixed images), ``datasets`` (corrupted and undersampled
datasets), ``fastmri`` (single-coil ``.h5`` folders split by volume), ``mri`` (k-space slices),
``paired`` (real Noise2Noise pairs), ``jsrt`` (JSRT chest radiograph folders and their split),
``camelyon`` (histology patch folders and the embedded histology default), ``unpaired``
(disjoint clean and noisy sets). The file formats themselves are read and written by
:mod:`medden.io` (``io.fastmri``, ``io.jsrt``, ``io.tiles``).
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
