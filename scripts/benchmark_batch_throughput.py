"""Benchmark: `medden denoise` throughput end to end against the network's pure forward time,
and peak memory for a 512 x 512 x 300 series.

Builds a DICOM folder from the installed samples (the MNI152 T1 template written as MR series,
two copies with their own UIDs: 378 slices), then measures:

* end to end: ``denoise_path`` on the folder (discovery, decoding, inference, derived-series
  writing, report), slices per second;
* forward only: the same bundle's inferer on the already-decoded volumes, slices per second;
* their ratio, the pipeline overhead (target: under 1.3x);
* peak resident memory of a separate process denoising one 512 x 512 x 300 series (target:
  under 4 GB).

Writes docs/results/batch_throughput.md and .json. Run from the repository root:

    python scripts/benchmark_batch_throughput.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path("docs/results")
BUNDLE = Path("bundles/general_denoiser")  # the default of medden denoise

_MEMORY_PROBE = """
import resource, sys
from medden.apps.batch_denoise import denoise_path
from medden.bundle import load_bundle
report = denoise_path(sys.argv[1], sys.argv[2], load_bundle(sys.argv[3], device="cpu"))
assert report["processed"] == 1, report
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
"""


def build_folder(root: Path) -> int:
    from medden.data.samples import load_sample
    from medden.data.slices import scale_to_unit
    from medden.io import write_volume_as_series

    template = load_sample("mni152")
    volume = scale_to_unit(template.numpy()[0])[None]
    for copy in range(2):
        write_volume_as_series(volume, template.affine.numpy(), root / f"mni_{copy}", modality="MR",
                               body_part="BRAIN", series_description=f"benchmark copy {copy}")
    return 2 * volume.shape[-1]


def build_large(root: Path, shape=(512, 512, 300)) -> None:
    from medden.io import write_volume_as_series

    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    phantom = (np.hypot(x, y) < 0.8).astype(np.float32) * 500
    volume = np.repeat(phantom[None, :, :, None], shape[2], axis=-1)
    volume += rng.normal(0, 20, volume.shape).astype(np.float32)
    write_volume_as_series(volume, np.diag([0.7, 0.7, 1.0, 1.0]), root, modality="CT",
                           series_description="benchmark 512x512x300")


def main() -> None:
    from medden.apps.batch_denoise import denoise_path
    from medden.bundle import load_bundle
    from medden.io import read_dicom_folder

    torch.set_num_threads(os.cpu_count() or 1)
    work = Path(tempfile.mkdtemp(prefix="medden-throughput-"))
    n_slices = build_folder(work / "in")
    bundle = load_bundle(BUNDLE, device="cpu")

    started = time.perf_counter()
    report = denoise_path(work / "in", work / "out", bundle, resume=False)
    end_to_end = time.perf_counter() - started
    assert report["processed"] == 2, report

    series, _ = read_dicom_folder(work / "in")
    bundle.denoise(series[0].volume[..., :4])  # warm-up
    started = time.perf_counter()
    for s in series:
        bundle.denoise(s.volume)
    forward = time.perf_counter() - started

    build_large(work / "large")
    probe = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(work / "large"), str(work / "large_out"),
                            str(BUNDLE)], capture_output=True, text=True, check=True)
    peak_gib = int(probe.stdout.strip().splitlines()[-1]) / 2**20

    result = {"slices": n_slices, "end_to_end_s": end_to_end, "forward_s": forward,
              "end_to_end_slices_per_s": n_slices / end_to_end, "forward_slices_per_s": n_slices / forward,
              "overhead_ratio": end_to_end / forward, "peak_rss_gib_512x512x300": peak_gib,
              "slice_shape": list(series[0].volume.shape[1:3]), "cpus": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "bundle": bundle.name}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "batch_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (RESULTS / "batch_throughput.md").write_text(text)
    print(text)


def markdown(result: dict) -> str:
    """The results page, from the JSON alone."""
    peak_gib = result["peak_rss_gib_512x512x300"]
    lines = [
        "# `medden denoise` throughput and memory",
        "",
        "Written by `scripts/benchmark_batch_throughput.py`; do not edit by hand.",
        "",
        f"Folder: two MR series of the MNI152 T1 template, {result['slices']} slices of "
        f"{result['slice_shape'][0]} x {result['slice_shape'][1]}, bundle `{result['bundle']}`, "
        f"{result['cpus']} CPU cores, {result['torch_threads']} torch threads.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| end to end (read, denoise, write derived series, report) | {result['end_to_end_slices_per_s']:.1f} "
        f"slices/s ({result['end_to_end_s']:.1f} s) |",
        f"| forward only (inferer on decoded volumes) | {result['forward_slices_per_s']:.1f} slices/s "
        f"({result['forward_s']:.1f} s) |",
        f"| overhead, end to end / forward (target < 1.3) | {result['overhead_ratio']:.2f} "
        f"({'met' if result['overhead_ratio'] < 1.3 else 'NOT met'}) |",
        f"| peak resident memory, one 512 x 512 x 300 series (target < 4 GiB) | {peak_gib:.2f} GiB "
        f"({'met' if peak_gib < 4 else 'NOT met'}) |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
