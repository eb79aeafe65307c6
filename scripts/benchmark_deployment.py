"""Benchmark: every deployment backend of every shipped image bundle, on the CPU.

For each bundle a copy is exported with ``medden export`` (TorchScript, ONNX, int8 ONNX), then
for each backend (:data:`medden.bundle.exports.BACKENDS`):

* size on disk of what the backend loads (``model.pt`` for torch);
* milliseconds per 256 x 256 and per 512 x 512 slice through the whole ``medden denoise``
  path of that bundle (intensity scaling, its inferer with windows / refinement, the network),
  median of repeated runs after a warm-up, backends interleaved run by run, same process,
  same thread count (all cores);
* PSNR on the benchmark's held-out slices (:func:`medden.data.modalities.benchmark_images`,
  the bundle's own noise at the benchmark level), and its change against the float PyTorch
  model.

It then names, for the default bundle, the fastest backend losing under 0.1 dB, which is what
``medden denoise --backend auto`` must pick (the script says so if it does not).

Writes docs/results/deployment.md and deployment.json. Run from the repository root:

    python scripts/benchmark_deployment.py [--bundles general_denoiser ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medden.core import protocols

RESULTS = Path("docs/results")
#: the benchmark noise each bundle was trained for (the default bundle is scored on two)
BUNDLE_NOISES = {
    "general_denoiser": ("gaussian", "poisson"),
    "n2n_image": ("gaussian",),
    "supervised_baseline": ("gaussian",),
    "flow_prior_unpaired": ("gaussian",),
    "recorruption_ixi_bernoulli": ("bernoulli",),
    "recorruption_jsrt_poisson": ("poisson",),
    "recorruption_camelyon_gaussian": ("gaussian",),
    "vae_direct_denoiser": ("poisson",),
}
SIZES = (256, 512)
MAX_PSNR_LOSS_DB = 0.1


def interleaved_ms(denoisers: dict, image: np.ndarray, budget_s: float = 30.0, min_rounds: int = 5,
                   max_rounds: int = 25) -> dict[str, float]:
    """Median wall time of ``denoiser(image)`` in ms for every denoiser, after one warm-up call each.

    The backends take turns, one call each per round, so a change in the machine's load
    touches them all alike; rounds go on until ``budget_s`` is spent (at least ``min_rounds``).
    """
    for denoiser in denoisers.values():
        denoiser(image)
    runs: dict[str, list[float]] = {name: [] for name in denoisers}
    started = time.perf_counter()
    for k in range(max_rounds):
        if k >= min_rounds and time.perf_counter() - started > budget_s:
            break
        for name, denoiser in denoisers.items():
            t0 = time.perf_counter()
            denoiser(image)
            runs[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(times) for name, times in runs.items()}


def cpu_steal_fraction() -> tuple[int, int]:
    """``(steal, total)`` jiffies of all CPUs so far (/proc/stat): time the hypervisor gave to other guests."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[7], sum(fields)


def timing_images(channels: int) -> dict[int, np.ndarray]:
    """A real noisy slice per size: the head CT (512 x 512; its centre 256 x 256), or the IHC
    image in RGB for 3-channel bundles; Gaussian noise sigma 20/255."""
    from medden.data.modalities import centre_window, histology_rgb, sample_plane

    full = histology_rgb() if channels == 3 else sample_plane("693_UNCR.dcm")
    rng = np.random.default_rng(0)
    images = {}
    for size in SIZES:
        clean = centre_window(full, size)
        images[size] = (clean + rng.normal(0, protocols.RECORRUPTION_GAUSSIAN_SIGMA_VAL, clean.shape)).astype(np.float32)
    return images


def cases_for(bundle: str, channels: int) -> list:
    from medden.apps.benchmark.cases import make_case
    from medden.data.modalities import benchmark_images

    images = [item for item in benchmark_images(3) if (item.image.shape[0] == 3) == (channels == 3)]
    return [make_case(item.modality, item.name, item.image, noise, seed=k)
            for noise in BUNDLE_NOISES[bundle] for k, item in enumerate(images)]


def bundle_rows(bundle: str, work: Path) -> dict:
    from medden.apps.benchmark.helpers import image_scores
    from medden.bundle.exports import BACKENDS
    from medden.bundle.layout import EXPORT_RECORD, EXPORTED_FILES, WEIGHTS
    from medden.bundle import resolve_bundle
    from medden.bundle.denoiser_interface import BundleDenoiser
    from medden.apps.export import export_bundle

    copy = work / bundle
    exports = [path.name for path in (EXPORT_RECORD, *EXPORTED_FILES.values())]  # a fresh copy: no earlier exports
    shutil.copytree(resolve_bundle(bundle), copy, ignore=shutil.ignore_patterns("runs", *exports))
    record = export_bundle(copy)
    denoisers = {backend: BundleDenoiser(copy, device="cpu", backend=backend) for backend in BACKENDS}
    channels = denoisers["torch"].bundle.image_channels
    cases = cases_for(bundle, channels)
    psnrs = {backend: [image_scores(np.clip(denoiser(case.noisy), 0, 1), case.clean)[0] for case in cases]
             for backend, denoiser in denoisers.items()}
    images = timing_images(channels)
    ms = {size: interleaved_ms(denoisers, images[size]) for size in SIZES}
    rows = []
    for backend in BACKENDS:
        change = np.subtract(psnrs[backend], psnrs["torch"])
        path = copy / (WEIGHTS if backend == "torch" else EXPORTED_FILES[backend])
        rows.append({"backend": backend, "bytes": path.stat().st_size,
                     **{f"ms_{size}": round(ms[size][backend], 1) for size in SIZES},
                     "psnr": round(float(np.mean(psnrs[backend])), 3), "psnr_change_db": round(float(change.mean()), 3),
                     "worst_psnr_change_db": round(float(change.min()), 3)})
        print(bundle, rows[-1], flush=True)
    return {"bundle": bundle, "noises": list(BUNDLE_NOISES[bundle]), "cases": len(cases),
            "export": {k: v for k, v in record.items() if k != "model_sha256"}, "backends": rows}


def fastest_within(rows: list[dict]) -> str:
    """The fastest backend (least time for one 256 x 256 plus one 512 x 512 slice) whose mean
    PSNR change is above -MAX_PSNR_LOSS_DB."""
    ok = [r for r in rows if r["psnr_change_db"] > -MAX_PSNR_LOSS_DB]
    return min(ok, key=lambda r: sum(r[f"ms_{size}"] for size in SIZES))["backend"]


def markdown(results: dict) -> str:
    from medden.bundle.exports import AUTO_PREFERENCE, auto_choice

    lines = [
        "# Deployment: exported and quantized models on the CPU",
        "",
        "Written by `python scripts/benchmark_deployment.py`; do not edit by hand.",
        "",
        f"Machine: {results['machine']}, {results['threads']} PyTorch / onnxruntime threads, torch "
        f"{results['torch']}, onnxruntime {results['onnxruntime']}. The machine is a virtual one: the hypervisor "
        f"gave {results['cpu_steal_percent']}% of its CPU time during the run to other guests (steal), so single "
        "timings scatter; compare backends within a table.",
        "",
        "Every backend runs the bundle's whole `medden denoise` path (intensity scaling, its MONAI inferer with "
        "windows or refinement, then the network); only what runs the network changes. Milliseconds are the "
        "median of 5 to 25 runs after a warm-up, the backends taking turns run by run so that load on the "
        "machine touches them alike, on a real noisy slice (head CT, or the IHC image for RGB "
        "bundles, Gaussian sigma 20/255) cropped to 256 x 256 and 512 x 512. PSNR is the mean over the "
        "benchmark's held-out slices (brain MR x 3, shoulder MR, head CT, chest X-ray, histology) under the "
        "noise the bundle was trained for, at the benchmark level; the change is against the float PyTorch "
        "model on the same noisy inputs (worst single slice in brackets). Size is the file the backend loads.",
        "",
        "The int8 model is onnxruntime static quantization (QDQ, int8 per-channel weights, uint8 activations, "
        "MinMax calibration on 48 Gaussian/Poisson-corrupted training windows). PyTorch's dynamic quantization "
        "was not used: it quantizes only Linear/LSTM layers and leaves these all-convolutional networks in "
        "float.",
        "",
    ]
    for entry in results["bundles"]:
        lines += [f"## {entry['bundle']} ({', '.join(entry['noises'])} noise, {entry['cases']} slices)", "",
                  "| backend | size (MB) | ms / 256² slice | ms / 512² slice | PSNR (dB) | change vs torch (dB) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for row in entry["backends"]:
            lines.append(f"| {row['backend']} | {row['bytes'] / 2**20:.2f} | {row['ms_256']:.1f} | {row['ms_512']:.1f} "
                         f"| {row['psnr']:.2f} | {row['psnr_change_db']:+.3f} ({row['worst_psnr_change_db']:+.3f}) |")
        export = entry["export"]
        int8 = export.get("onnx-int8", {})
        lines += ["", f"Export checks: TorchScript ({export['torchscript']['method']}) max |difference| "
                      f"{export['torchscript']['max_abs_difference']:.2g}, ONNX {export['onnx']['max_abs_difference']:.2g} "
                      f"(tolerance {export['onnx']['tolerance']:g}); int8 PSNR change on validation windows "
                      f"{int8.get('psnr_change_db', float('nan')):+.3f} dB. Fastest within {MAX_PSNR_LOSS_DB} dB (least time "
                      f"for a 256² plus a 512² slice): **{fastest_within(entry['backends'])}**; `--backend auto` picks "
                      f"**{auto_choice(export)}** (from the export-time int8 check).", ""]
    default = results["bundles"][0]
    choice = fastest_within(default["backends"])
    auto = auto_choice(default["export"])  # every export of the benchmark's copy is current
    lines += ["## The default backend", "",
              f"For the default bundle ({default['bundle']}) the fastest backend that loses under {MAX_PSNR_LOSS_DB} "
              f"dB (least time for a 256² plus a 512² slice) is **{choice}**; `medden denoise --backend auto` (the default) picks **{auto}** for it "
              f"({'as it should' if auto == choice else 'THIS DISAGREES: update medden.bundle.exports.AUTO_PREFERENCE'}).",
              "`auto` takes the first current export in the order "
              f"{', '.join(AUTO_PREFERENCE)}, and int8 only when `medden export` measured a loss under "
              f"{MAX_PSNR_LOSS_DB} dB on its validation windows; a bundle without exports runs on torch.", ""]
    return "\n".join(lines)


def main() -> None:
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", nargs="+", default=list(BUNDLE_NOISES), choices=list(BUNDLE_NOISES))
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--render", action="store_true",
                        help="only write deployment.md again from the deployment.json in --output")
    args = parser.parse_args()
    out = Path(args.output)
    if args.render:
        (out / "deployment.md").write_text(markdown(json.loads((out / "deployment.json").read_text())))
        return
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "threads": torch.get_num_threads(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
               "bundles": []}
    steal0, total0 = cpu_steal_fraction()
    with tempfile.TemporaryDirectory(prefix="medden-deploy-") as tmp:
        for bundle in args.bundles:
            results["bundles"].append(bundle_rows(bundle, Path(tmp)))
    steal1, total1 = cpu_steal_fraction()
    results["cpu_steal_percent"] = round(100 * (steal1 - steal0) / max(total1 - total0, 1), 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "deployment.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "deployment.md").write_text(markdown(results))
    print(f"wrote {out / 'deployment.md'}")


if __name__ == "__main__":
    main()
