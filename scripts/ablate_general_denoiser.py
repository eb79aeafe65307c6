"""Ablation of the default model's levers: what each change from version 1 to version 2 gives.

Every variant is trained from scratch for the same number of epochs (``--epochs``, about 70
batches of 16 each; validated after every epoch, the best one kept, as the bundles do) with ``python -m monai.bundle run`` and scored on the realistic-noise
benchmark's held-out cases (``medden.apps.benchmark.realistic``: scanner-like noises and white
Gaussian/Poisson/Rician noise; model only, no classical anchor). Variants, each one lever away
from the full version 2 recipe (except the first):

* version 1's recipe (bundle ``general_denoiser``'s train.json: its network, images, noises);
* version 2 with version 1's network (pixel shuffle and transposed convolutions);
* version 2 with version 1's images (``medden.data.modalities.general_images``);
* version 2 with white noise only (no CT, MR or detector physics, no clean pairs);
* version 2 with pairs scaled by the noisy crop's own range, or by the crop's range before noise
  (version 2 scales by the whole image's range, as inference measures it on a whole slice);
* version 2 without clean pairs;
* version 2 on the medical images of the corpus only (no photographs, test patterns);
* the full version 2 recipe;
* version 2 with bias-corrected magnitude MR targets (a lever tried and left out);
* the full version 2 recipe with clean targets (the upper bound at this budget);
* the full version 2 model run without its do-no-harm guard (``medden.inference.guard``).

Training is resumable: a variant whose ``model.pt`` exists is not retrained. Writes
``docs/results/ablation.{md,json}``. Run from the repository root (a few minutes per variant
and epoch on 2 CPU cores):

    python scripts/ablate_general_denoiser.py --epochs 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path("docs/results")
V1, V2 = "general_denoiser", "general_denoiser_v2"
FULL = "v2 (full recipe)"
#: name -> (bundle whose train.json trains it, its overrides, bundle that runs it); the
#: inference-only variants in RUN_VARIANTS reuse another variant's weights
VARIANTS = {
    "version 1 recipe": (V1, [], V1),
    "v2, version 1 network": (V2, ["--architecture", "pixel_shuffle"], V1),
    "v2, version 1 images": (V2, ["--train#images", "$medden.data.modalities.general_images('train')"], V2),
    "v2, white noise only": (V2, ["--noise_menus", "$medden.engines.general_training.WHITE_NOISE_MENUS"], V2),
    "v2, pairs scaled by the noisy crop's range": (V2, ["--pair_scaling", "noisy_region"], V2),
    "v2, pairs scaled by the clean crop's range": (V2, ["--pair_scaling", "clean_region"], V2),
    "v2, no clean pairs": (V2, ["--noise_menus", "$medden.engines.general_training.menus_without(('clean',))"], V2),
    "v2, medical images only": (V2, ["--group_patches", "$medden.engines.general_training.MEDICAL_GROUP_PATCHES"], V2),
    FULL: (V2, [], V2),
    "v2 + bias-corrected MR targets": (V2, ["--bias_corrected_magnitude", "True"], V2),
    "v2, clean targets": (V2, ["--pair_mode", "n2c"], V2),
}


#: name -> (the variant whose weights it runs, overrides of the runner's inference config)
RUN_VARIANTS = {
    "v2 (full recipe), no inference guard": (FULL, {"guard_highpass": 0, "guard_clip_sigmas": 0.0}),
}


def _logged_minutes(log: Path) -> float:
    """Minutes between the first and the last time stamp of a training log (0 when it has none)."""
    import re
    from datetime import datetime

    stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", log.read_text() if log.is_file() else "", re.M)
    if len(stamps) < 2:
        return 0.0
    first, last = (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S") for stamp in (stamps[0], stamps[-1]))
    return (last - first).total_seconds() / 60


def train(name: str, bundle: str, overrides: list[str], epochs: int, runs: Path, threads: int) -> tuple[Path, float]:
    """Train one variant unless its model exists; returns the weights and the training minutes (from its log)."""
    out = runs / name.replace(" ", "_").replace(",", "")
    model = out / "model.pt"
    if model.is_file():
        return model, _logged_minutes(out.with_suffix(".log"))
    configs = Path("bundles") / bundle / "configs"
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(configs / "train.json"),
               "--meta_file", str(configs / "metadata.json"), "--logging_file", str(configs / "logging.conf"),
               "--max_epochs", str(epochs), "--val_interval", "1", "--output_dir", str(out), "--save_model_to",
               str(model), *overrides]
    if (out / "last.pt").is_file():
        command += ["--resume_from", str(out / "last.pt")]
    start = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with open(out.with_suffix(".log"), "w") as log:
        subprocess.run(command, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
    return model, (time.perf_counter() - start) / 60


def score(bundle: str, weights: Path, cases, overrides: dict | None = None) -> dict[str, dict[str, float]]:
    """PSNR/SSIM of ``weights`` run in ``bundle`` (its inferer and scaling, with ``overrides``) on every case."""
    from medden.apps.benchmark.realistic import score_output
    from medden.bundle import bundle_network, load_bundle

    loaded = load_bundle(bundle, device="cpu", overrides=overrides)
    runner = dataclasses.replace(loaded, network=bundle_network(loaded.root, weights))
    return {case.name: score_output(case, runner.denoise(case.noisy)) for case in cases}


def _mean(scores: dict, families: dict, family: str) -> float:
    values = [scores[name]["psnr"] for name, case_family in families.items() if case_family == family]
    return float(np.mean(values)) if values else float("nan")


def markdown(results: dict) -> str:
    """The page, from the JSON alone."""
    families = results["families"]
    variants = results["variants"]
    full = variants.get(FULL)
    epochs = results["epochs"]
    lines = [
        "# Ablation: what each lever of the default model version 2 gives",
        "",
        "Written by `scripts/ablate_general_denoiser.py`; do not edit by hand.",
        "",
        f"Every variant is trained from scratch for {epochs} epochs (version 2: 70 batches of 16 patches of "
        "96 x 96 per epoch; version 1's recipe: 62 batches of 16 patches of 64 x 64), its learning rate annealed "
        f"over those epochs, on {results['threads']} CPU threads (torch {results['torch']}), and scored on the "
        "held-out cases of `docs/results/realistic_noise.md`, model only. PSNR in dB against the clean image, both "
        "mapped to [0, 1] by the clean image's 0.5-99.5th percentiles; mean over the cases of each family. A short "
        "budget: differences of a few tenths of a dB are within what another seed gives, and the shipped model "
        "trained far longer (see `bundles/general_denoiser_v2/docs/README.md`). Minutes are wall-clock on a machine "
        "shared with other work. Each variant runs in the bundle of its network: version 2's with its do-no-harm "
        "guard (`medden.inference.guard`; the last row shows the full recipe without it), version 1's network "
        "(the first two rows) in `general_denoiser`, which has no guard.",
        "",
        "| variant | overrides of the bundle's train.json (or inference config) | scanner-like noise | white noise | vs full v2 (scanner / white) | minutes |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| noisy input | - | {_mean(results['noisy'], families, 'scanner'):.2f} | "
        f"{_mean(results['noisy'], families, 'white'):.2f} | | |",
    ]
    for name, entry in variants.items():
        scanner, white = _mean(entry["scores"], families, "scanner"), _mean(entry["scores"], families, "white")
        change = ""
        if full is not None and name != FULL:
            change = (f"{scanner - _mean(full['scores'], families, 'scanner'):+.2f} / "
                      f"{white - _mean(full['scores'], families, 'white'):+.2f}")
        overrides = " ".join(f"`{item}`" for item in entry["overrides"]) or "none"
        lines.append(f"| {name} | {entry['bundle']}: {overrides} | {scanner:.2f} | {white:.2f} | {change} | "
                     f"{entry['minutes']:.1f} |")
    lines += ["", "## Per case (PSNR dB)", "", "| case | noisy | " + " | ".join(variants) + " |",
              "| --- | --- | " + " | ".join("---" for _ in variants) + " |"]
    for name in families:
        cells = [f"{entry['scores'][name]['psnr']:.2f}" for entry in variants.values()]
        lines.append(f"| {name} | {results['noisy'][name]['psnr']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--runs", default="runs/ablation", help="where the variants train (resumable)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=[*VARIANTS, *RUN_VARIANTS], choices=[*VARIANTS, *RUN_VARIANTS])
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from medden.apps.benchmark.realistic import SCANNER, WHITE, realistic_cases, score_output

    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    cases = realistic_cases(families=(SCANNER, WHITE))
    results = {"epochs": args.epochs, "torch": torch.__version__, "threads": args.threads,
               "families": {case.name: case.family for case in cases},
               "noisy": {case.name: score_output(case, case.noisy) for case in cases}, "variants": {}}
    for name in args.variants:
        if name in RUN_VARIANTS:
            source, run_overrides = RUN_VARIANTS[name]
            bundle, overrides, runner = VARIANTS[source]
            weights, minutes = train(source, bundle, overrides, args.epochs, runs, args.threads)
            overrides = [*overrides, *(f"inference: {key} {value}" for key, value in run_overrides.items())]
            results["variants"][name] = {"bundle": bundle, "overrides": overrides, "minutes": 0.0,
                                         "scores": score(runner, weights, cases, run_overrides)}
            continue
        bundle, overrides, runner = VARIANTS[name]
        weights, minutes = train(name, bundle, overrides, args.epochs, runs, args.threads)
        results["variants"][name] = {"bundle": bundle, "overrides": overrides, "minutes": minutes,
                                     "scores": score(runner, weights, cases)}
        print(f"{name}: trained in {minutes:.1f} min, scored", flush=True)
    output = Path(args.output)
    (output / "ablation.json").write_text(json.dumps(results, indent=2) + "\n")
    (output / "ablation.md").write_text(markdown(results))


if __name__ == "__main__":
    main()
