"""Benchmark: the recorruption seed's Camelyon (Gaussian) and JSRT (Poisson) experiments.

For ``--experiment camelyon`` (bundle ``recorruption_camelyon_gaussian``, test sigma 20/255) or
``--experiment jsrt`` (bundle ``recorruption_jsrt_poisson``, Poisson at 255 counts per unit),
on the default data's held-out test images: noisy input, recorruption one pass, refined with
the seed's (eta, k), refined with (eta, k) tuned on the validation images, the Noisier2Noise
closed form (alpha tuned on validation), a supervised model (clean targets) trained with the
same config and budget, NLM and BM3D (true noise level); for Poisson also BM3D after the
Anscombe transform with the exact unbiased inverse. PSNR/SSIM (data range 1) and median
seconds per image, over ``--draws`` noise draws per test image. Also a recorruption model
trained with a fresh y' on every pass (``fixed_recorruption False``). Writes
``docs/results/recorruption_<experiment>.{md,json,png}``.

    python scripts/benchmark_recorruption_seed.py --experiment jsrt [--recorruption-weights W] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from medden.apps.benchmark.helpers import contact_sheet, image_scores, timed_outputs, train_bundle
from medden.bundle import bundle_network
from medden.bundle.layout import WEIGHTS
from medden.core import protocols
from medden.io import publish_model

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = {
    "camelyon": {"bundle": "recorruption_camelyon_gaussian", "seed_eta": protocols.RECORRUPTION_CAMELYON_REFINE_ETA,
                 "seed_steps": protocols.RECORRUPTION_CAMELYON_REFINE_STEPS},
    "jsrt": {"bundle": "recorruption_jsrt_poisson", "seed_eta": protocols.RECORRUPTION_JSRT_REFINE_ETA,
             "seed_steps": protocols.RECORRUPTION_JSRT_REFINE_STEPS},
}
SIGMA, PEAK = protocols.RECORRUPTION_GAUSSIAN_SIGMA_VAL, 255.0


def train(bundle: Path, out_dir: Path, epochs: int | None, reuse: bool, supervised: bool = False,
          fixed_recorruption: bool = True) -> tuple[Path, float | None]:
    overrides = {"perceptual_weight": 0.0, "fixed_recorruption": fixed_recorruption}
    if epochs is not None:
        overrides["max_epochs"] = epochs
    if supervised:  # same data, network, optimiser and budget; the targets are the clean images
        overrides["train#noisy_data#recorruption"] = None
    return train_bundle(bundle, out_dir, overrides, reuse)


def images(experiment: str, split: str) -> list[np.ndarray]:
    if experiment == "camelyon":
        from medden.data.camelyon import camelyon_patches

        return camelyon_patches(split)
    from medden.data.jsrt import chest_images

    return chest_images(split)


def noise(experiment: str):
    from medden.transforms import RandGaussianSigmaNoise, RandPoissonNoise

    return RandGaussianSigmaNoise(SIGMA) if experiment == "camelyon" else RandPoissonNoise(PEAK)


def noisy_pairs(experiment: str, split: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    corrupt = noise(experiment).set_random_state(seed)
    return [(corrupt(clean), clean) for clean in images(experiment, split)]


def net_fn(inner):
    """Run a batch function on one ``(C, H, W)`` image through a 256 x 256 sliding window."""
    from monai.inferers import SlidingWindowInferer

    window = SlidingWindowInferer((256, 256), sw_batch_size=1, padding_mode="replicate")

    def run(image: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return inner(torch.as_tensor(image)[None], window)[0].numpy()

    return run


def tune(network, experiment: str):
    """Refinement (eta, k) and the Noisier2Noise alpha on the validation images."""
    from monai.inferers import SlidingWindowInferer

    from medden.inference import tune_noisier2noise_alpha, tune_refinement

    window = SlidingWindowInferer((256, 256), sw_batch_size=1, padding_mode="replicate")
    pairs = [(torch.as_tensor(n)[None], torch.as_tensor(c)[None]) for n, c in noisy_pairs(experiment, "val", 101)]
    with warnings.catch_warnings():  # the tuner warns when refinement does not beat one pass; we report it
        warnings.simplefilter("ignore")
        choice = tune_refinement(network, pairs, etas=(0.01, 0.1, 0.3, 0.5, 1.0), max_steps=10, base_inferer=window)
    return choice, tune_noisier2noise_alpha(network, pairs, alphas=(0.5, 1.0, 2.0, 4.0), base_inferer=window)


def methods(experiment: str, models: dict, choices: dict) -> dict:
    """Name -> function of one noisy ``(C, H, W)`` image. ``models``: "fixed" (the seed's protocol),
    "fresh" (a new y' per pass) and "supervised"; ``choices``: (refinement choice, alpha) per
    recorruption model."""
    from medden.anchors import bm3d_denoise, nlm_denoise, with_anscombe
    from medden.inference import iterative_refinement, noisier2noise_correction

    setting = EXPERIMENTS[experiment]
    seed_eta, seed_steps = setting["seed_eta"], setting["seed_steps"]
    level = SIGMA if experiment == "camelyon" else None  # Poisson: Gaussian anchors estimate the level
    fixed, fresh = models["fixed"], models["fresh"]
    (choice, alpha), (fresh_choice, fresh_alpha) = choices["fixed"], choices["fresh"]
    table = {
        "noisy input": lambda y: y,
        "recorruption, one pass": net_fn(lambda b, w: w(b, fixed)),
        f"recorruption, refined, seed's (eta={seed_eta:g}, k={seed_steps})":
            net_fn(lambda b, w: iterative_refinement(lambda x: w(x, fixed), b, seed_eta, seed_steps)),
        f"recorruption, refined, tuned (eta={choice.eta:g}, k={choice.steps})":
            net_fn(lambda b, w: iterative_refinement(lambda x: w(x, fixed), b, choice.eta, choice.steps)),
        f"recorruption, Noisier2Noise closed form (alpha={alpha:g})":
            net_fn(lambda b, w: noisier2noise_correction(w(b, fixed), b, alpha)),
        f"recorruption, fresh y', refined, tuned (eta={fresh_choice.eta:g}, k={fresh_choice.steps})":
            net_fn(lambda b, w: iterative_refinement(lambda x: w(x, fresh), b, fresh_choice.eta, fresh_choice.steps)),
        f"recorruption, fresh y', Noisier2Noise closed form (alpha={fresh_alpha:g})":
            net_fn(lambda b, w: noisier2noise_correction(w(b, fresh), b, fresh_alpha)),
        "supervised (clean targets), same budget": net_fn(lambda b, w: w(b, models["supervised"])),
        "NLM (scikit-image)" + (", true sigma" if level else ", sigma estimated"): lambda y: nlm_denoise(y, level),
        "BM3D" + (", true sigma" if level else ", sigma estimated"): lambda y: bm3d_denoise(y, level),
    }
    if experiment == "jsrt":
        table["BM3D after Anscombe (exact unbiased inverse)"] = with_anscombe(bm3d_denoise, PEAK)
    return table


#: what the seed reports on its own data (PSNR dB), for the side-by-side in the report
SEED_REPORTED = {"camelyon": {"noisy": 26.15, "BM3D": 29.20, "recorruption (seed)": 30.16},
                 "jsrt": {"noisy": 24.25, "recorruption (seed)": 27.46}}


def provenance(seconds: float | None) -> str:
    """How a model of this run came to be, for the report."""
    if seconds is None:
        return "reused (trained before this run with the same config; time not recorded)"
    return f"trained by this run in {seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", choices=sorted(EXPERIMENTS), required=True)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the bundle's)")
    parser.add_argument("--recorruption-weights", default=None, help="score these weights instead of training")
    parser.add_argument("--draws", type=int, default=3, help="noise draws per test image")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="reuse models already trained in --work-dir")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--publish", action="store_true",
                        help="copy the recorruption model this run trained into the bundle's models/model.pt")
    args = parser.parse_args()
    if args.publish and args.recorruption_weights:
        parser.error("--publish copies the model this run trains; it cannot be used with --recorruption-weights.")
    bundle = ROOT / "bundles" / EXPERIMENTS[args.experiment]["bundle"]
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="medden-bench-"))
    budget = {}
    if args.recorruption_weights:
        recorruption_weights, budget["recorruption"] = Path(args.recorruption_weights), None
    else:
        recorruption_weights, budget["recorruption"] = train(bundle, work / "recorruption", args.epochs, args.reuse)
    fresh_weights, budget["recorruption, fresh y'"] = train(bundle, work / "fresh", args.epochs, args.reuse,
                                                            fixed_recorruption=False)
    supervised_weights, budget["supervised"] = train(bundle, work / "supervised", args.epochs, args.reuse,
                                                     supervised=True)
    if args.publish:
        publish_model(recorruption_weights, bundle / WEIGHTS)
    models = {name: bundle_network(bundle, weights) for name, weights in
              (("fixed", recorruption_weights), ("fresh", fresh_weights), ("supervised", supervised_weights))}
    choices = {name: tune(models[name], args.experiment) for name in ("fixed", "fresh")}
    test = [pair for draw in range(args.draws) for pair in noisy_pairs(args.experiment, "test", 202 + draw)]
    rows, figure = [], [("clean", test[0][1])]
    for name, fn in methods(args.experiment, models, choices).items():
        outs, seconds = timed_outputs(fn, [noisy for noisy, _ in test])
        pairs = [image_scores(o, clean) for o, (_, clean) in zip(outs, test)]
        rows.append({"method": name, "psnr": float(np.mean([p for p, _ in pairs])),
                     "ssim": float(np.mean([s for _, s in pairs])), "seconds_per_image": seconds})
        figure.append((figure_label(name), outs[0]))
        print(f"{name:70s} PSNR {rows[-1]['psnr']:6.2f} SSIM {rows[-1]['ssim']:.4f}", flush=True)
    shape = "x".join(str(s) for s in test[0][1].shape)
    report = {"experiment": args.experiment, "rows": rows, "test_images": len(test) // args.draws,
              "noise_draws": args.draws, "image_shape": shape,
              "refinement_choice": {k: {"eta": c.eta, "steps": c.steps} for k, (c, _) in choices.items()},
              "noisier2noise_alpha": {k: a for k, (_, a) in choices.items()}, "epochs": args.epochs,
              "recorruption_weights": args.recorruption_weights, "training_seconds": budget,
              "seed_reported": SEED_REPORTED[args.experiment],
              "machine": {"processor": platform.processor() or platform.machine(), "torch": torch.__version__}}
    args.output.mkdir(parents=True, exist_ok=True)
    stem = f"recorruption_{args.experiment}"
    (args.output / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    tiles = [*figure[1:], figure[0]]
    half = (len(tiles) + 1) // 2
    contact_sheet(args.output / f"{stem}.png", [tiles[:half], tiles[half:]], label_chars=30)
    (args.output / f"{stem}.md").write_text(markdown(report))


def figure_label(method: str) -> str:
    """The short label of a method's tile in the figure."""
    return method.split(" (")[0].replace("recorruption, ", "")


def markdown(report: dict) -> str:
    """The results page, from the JSON report alone."""
    experiment, rows, seed = report["experiment"], report["rows"], report["seed_reported"]
    budget, weights, stem = report["training_seconds"], report["recorruption_weights"], f"recorruption_{experiment}"
    noise_text = "Gaussian sigma 20/255" if experiment == "camelyon" else "Poisson, 255 counts per unit intensity"
    ours = {r["method"]: r["psnr"] for r in rows}
    lines = [
        f"# Recorruption, {experiment} experiment (bundle `{EXPERIMENTS[experiment]['bundle']}`)", "",
        f"Written by `scripts/benchmark_recorruption_seed.py --experiment {experiment}` on "
        f"{report['machine']['processor']}, torch {report['machine']['torch']}; do not edit by hand.", "",
        f"Test data: {report['test_images']} held-out image(s) of the embedded default ({report['image_shape']}, in "
        f"[0, 1]) x {report['noise_draws']} noise draws, {noise_text}. Three models share the bundle's train "
        "config, epochs "
        f"({report['epochs'] or 'bundle default'}) and data: the recorruption model (the seed's protocol: one fixed y' "
        "per y), the 'fresh y'' model (a new y' on every pass over the data, `fixed_recorruption False`) and the "
        "supervised model (clean targets, the same fixed noisy inputs). Training: "
        + "; ".join(f"{name} {provenance(seconds)}" for name, seconds in budget.items())
        + (f" (weights `{weights}`)" if weights else "")
        + ". All with perceptual_weight 0 (no VGG16 "
        "weights here). Refinement (eta, k) and alpha were chosen on the validation images, per model. Seconds "
        "are medians per image on this machine (2 CPU cores).", "",
        "| method | PSNR (dB) | SSIM | seconds / image |", "| --- | --- | --- | --- |",
        *[f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds_per_image']:.3f} |" for r in rows], "",
        "The seed's own figures are on its data (the full dataset, its resizing and noise), not this image; they "
        "are listed for scale, not as a like-for-like comparison:", "",
        "| quantity | seed, its data (dB) |", "| --- | --- |",
        *[f"| {k} | {v:.2f} |" for k, v in seed.items()], "",
        f"Gain over the noisy input here: best recorruption variant "
        f"{max(v for k, v in ours.items() if k.startswith('recorruption')) - ours['noisy input']:+.2f} dB; "
        f"seed: {seed['recorruption (seed)'] - seed['noisy']:+.2f}"
        " dB.", "",
        f"![{', '.join(figure_label(r['method']) for r in rows)}, clean]({stem}.png)", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
