"""Data: sample images shipped by installed packages (dataset readers will join them)."""

from medden.data.samples import (
    Sample,
    export_samples,
    get_sample,
    list_samples,
    load_sample,
    sample_path,
)

__all__ = ["Sample", "export_samples", "get_sample", "list_samples", "load_sample", "sample_path"]
