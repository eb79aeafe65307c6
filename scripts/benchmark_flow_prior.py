"""Benchmark: unpaired denoising with a flow prior (Kattakinda & Rajagopalan) against
recorruption, supervised training and BM3D, on held-out MNI152 T1 slices at Gaussian sigma 25/255.

Trains with ``bundles/flow_prior_unpaired`` (every run the bundle's own config, one budget):

1. the flow prior on the clean set (``train_flow.json``);
2. the flow-prior ResNet denoiser on the disjoint noisy set (``train.json``), once per
   ``--variants`` entry ``BLUR:WIDTH:LAMBDA_SCALE``: the shipped setting (no blur, lambda
   0.5 x 2 sigma^2) and the seed's (Gaussian blur of std 1 px, lambda 1 x 2 sigma^2);
3. the same ResNet by recorruption on the same noisy set (``train_recorruption.json``, no
   clean data), applied in one pass and with refinement (eta 1, 4 steps);
4. the same ResNet supervised on the clean set with synthetic noise (``train_supervised.json``,
   paired clean data, the same epochs and patches).

On the test slab (20 axial slices, 197 x 233, one seeded noise draw) it reports PSNR/SSIM
(data range 1) and median seconds per slice, BM3D given the true sigma included; and the flow's
bits per dimension (256 levels) on 64 x 64 tiles of the clean test slices, of the same tiles
noisy (clipped to [0, 1]) and of each method's output. Writes ``flow_prior.md``, ``.json`` and
``flow_prior.png`` (one test slice per method, then flow samples) into ``--output``.

    python scripts/benchmark_flow_prior.py [--reuse] [--publish] [--variants none:1:0.5 gaussian:1:1]
        [--work-dir runs/benchmark_flow_prior] [--output docs/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

from medden.apps.benchmark.helpers import contact_sheet, image_scores, timed_outputs, train_bundle
from medden.bundle import bundle_config
from medden.bundle.layout import MODELS, WEIGHTS
from medden.core import protocols
from medden.io.files import atomic_write

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "flow_prior_unpaired"
STEM = "flow_prior"
SIGMA = protocols.FLOW_PRIOR_SIGMA_TEST
TEST_SEED, BITS_SEED, SAMPLE_SEED = 2, 7, 0
TILE = (64, 64)
REFINE_ETA, REFINE_STEPS = 1.0, 4


def parse_variant(text: str) -> dict:
    """``"gaussian:1:0.5"`` -> ``{"blur": "gaussian", "blur_width": 1.0, "lambda_scale": 0.5}``."""
    blur, width, scale = text.split(":")
    return {"blur": blur, "blur_width": float(width), "lambda_scale": float(scale)}


def variant_name(variant: dict) -> str:
    return f"flow_prior_{variant['blur']}{variant['blur_width']:g}_lambda{variant['lambda_scale']:g}"


def train_all(work_dir: Path, variants: list[dict], reuse: bool) -> dict:
    """Train every model (or reuse ``work_dir``'s); name -> (weights path, seconds, overrides)."""
    runs = {}
    flow, seconds = train_bundle(BUNDLE, work_dir / "flow", reuse=reuse, configs=("train_flow.json",))
    runs["flow"] = (flow, seconds, {})
    for variant in variants:
        weights, seconds = train_bundle(BUNDLE, work_dir / variant_name(variant), {"flow_path": str(flow), **variant},
                                        reuse)
        runs[variant_name(variant)] = (weights, seconds, variant)
    for kind in ("recorruption", "supervised"):
        weights, seconds = train_bundle(BUNDLE, work_dir / kind, reuse=reuse, configs=("train.json", f"train_{kind}.json"))
        runs[kind] = (weights, seconds, {})
    return runs


def load_models(runs: dict, device: torch.device) -> tuple[torch.nn.Module, dict[str, torch.nn.Module]]:
    from medden.io import load_network_weights
    from medden.networks import ImageFlow, ResNetDenoiser

    train, flow_cfg = bundle_config(BUNDLE, "train.json"), bundle_config(BUNDLE, "train_flow.json")
    flow = ImageFlow(1, flow_cfg["flow_levels"], flow_cfg["flow_steps_per_level"], flow_cfg["flow_hidden"],
                     flow_cfg["flow_coupling"])
    flow = load_network_weights(flow, runs["flow"][0]).to(device).eval()
    nets = {name: (load_network_weights(ResNetDenoiser(1, train["features"], train["n_blocks"]), weights).to(device)
                   .eval(), variant) for name, (weights, _, variant) in runs.items() if name != "flow"}
    return flow, nets


def test_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """(clean, noisy) test slices, ``(1, H, W)`` float32, one seeded draw each."""
    from medden.data.datasets import CorruptedImageDataset
    from medden.data.unpaired import unpaired_slices
    from medden.transforms import RandGaussianSigmaNoise

    dataset = CorruptedImageDataset(unpaired_slices("test"), noise=RandGaussianSigmaNoise(SIGMA), seed=TEST_SEED)
    return [(item["clean"], item["input"]) for item in (dataset[i] for i in range(len(dataset)))]


def methods(nets: dict[str, torch.nn.Module], device: torch.device) -> dict[str, tuple[str, str, object]]:
    """label -> (kind, short label for the figure, ``denoise(noisy (1, H, W)) -> (1, H, W)``)."""
    from medden.anchors import BM3DDenoiser
    from medden.inference import RefinementInferer

    def one_pass(net, inferer=None):
        def run(noisy: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                x = torch.as_tensor(noisy, device=device)[None]
                return (net(x) if inferer is None else inferer(x, net))[0].cpu().numpy()
        return run

    out = {"noisy input": ("noisy", "noisy", lambda noisy: noisy)}
    for name, (net, variant) in nets.items():
        if name.startswith("flow_prior"):
            blur = "no blur" if variant["blur"] == "none" else f"{variant['blur']} blur {variant['blur_width']:g} px"
            out[f"flow prior (unpaired clean data), {blur}, lambda = {variant['lambda_scale']:g} x 2 sigma^2"] = (
                "flow_prior", f"flow prior, {blur}", one_pass(net))
    recorruption, supervised = nets["recorruption"][0], nets["supervised"][0]
    out["recorruption (no clean data), one pass"] = ("recorruption", "recorruption", one_pass(recorruption))
    out[f"recorruption (no clean data), refined eta {REFINE_ETA:g} x {REFINE_STEPS}"] = (
        "recorruption", "recorruption refined",
        one_pass(recorruption, RefinementInferer(eta=REFINE_ETA, steps=REFINE_STEPS)))
    out["supervised (paired clean data), same budget"] = ("supervised", "supervised", one_pass(supervised))
    bm3d = BM3DDenoiser(sigma=SIGMA)
    out["BM3D, true sigma"] = ("bm3d", "BM3D", lambda noisy: np.asarray(bm3d(noisy), np.float32))
    return out


def tile_bits(flow: torch.nn.Module, images: list[np.ndarray], device: torch.device) -> float:
    """Mean bits/dim of the flow on 64 x 64 tiles of ``images`` (clipped to [0, 1])."""
    from medden.data.unpaired import tile_patches
    from medden.networks import dequantized_bits_per_dim

    tiles = torch.as_tensor(np.stack(tile_patches([np.clip(i, 0, 1) for i in images], TILE)), device=device)
    generator = torch.Generator().manual_seed(BITS_SEED)
    with torch.no_grad():
        bits = torch.cat([dequantized_bits_per_dim(flow, batch, 256, generator) for batch in tiles.split(64)])
    return float(bits.mean())


def evaluate(flow, nets, device) -> tuple[list[dict], dict]:
    pairs = test_pairs()
    clean = [c for c, _ in pairs]
    rows, examples = [], [("clean", clean[len(clean) // 2])]
    for label, (kind, short, denoise) in methods(nets, device).items():
        outputs, seconds = timed_outputs(denoise, [noisy for _, noisy in pairs])
        scores = np.array([image_scores(out, ref) for out, ref in zip(outputs, clean)])
        rows.append({"method": label, "kind": kind, "psnr": float(scores[:, 0].mean()),
                     "ssim": float(scores[:, 1].mean()), "seconds_per_slice": seconds,
                     "bits_per_dim": tile_bits(flow, outputs, device)})
        examples.append((short, outputs[len(outputs) // 2]))
    return rows, {"clean": tile_bits(flow, clean, device), "examples": examples, "n_slices": len(pairs),
                  "shape": "x".join(str(s) for s in clean[0].shape[1:])}


def flow_samples(flow, n: int = 8) -> list[np.ndarray]:
    samples = flow.sample(n, TILE, temperature=0.7, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    return [s.cpu().numpy() for s in samples]


def findings(rows: list[dict], clean_bits: float) -> list[str]:
    """Statements computed from the rows: what beats what, by how much."""
    by_kind = {}
    for row in rows:
        best = by_kind.get(row["kind"])
        if best is None or row["psnr"] > best["psnr"]:
            by_kind[row["kind"]] = row
    flow_row, noisy = by_kind["flow_prior"], by_kind["noisy"]
    lines = [f"- **Flow prior vs noisy input:** {flow_row['psnr'] - noisy['psnr']:+.2f} dB "
             f"({flow_row['method']})."]
    for kind in ("recorruption", "supervised", "bm3d"):
        other = by_kind[kind]
        lines.append(f"- **Flow prior vs {other['method']}:** {flow_row['psnr'] - other['psnr']:+.2f} dB, "
                     f"SSIM {flow_row['ssim'] - other['ssim']:+.4f}.")
    noisy_bits = noisy["bits_per_dim"]
    verdict = "rates clean tiles more likely" if clean_bits < noisy_bits else "does NOT rate clean tiles more likely"
    lines.append(f"- **The prior {verdict}:** {clean_bits:.3f} bits/dim clean against {noisy_bits:.3f} noisy "
                 f"({noisy_bits - clean_bits:+.3f}).")
    return lines


def write_report(out: Path, report: dict) -> None:
    text = markdown(report)
    atomic_write(out / f"{STEM}.md", lambda tmp: tmp.write_text(text), overwrite=True)


def markdown(report: dict) -> str:
    """The results page, from the JSON report alone."""
    rows, bits = report["rows"], report["bits_per_dim"]
    machine, training = report["machine"], report["training"]
    lines = [
        "# Unpaired denoising with a flow prior (bundle `flow_prior_unpaired`)", "",
        f"Written by `scripts/benchmark_flow_prior.py` on {machine['processor']} ({machine['platform']}), "
        f"torch {machine['torch']}, {machine['threads']} threads, device {machine['device']}; every number below "
        "was measured by that run. Do not edit by hand.", "",
        "## Protocol", "",
        f"- **Test data:** the {report['test_slices']} axial slices ({report['image_shape']}, [0, 1]) of the MNI152 "
        f"T1 test slab, Gaussian noise sigma = 25/255 ({SIGMA:.4f}), one seeded draw. PSNR/SSIM against the clean "
        "slice (data range 1), averaged over slices; seconds are medians per slice, whole slice in one pass.",
        "- **Training data:** the template's training slab, cut into alternating 8-slice blocks (2 slices dropped "
        f"between blocks): {report['set_sizes']['clean']} clean slices train the flow and the supervised baseline, "
        f"{report['set_sizes']['noisy']} other slices are the noisy set of the flow-prior and recorruption "
        "denoisers (noise sigma 5-50/255, one fixed draw per slice; their clean versions are never read).",
        "- **Budget:** every denoiser is the same ResNet (`ResNetDenoiser`, "
        f"{report['settings']['features']} features x {report['settings']['n_blocks']} residual blocks, "
        f"{report['parameters']:,} parameters), {report['settings']['max_epochs']} epochs of "
        f"{report['settings']['repeats_per_epoch']} random {report['settings']['patch_size'][0]} x "
        f"{report['settings']['patch_size'][1]} patches per training slice, batch {report['settings']['batch_size']}, "
        "Adam with cosine decay, checkpoint chosen on noisy/clean validation slices (sigma 25/255) as every medden "
        "bundle does.",
        "- **Flow prior objective:** mean((B(D) - B(N))^2) + lambda (-log f_C(D)) / n_values, B no blur or a "
        "Gaussian blur (each row says which), lambda = scale x 2 sigma^2 with sigma estimated blind from each noisy "
        "patch (wavelet MAD); scale 1 is the MAP weight. The flow is frozen.",
        f"- **Flow:** multi-scale Glow, {report['flow']['levels']} levels x {report['flow']['steps_per_level']} steps "
        f"(actnorm, invertible 1x1 conv, affine coupling, width {report['flow']['hidden']}), "
        f"{report['flow']['parameters']:,} parameters, trained {report['flow']['max_epochs']} epochs on dequantised "
        f"64 x 64 clean patches with Gaussian noise of std {report['flow']['prior_smoothing']:g} added (a smoothed "
        "prior); bits/dim at 256 levels on the 64 x 64 tiles of each image set "
        f"({report['bits_tiles']} tiles for the test slab).", "",
        "## Results", "",
        "| method | PSNR (dB) | SSIM | seconds / slice | flow bits/dim of the output |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds_per_slice']:.3f} | "
          f"{r['bits_per_dim']:.3f} |" for r in rows],
        f"| clean reference | | | | {bits['clean_test']:.3f} |", "",
        "| flow bits/dim (256 levels) | value |", "| --- | --- |",
        f"| clean test tiles | {bits['clean_test']:.3f} |",
        f"| the same tiles, noisy (sigma 25/255, clipped) | {bits['noisy_test']:.3f} |",
        f"| clean validation tiles (best checkpoint) | {bits['clean_val']:.3f} |", "",
        "## Findings", "", *findings(rows, bits["clean_test"]), "",
        "## Training", "",
        "| run | seconds |", "| --- | --- |",
        *[f"| {name} | {'n/a (reused, no record)' if seconds is None else round(seconds)} |"
          for name, seconds in training.items()], "",
        f"![a test slice: clean, noisy and every method; second row: flow samples at temperature 0.7]({STEM}.png)", "",
    ]
    return "\n".join(lines)


def main() -> None:
    from medden.data.unpaired import tile_patches, unpaired_slices
    from medden.engines import default_device
    from medden.io import publish_model
    from medden.networks import count_parameters

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["none:1:0.5", "gaussian:1:1"],
                        help="flow-prior runs as BLUR:WIDTH:LAMBDA_SCALE (the first is the one --publish ships)")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "benchmark_flow_prior")
    parser.add_argument("--reuse", action="store_true", help="reuse models already trained in --work-dir")
    parser.add_argument("--publish", action="store_true",
                        help="copy the flow and the first flow-prior denoiser into the bundle's models/")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--device", default=None, help="default: cuda if available")
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else default_device()

    variants = [parse_variant(text) for text in args.variants]
    runs = train_all(args.work_dir, variants, args.reuse)
    if args.publish:
        publish_model(runs["flow"][0], BUNDLE / MODELS / "flow.pt")
        publish_model(runs[variant_name(variants[0])][0], BUNDLE / WEIGHTS)
    flow, nets = load_models(runs, device)
    rows, test = evaluate(flow, nets, device)
    noisy_row = next(r for r in rows if r["kind"] == "noisy")
    train, flow_cfg = bundle_config(BUNDLE, "train.json"), bundle_config(BUNDLE, "train_flow.json")
    report = {
        "rows": rows,
        "bits_per_dim": {"clean_test": test["clean"], "noisy_test": noisy_row["bits_per_dim"],
                         "clean_val": tile_bits(flow, unpaired_slices("val"), device)},
        "bits_tiles": len(tile_patches(unpaired_slices("test"), TILE)),
        "test_slices": test["n_slices"], "image_shape": test["shape"],
        "set_sizes": {role: len(unpaired_slices(role)) for role in ("clean", "noisy")},
        "settings": {key: train[key] for key in ("features", "n_blocks", "max_epochs", "repeats_per_epoch",
                                                 "patch_size", "batch_size", "noise_sigma")},
        "parameters": count_parameters(nets["supervised"][0]),
        "flow": {"levels": flow_cfg["flow_levels"], "steps_per_level": flow_cfg["flow_steps_per_level"],
                 "hidden": flow_cfg["flow_hidden"], "max_epochs": flow_cfg["max_epochs"],
                 "prior_smoothing": flow_cfg["prior_smoothing"],
                 "parameters": count_parameters(flow)},
        "training": {name: seconds for name, (_, seconds, _) in runs.items()},
        "variants": variants,
        "machine": {"processor": platform.processor() or platform.machine(), "platform": platform.platform(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
                    "cpus": os.cpu_count()},
    }
    args.output.mkdir(parents=True, exist_ok=True)
    atomic_write(args.output / f"{STEM}.json",
                 lambda tmp: tmp.write_text(json.dumps(report, indent=2) + "\n"), overwrite=True)
    contact_sheet(args.output / f"{STEM}.png",
                  [test["examples"], [(f"flow sample {i + 1}", s) for i, s in enumerate(flow_samples(flow))]], tile_size=160)
    write_report(args.output, report)
    print((args.output / f"{STEM}.md").read_text())


if __name__ == "__main__":
    main()
