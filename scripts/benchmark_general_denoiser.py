"""Benchmark: the general-purpose denoiser (bundle general_denoiser) on every sample modality.

Held-out images of each modality (``medden.data.modalities.general_test_images``: MNI T1
test slab, abdomen MR, head CT, chest radiograph, histology), each scaled to [0, 1], with
Gaussian noise (sigma 20/255), Poisson noise (peak 30) and Rician noise (sigma 0.05). Scored
(PSNR/SSIM against the clean image):

* noisy input;
* BM3D and scikit-image NLM given the true noise level (Poisson: through the Anscombe
  transform and its exact unbiased inverse);
* the bundle's model, run as ``medden denoise`` runs it (its inferer and intensity
  percentiles), and any ``--variant NAME=WEIGHTS[:conditioned]`` (e.g. the blind/conditioned
  comparison and the clean-target upper bound trained with the same network and budget);
* ``medden denoise --fit`` snapshots after 1, 3 and 10 minutes of fine-tuning on the noisy
  image itself, for the ``--fit-cases`` chosen (each costs the largest budget in CPU time).

Speed: ms per 256 x 256 slice (median) for the model end to end, its pure forward pass,
GFLOP per slice and achieved GFLOP/s, against BM3D and NLM. Writes
docs/results/general_denoiser.{md,json,png}. Run from the repository root:

    python scripts/benchmark_general_denoiser.py --variant "clean-target upper bound=path/model.pt"
    python scripts/benchmark_general_denoiser.py --fit-cases "" --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from medden.apps.benchmark.helpers import contact_sheet, image_scores
from medden.core import protocols

RESULTS = Path("docs/results")
NOISES = {
    "gaussian": "Gaussian sigma 20/255",
    "poisson": "Poisson peak 30",
    "rician": "Rician sigma 0.05",
}
GAUSSIAN_SIGMA, POISSON_PEAK = protocols.RECORRUPTION_GAUSSIAN_SIGMA_VAL, protocols.N2N_POISSON_PEAK_TEST
RICIAN_SIGMA = 0.05


def corrupt(noise: str, clean: np.ndarray, seed: int) -> np.ndarray:
    from medden.transforms import RandGaussianSigmaNoise, RandPoissonNoise, RandRicianSigmaNoise

    transform = {"gaussian": RandGaussianSigmaNoise(GAUSSIAN_SIGMA), "poisson": RandPoissonNoise(POISSON_PEAK),
                 "rician": RandRicianSigmaNoise(RICIAN_SIGMA)}[noise]
    return np.asarray(transform.set_random_state(seed)(clean), np.float32)


def anchors(noise: str) -> dict:
    """BM3D and NLM told the true noise level (Poisson: the Anscombe route)."""
    from medden.anchors import bm3d_denoise, nlm_denoise, with_anscombe

    if noise == "poisson":
        return {"BM3D": with_anscombe(bm3d_denoise, POISSON_PEAK), "NLM": with_anscombe(nlm_denoise, POISSON_PEAK)}
    sigma = GAUSSIAN_SIGMA if noise == "gaussian" else RICIAN_SIGMA
    return {"BM3D": lambda y: bm3d_denoise(y, sigma), "NLM": lambda y: nlm_denoise(y, sigma)}


def model_fn(bundle, network):
    """``(1, H, W)`` noisy -> denoised by ``network`` in place of the bundle's own, the way
    medden denoise runs the bundle (its inferer and intensity handling)."""
    return dataclasses.replace(bundle, network=network).denoise


def timed(fn, *args) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def speed(network, run, anchor_fns) -> dict:
    """ms per 256 x 256 slice: model end to end and forward only, GFLOP, BM3D and NLM."""
    from torch.utils.flop_counter import FlopCounterMode

    from medden.data.modalities import general_test_images

    clean = next(i.image for i in general_test_images() if i.modality == "CT")
    noisy = corrupt("gaussian", clean, 7)
    x = torch.from_numpy(noisy)[None]
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            network(x)
        network(x)
        forward = [timed(network, x)[1] for _ in range(10)]
    run(noisy)
    end_to_end = [timed(run, noisy)[1] for _ in range(10)]
    gflop = counter.get_total_flops() / 1e9
    result = {"model_ms": 1000 * float(np.median(end_to_end)), "forward_ms": 1000 * float(np.median(forward)),
              "gflop_per_slice": gflop, "gflop_per_s": gflop / float(np.median(forward))}
    for name, fn in anchor_fns.items():
        result[f"{name}_ms"] = 1000 * float(np.median([timed(fn, noisy)[1] for _ in range(2)]))
    result["speedup_vs_bm3d"] = result["BM3D_ms"] / result["model_ms"]
    return result


def load_variant(spec: str, bundle):
    from medden.io import load_network_weights
    from medden.networks import general_denoiser_net

    name, _, weights = spec.partition("=")
    conditioned = weights.endswith(":conditioned")
    weights = weights.removesuffix(":conditioned")
    network = load_network_weights(general_denoiser_net(conditioned=conditioned), weights).eval()
    return name, model_fn(bundle, network)


def mean_rows(records: list[dict]) -> dict:
    """Average the per-image records of each (modality, noise, method)."""
    groups: dict = {}
    for rec in records:
        groups.setdefault((rec["modality"], rec["noise"], rec["method"]), []).append(rec)
    return {key: {"psnr": float(np.mean([r["psnr"] for r in recs])), "ssim": float(np.mean([r["ssim"] for r in recs])),
                  "images": len(recs)} for key, recs in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="bundles/general_denoiser")
    parser.add_argument("--model-name", default="general model")
    parser.add_argument("--variant", action="append", default=[], help="NAME=WEIGHTS[:conditioned]")
    parser.add_argument("--fit-cases", default="brain MR/gaussian,CT/gaussian,radiograph/gaussian",
                        help="comma-separated MODALITY/NOISE cases to run --fit on ('' for none)")
    parser.add_argument("--fit-minutes", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--quick", action="store_true", help="one brain slice, Gaussian only, no anchors' timing")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from medden.data.modalities import general_test_images
    from medden.bundle import load_bundle
    from medden.apps.fit import fit_volumes
    from medden.engines import choose_fit_pairs, fit_network

    bundle = load_bundle(args.bundle, device="cpu")
    percentiles = tuple(bundle.percentiles)
    methods = {args.model_name: bundle.denoise}
    methods.update(load_variant(spec, bundle) for spec in args.variant)
    images = general_test_images(1 if args.quick else 3)
    noises = ["gaussian"] if args.quick else list(NOISES)
    fit_cases = {tuple(c.split("/")) for c in args.fit_cases.split(",") if c}

    records, seconds, figure_rows = [], {}, []
    for noise in noises:
        anchor_fns = anchors(noise)
        by_modality: dict = {}
        for index, item in enumerate(images):
            noisy = corrupt(noise, item.image, seed=1000 + index)
            by_modality.setdefault(item.modality, []).append((item, noisy))
            outputs = {"noisy": noisy}
            for name, fn in {**anchor_fns, **methods}.items():
                outputs[name], took = timed(fn, noisy)
                seconds.setdefault(name, []).append(took)
            for name, out in outputs.items():
                p, s = image_scores(out, item.image)
                records.append({"modality": item.modality, "image": item.name, "noise": noise, "method": name,
                                "psnr": p, "ssim": s})
            if noise == "gaussian" and item.modality not in {r[0] for r in figure_rows}:
                figure_rows.append((item.modality, [("clean", item.image), *outputs.items()]))
            print(f"{noise:8s} {item.name:36s} " + " ".join(f"{k}={records[-len(outputs) + i]['psnr']:.2f}"
                                                              for i, k in enumerate(outputs)), flush=True)
        for modality, pairs in by_modality.items():
            if (modality, noise) not in fit_cases:
                continue
            network = copy.deepcopy(bundle.network)
            volumes = fit_volumes([noisy for _, noisy in pairs], percentiles, smoothing=bundle.smoothing)
            fit_pairs = choose_fit_pairs(volumes, getattr(network, "neighbours", 0))

            def snapshot(minutes: float, net, pairs=pairs, modality=modality, noise=noise) -> None:
                fn = model_fn(bundle, net)
                for item, noisy in pairs:
                    p, s = image_scores(fn(noisy), item.image)
                    records.append({"modality": modality, "image": item.name, "noise": noise,
                                    "method": f"fit {minutes:g} min", "psnr": p, "ssim": s})
                print(f"{noise:8s} {modality:12s} fit {minutes:g} min: {records[-1]['psnr']:.2f}", flush=True)

            result = fit_network(network, fit_pairs, minutes=max(args.fit_minutes),
                                 on_minute=(args.fit_minutes, snapshot))
            print(f"fit on {modality}/{noise}: {result.iterations} iterations in {result.seconds:.0f} s", flush=True)

    speeds = speed(bundle.network, methods[args.model_name], anchors("gaussian"))
    table = mean_rows(records)
    method_names = ["noisy", "BM3D", "NLM", *methods, *[f"fit {m:g} min" for m in args.fit_minutes]]
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "bundle": bundle.name, "percentiles": list(percentiles), "threads": args.threads,
        "model_name": args.model_name, "methods": method_names,
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "noises": NOISES, "speed": speeds, "summary": [
            {"modality": k[0], "noise": k[1], "method": k[2], **v} for k, v in sorted(table.items())],
        "records": records, "seconds_per_image": {k: float(np.median(v)) for k, v in seconds.items()},
    }
    (out_dir / "general_denoiser.json").write_text(json.dumps(payload, indent=2) + "\n")
    contact_sheet(out_dir / "general_denoiser.png", [tiles for _, tiles in figure_rows], tile_size=192)

    text = markdown(payload)
    (out_dir / "general_denoiser.md").write_text(text)
    print(text)


def markdown(payload: dict) -> str:
    """The results page, from the JSON alone (the table's columns are ``payload["methods"]``)."""
    records, speeds, percentiles = payload["records"], payload["speed"], payload["percentiles"]
    method_names, model_name = payload["methods"], payload["model_name"]
    noises = list(dict.fromkeys(r["noise"] for r in records))
    brain_images = {r["image"] for r in records if r["modality"] == "brain MR"}
    table = mean_rows(records)
    lines = [
        "# General-purpose denoiser on every sample modality",
        "",
        "Written by `scripts/benchmark_general_denoiser.py`; do not edit by hand.",
        "",
        f"Bundle `{payload['bundle']}`; images scaled by their {percentiles[0]:g}-{percentiles[1]:g}th percentiles "
        "to [0, 1]; PSNR (dB) / SSIM against the clean image, averaged over each modality's held-out "
        f"images (brain MR: {len(brain_images)} test-slab slices; others: a 256 x 256 "
        f"window of one held-out image). {payload['threads']} torch threads. BM3D and NLM are given the true noise "
        "level; "
        "for Poisson they work through the Anscombe transform. A blank cell was not run.",
        "",
        "| modality | noise | " + " | ".join(method_names) + " |",
        "| --- | --- |" + " --- |" * len(method_names),
    ]
    for modality in dict.fromkeys(r["modality"] for r in records):
        for noise in noises:
            cells = []
            for name in method_names:
                value = table.get((modality, noise, name))
                cells.append(f"{value['psnr']:.2f} / {value['ssim']:.3f}" if value else "")
            lines.append(f"| {modality} | {payload['noises'][noise]} | " + " | ".join(cells) + " |")
    beats_nlm = [(m, n) for (m, n, name) in table if name == model_name
                 and table[(m, n, name)]["psnr"] > table[(m, n, "NLM")]["psnr"]]
    cases = [(m, n) for (m, n, name) in table if name == model_name]
    fit_minutes = [float(name.split()[1]) for name in method_names if name.startswith("fit ")]
    top_fit = f"fit {max(fit_minutes):g} min"
    fit_vs_bm3d = [(m, n, table[(m, n, top_fit)]["psnr"] - table[(m, n, "BM3D")]["psnr"])
                   for (m, n, name) in table if name == top_fit]
    lines += [
        "",
        "## Speed (one 256 x 256 slice)",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| {model_name}, end to end (scaling, inferer, unscaling) | {speeds['model_ms']:.1f} ms |",
        f"| forward pass only | {speeds['forward_ms']:.1f} ms |",
        f"| GFLOP per slice / achieved GFLOP/s | {speeds['gflop_per_slice']:.2f} / {speeds['gflop_per_s']:.1f} |",
        f"| BM3D | {speeds['BM3D_ms']:.0f} ms |",
        f"| NLM | {speeds['NLM_ms']:.0f} ms |",
        f"| speed-up over BM3D | {speeds['speedup_vs_bm3d']:.0f}x |",
        "",
        "## Targets",
        "",
        f"- The general model beats NLM on {len(beats_nlm)} of {len(cases)} modality/noise cases"
        f" ({'met' if len(beats_nlm) == len(cases) else 'NOT met'}).",
        f"- `--fit` at {max(fit_minutes):g} minutes against BM3D (PSNR difference): "
        + (", ".join(f"{m}/{n} {d:+.2f} dB" for m, n, d in fit_vs_bm3d) or "not run")
        + (" (met)" if fit_vs_bm3d and all(d > 0 for *_, d in fit_vs_bm3d) else " (NOT met)"),
        f"- Inference {speeds['model_ms']:.1f} ms per slice, target < 40 ms "
        f"({'met' if speeds['model_ms'] < 40 else 'NOT met'}); {speeds['speedup_vs_bm3d']:.0f}x BM3D, target 50x "
        f"({'met' if speeds['speedup_vs_bm3d'] >= 50 else 'NOT met'}).",
        "",
        "![one Gaussian case per modality: clean, noisy, each method](general_denoiser.png)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
