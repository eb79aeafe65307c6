"""Benchmark: the Direct Denoiser (Salmon & Krull) against its VAE's posterior mean and median.

Trains ``bundles/vae_direct_denoiser`` (ladder VAE co-trained with a Direct Denoiser U-Net on
noisy MNI152 T1 slices, Poisson-Gaussian noise) twice, with ``direct_loss`` l2 (posterior mean,
MMSE) and l1 (pixel-wise median, MMAE), same seed and config. On ``--slices`` evenly spaced
held-out test slices it scores, with PSNR/SSIM (data range 1) against the clean slice and median
seconds per image:

* the VAE posterior mean and median of N = 1, 10, 100, 1000 samples (the seed's Table 1; one
  ``posterior_statistics`` call per N gives both, and its time is reported for both);
* the Direct Denoiser, L2 and L1 (one forward pass each);
* a recorruption baseline on the same noisy data: ``general_denoiser_net`` trained ``y' -> y``
  with y' = y plus Poisson-Gaussian noise of the same peak and read sigma, applied with the
  Noisier2Noise closed form (alpha 1, the network fed a recorrupted y);
* BM3D with sigma estimated, and BM3D after the generalised Anscombe transform.

It also times training steps (Adamax, ``batch_size`` x ``patch_size`` from train.json) of the
VAE alone and of the VAE with the co-trained Direct Denoiser. Writes ``direct_denoiser.md``,
``.json``, ``direct_denoiser.png`` (PSNR against seconds per image, the seed's Figure 1) and
``direct_denoiser_examples.png`` into ``--output``.

    python scripts/benchmark_direct_denoiser.py [--epochs N] [--slices 5] [--max-samples 1000]
        [--work-dir runs/benchmark_direct_denoiser] [--reuse] [--publish] [--override KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from medden.apps.benchmark.helpers import contact_sheet, image_scores, timed_outputs, train_bundle
from medden.bundle import bundle_config
from medden.bundle.layout import WEIGHTS
from medden.io import publish_model
from medden.io.files import atomic_write
from medden.transforms import RandExtraPoissonGaussianNoise, RandPoissonGaussianNoise

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "vae_direct_denoiser"
STEM = "direct_denoiser"
SAMPLE_COUNTS = (1, 10, 100, 1000)
DIRECT_LOSSES = ("l2", "l1")
STEP_WARMUP, STEP_REPEATS = 2, 10
TEST_SEED, SAMPLE_SEED = 303, 404
SPEEDUP_TARGET = 50.0
#: row kinds (the plot and the target lines find their rows by these)
NOISY, VAE_MEAN, VAE_MEDIAN = "noisy", "vae_mean", "vae_median"
DIRECT = {"l2": "direct_l2", "l1": "direct_l1"}
RECORRUPTION, BM3D, BM3D_GAT = "recorruption", "bm3d", "bm3d_anscombe"
#: the seed's own training-step figures (its GPU, batch 64 of 64 x 64), quoted for scale
SEED_STEP_SECONDS = {"vae": 0.27, "cotrain": 0.34}


# ---- configuration ---------------------------------------------------------------------------


def parse_overrides(items: list[str], parser: argparse.ArgumentParser) -> dict:
    """``KEY=VALUE`` strings to a dict; VALUE is read as JSON (numbers, true, lists) or kept as text."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--override takes KEY=VALUE (e.g. n_groups=2), got {item!r}.")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def train_settings(overrides: dict) -> dict:
    """The train.json values this script reuses, with ``overrides`` applied."""
    parser = bundle_config(BUNDLE, "train.json", overrides)
    keys = ("seed", "max_epochs", "repeats_per_epoch", "batch_size", "patch_size", "learning_rate", "peak",
            "read_sigma", "val_interval")
    return {key: parser.get_parsed_content(key) for key in keys}


def network_overrides(overrides: dict) -> dict:
    """The overrides that inference.json also holds (network shape), so loading sees them too."""
    parser = bundle_config(BUNDLE)
    return {key: value for key, value in overrides.items() if key in parser}


def fresh_network(overrides: dict) -> torch.nn.Module:
    """The bundle's ``network_def`` (inference.json) with ``overrides``, freshly initialised."""
    return bundle_config(BUNDLE, overrides=overrides, only_known=True).get_parsed_content("network_def")


def load_model(weights: Path, overrides: dict, device: torch.device) -> torch.nn.Module:
    from medden.io import load_network_weights

    return load_network_weights(fresh_network(overrides), weights).to(device).eval()


# ---- training --------------------------------------------------------------------------------


def direct_runs(work: Path, epochs: int | None, overrides: dict, reuse: bool) -> dict:
    """Train (or reuse) the co-trained model for each Direct Denoiser loss: loss -> (weights, seconds)."""
    runs = {}
    for loss in DIRECT_LOSSES:
        settings = {**overrides, "direct_loss": loss, **({"max_epochs": epochs} if epochs is not None else {})}
        runs[loss] = train_bundle(BUNDLE, work / f"direct_{loss}", settings, reuse)
        print(f"trained direct_loss {loss}: {runs[loss]}", flush=True)
    return runs


def n2n_inferer(settings: dict, seed: int):
    """Noisier2Noise closed form (alpha 1) on a recorrupted input, whole slices padded to 256 x 256."""
    from monai.inferers import SlidingWindowInferer

    from medden.inference import Noisier2NoiseInferer

    window = SlidingWindowInferer((256, 256), sw_batch_size=1, padding_mode="replicate")
    recorrupt = RandExtraPoissonGaussianNoise(settings["peak"], settings["read_sigma"])
    return Noisier2NoiseInferer(1.0, window, recorrupt).set_random_state(seed)


def _recorruption_loader(settings: dict):
    from monai.data import Dataset
    from monai.transforms import Compose, RandFlipd, RandSpatialCropd

    from medden.data.datasets import CorruptedImageDataset
    from medden.data.slices import t1_slices
    from medden.engines import make_loader
    from medden.core.keys import Keys

    peak, read = settings["peak"], settings["read_sigma"]
    data = CorruptedImageDataset(t1_slices("train"), noise=RandPoissonGaussianNoise(peak, read),
                                 recorruption=RandExtraPoissonGaussianNoise(peak, read), seed=settings["seed"])
    keys = [Keys.INPUT, Keys.TARGET, Keys.CLEAN]
    transform = Compose([RandSpatialCropd(keys, settings["patch_size"], random_size=False),
                         RandFlipd(keys, prob=0.5, spatial_axis=0)])
    dataset = Dataset(torch.utils.data.ConcatDataset([data] * settings["repeats_per_epoch"]), transform)
    return make_loader(dataset, settings["batch_size"], shuffle=True, drop_last=True)


def train_recorruption(settings: dict, out_dir: Path, epochs: int, reuse: bool) -> tuple[Path, float | None]:
    """``general_denoiser_net`` trained y' -> y (:func:`medden.engines.train_recorruption`: MSE,
    Adam 1e-3, cosine), the VAE bundle's data, patches, batch size, repeats and checkpoint choice
    (validation PSNR of the corrected output)."""
    from monai.utils import set_determinism

    from medden.data.datasets import CorruptedImageDataset
    from medden.data.slices import t1_slices
    from medden.engines import default_device, make_loader
    from medden.engines import train_recorruption as train
    from medden.networks import general_denoiser_net

    weights, record = out_dir / "model.pt", out_dir / "training_seconds.json"
    if reuse and weights.is_file():
        return weights, json.loads(record.read_text())["seconds"] if record.is_file() else None
    set_determinism(seed=settings["seed"])
    device = default_device()
    network = general_denoiser_net().to(device)
    val = CorruptedImageDataset(t1_slices("val"), noise=RandPoissonGaussianNoise(settings["peak"], settings["read_sigma"]),
                                seed=settings["seed"] + 1)
    val_loader = make_loader(val, 4, shuffle=False)
    best, seconds = train(network, _recorruption_loader(settings), val_loader, epochs, out_dir, device,
                          val_inferer=n2n_inferer(settings, settings["seed"] + 2), val_interval=settings["val_interval"])
    publish_model(best, weights)
    record.write_text(json.dumps({"seconds": seconds, "epochs": epochs}) + "\n")
    return weights, seconds


# ---- training-step timing --------------------------------------------------------------------


def step_batch(settings: dict) -> torch.Tensor:
    """``batch_size`` noisy training slices (evenly spaced), centre-cropped to ``patch_size``."""
    from medden.data.slices import t1_slices

    slices = t1_slices("train")
    noise = RandPoissonGaussianNoise(settings["peak"], settings["read_sigma"]).set_random_state(settings["seed"])
    (ph, pw), batch = settings["patch_size"], []
    for index in np.linspace(0, len(slices) - 1, settings["batch_size"]).round().astype(int):
        noisy = np.asarray(noise(slices[index]), np.float32)
        top, left = (noisy.shape[1] - ph) // 2, (noisy.shape[2] - pw) // 2
        batch.append(noisy[:, top:top + ph, left:left + pw])
    return torch.as_tensor(np.stack(batch))


def step_seconds(settings: dict, overrides: dict, device: torch.device) -> dict:
    """Median seconds of one Adamax step, stage "vae" and "cotrain", same initial weights and batch."""
    batch, seconds = step_batch(settings).to(device), {}
    for stage in ("vae", "cotrain"):
        torch.manual_seed(settings["seed"])
        network = fresh_network(overrides).to(device).set_stage(stage).train()
        optimizer = torch.optim.Adamax([p for p in network.parameters() if p.requires_grad],
                                       lr=settings["learning_rate"])
        times = []
        for _ in range(STEP_WARMUP + STEP_REPEATS):
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            network(batch, stage=stage)["loss"].backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - started)
        seconds[stage] = float(np.median(times[STEP_WARMUP:]))
        print(f"training step, stage {stage}: {seconds[stage]:.4f} s", flush=True)
    return seconds


# ---- evaluation ------------------------------------------------------------------------------


def test_slices(count: int, settings: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(noisy, clean)`` for ``count`` evenly spaced test slices, seeded Poisson-Gaussian noise."""
    from medden.data.slices import t1_slices

    slices = t1_slices("test")
    noise = RandPoissonGaussianNoise(settings["peak"], settings["read_sigma"]).set_random_state(TEST_SEED)
    picks = np.unique(np.linspace(0, len(slices) - 1, count).round().astype(int))
    return [(np.asarray(noise(slices[i]), np.float32), slices[i]) for i in picks]


def sample_counts(cap: int) -> list[int]:
    """The seed's N = 1, 10, 100, 1000 below ``cap``, and ``cap`` itself (capped at 1000)."""
    return sorted({n for n in SAMPLE_COUNTS if n < cap} | {min(cap, SAMPLE_COUNTS[-1])})


def _row(method: str, kind: str, outputs: list, test: list, seconds: float, samples: int | None = None) -> dict:
    scores = [image_scores(out, clean) for out, (_, clean) in zip(outputs, test)]
    row = {"method": method, "kind": kind, "samples": samples, "psnr": float(np.mean([p for p, _ in scores])),
           "ssim": float(np.mean([s for _, s in scores])), "seconds_per_image": seconds}
    print(f"{method:55s} PSNR {row['psnr']:6.2f}  SSIM {row['ssim']:.4f}  {seconds:.4f} s", flush=True)
    return row


def vae_rows(vae, test: list, counts: list[int], device: torch.device) -> tuple[list[dict], dict]:
    """Posterior mean and median rows per N; also the statistics per N (for the figure)."""
    from medden.inference import posterior_statistics

    rows, maps = [], {}
    for n in counts:
        def run(noisy: np.ndarray, n: int = n) -> dict:
            generator = torch.Generator(device=device).manual_seed(SAMPLE_SEED)
            stats = posterior_statistics(vae, torch.as_tensor(noisy)[None].to(device), n, generator=generator)
            return {key: getattr(stats, key)[0].cpu().numpy() for key in ("mean", "median", "std")}

        outs, seconds = timed_outputs(run, [noisy for noisy, _ in test])
        maps[n] = outs
        rows.append(_row(f"VAE posterior mean, N={n}", VAE_MEAN, [o["mean"] for o in outs], test, seconds, n))
        rows.append(_row(f"VAE posterior median, N={n}", VAE_MEDIAN, [o["median"] for o in outs], test, seconds, n))
    return rows, maps


def single_pass_methods(models: dict, recorruption, settings: dict, device: torch.device) -> dict:
    """(kind, method name) -> function of one noisy ``(1, H, W)`` array."""
    from medden.anchors import bm3d_denoise, with_anscombe

    inferer = n2n_inferer(settings, TEST_SEED + 1)

    def net(fn):
        return lambda noisy: fn(torch.as_tensor(noisy)[None].to(device))[0].cpu().numpy()

    return {
        (NOISY, "noisy input"): lambda noisy: noisy,
        (DIRECT["l2"], "Direct Denoiser, L2 (mean)"): net(models["l2"]),
        (DIRECT["l1"], "Direct Denoiser, L1 (median)"): net(models["l1"]),
        (RECORRUPTION, "recorruption + Noisier2Noise (alpha 1)"): net(lambda x: inferer(x, recorruption)),
        (BM3D, "BM3D, sigma estimated"): lambda noisy: bm3d_denoise(noisy, None),
        (BM3D_GAT, "BM3D after generalised Anscombe (true peak, read sigma)"):
            with_anscombe(bm3d_denoise, settings["peak"], settings["read_sigma"]),
    }


def evaluate(models: dict, recorruption, test: list, counts: list[int], settings: dict,
             device: torch.device) -> tuple[list[dict], list]:
    """Every method's row, and the example figure's tiles (middle test slice)."""
    middle, rows, outputs = len(test) // 2, [], {}
    with torch.no_grad():
        for (kind, name), fn in single_pass_methods(models, recorruption, settings, device).items():
            outs, seconds = timed_outputs(fn, [noisy for noisy, _ in test])
            rows.append(_row(name, kind, outs, test, seconds))
            outputs[kind] = outs[middle]
        vae, maps = vae_rows(models["l2"].vae, test, counts, device)
    shown = max(n for n in counts if n <= 100)
    stats = maps[shown][middle]
    tiles = [("noisy", outputs[NOISY]), (f"VAE mean, N={shown}", stats["mean"]),
             (f"VAE std N={shown}, scaled to max", stats["std"] / max(float(stats["std"].max()), 1e-12)),
             ("Direct L2", outputs[DIRECT["l2"]]), ("BM3D (sigma est.)", outputs[BM3D]),
             ("BM3D + Anscombe", outputs[BM3D_GAT]), ("clean", test[middle][1])]
    return rows[:1] + vae + rows[1:], tiles


# ---- report ----------------------------------------------------------------------------------


def _find(rows: list[dict], kind: str, samples: int | None = None) -> dict | None:
    return next((r for r in rows if r["kind"] == kind and r["samples"] == samples), None)


def plot(path: Path, rows: list[dict]) -> Path:
    """PSNR against seconds per image (log x), the seed's Figure 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.6))
    for kind, label, style in ((VAE_MEAN, "VAE posterior mean", "o-"), (VAE_MEDIAN, "VAE posterior median", "s--")):
        line = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["samples"])
        ax.plot([r["seconds_per_image"] for r in line], [r["psnr"] for r in line], style, label=label)
        if kind == VAE_MEAN:
            for r in line:
                ax.annotate(f"N={r['samples']}", (r["seconds_per_image"], r["psnr"]), textcoords="offset points",
                            xytext=(4, -11), fontsize=7)
    for kind, marker in ((DIRECT["l2"], "*"), (DIRECT["l1"], "D"), (RECORRUPTION, "^"), (BM3D, "v"),
                         (BM3D_GAT, "P")):
        r = _find(rows, kind)
        ax.plot(r["seconds_per_image"], r["psnr"], marker, markersize=12 if marker == "*" else 8, linestyle="none",
                label=r["method"])
    ax.axhline(_find(rows, NOISY)["psnr"], color="grey", linestyle=":", label="noisy input")
    ax.set_xscale("log")
    ax.set_xlabel("seconds per image (log scale)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("Direct Denoiser vs VAE posterior sampling (MNI152 T1, Poisson-Gaussian)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120), overwrite=True)
    finally:
        plt.close(fig)


def targets(rows: list[dict], cap: int) -> dict:
    """The two targets and the seed's claim, from the measured rows (None where not measured)."""
    l2, l1 = _find(rows, DIRECT["l2"]), _find(rows, DIRECT["l1"])
    mean100, mean1000, median1000 = _find(rows, VAE_MEAN, 100), _find(rows, VAE_MEAN, 1000), _find(rows, VAE_MEDIAN, 1000)
    out = {"max_samples": cap}
    if mean100:
        out["psnr_vs_mean100"] = {"direct": l2["psnr"], "vae": mean100["psnr"], "met": l2["psnr"] >= mean100["psnr"]}
        ratio = mean100["seconds_per_image"] / l2["seconds_per_image"]
        out["speedup_vs_mean100"] = {"ratio": ratio, "met": ratio >= SPEEDUP_TARGET}
    if mean1000:
        out["seed_claim_l2_vs_mean1000"] = {"direct": l2["psnr"], "vae": mean1000["psnr"],
                                            "met": l2["psnr"] >= mean1000["psnr"]}
        out["seed_claim_l1_vs_median1000"] = {"direct": l1["psnr"], "vae": median1000["psnr"],
                                              "met": l1["psnr"] >= median1000["psnr"]}
    return out


def _verdict(entry: dict) -> str:
    return "MET" if entry["met"] else "NOT MET"


def target_lines(t: dict, rows: list[dict]) -> list[str]:
    missing = f"NOT MEASURED (this run drew at most {t['max_samples']} samples)"
    lines = []
    if "psnr_vs_mean100" in t:
        e = t["psnr_vs_mean100"]
        lines.append(f"- Direct (L2) PSNR >= VAE mean with 100 samples: **{_verdict(e)}** "
                     f"({e['direct']:.3f} vs {e['vae']:.3f} dB)")
        s, l2, mean100 = t["speedup_vs_mean100"], _find(rows, DIRECT["l2"]), _find(rows, VAE_MEAN, 100)
        lines.append(f"- inference time >= {SPEEDUP_TARGET:.0f}x less than the 100-sample mean: **{_verdict(s)}** "
                     f"({s['ratio']:.1f}x: {l2['seconds_per_image']:.4f} s vs {mean100['seconds_per_image']:.3f} s "
                     "per image)")
    else:
        lines += [f"- Direct (L2) PSNR >= VAE mean with 100 samples: {missing}",
                  f"- inference time >= {SPEEDUP_TARGET:.0f}x less than the 100-sample mean: {missing}"]
    if "seed_claim_l2_vs_mean1000" in t:
        a, b = t["seed_claim_l2_vs_mean1000"], t["seed_claim_l1_vs_median1000"]
        lines.append(f"- The seed's claim, Direct at least as good as the 1000-sample consensus: L2 vs mean "
                     f"**{_verdict(a)}** ({a['direct']:.3f} vs {a['vae']:.3f} dB), L1 vs median **{_verdict(b)}** "
                     f"({b['direct']:.3f} vs {b['vae']:.3f} dB)")
    else:
        lines.append(f"- The seed's claim, Direct at least as good as the 1000-sample consensus: {missing}")
    return lines


def seed_style_table(rows: list[dict], counts: list[int]) -> list[str]:
    """The seed's Table 1 layout: PSNR per N, mean / median, and the Direct Denoiser L2 / L1."""
    cells = [f"{_find(rows, VAE_MEAN, n)['psnr']:.2f} / {_find(rows, VAE_MEDIAN, n)['psnr']:.2f}" for n in counts]
    direct = f"{_find(rows, DIRECT['l2'])['psnr']:.2f} / {_find(rows, DIRECT['l1'])['psnr']:.2f}"
    return ["| N (VAE samples) | " + " | ".join(str(n) for n in counts) + " | Direct |",
            "| --- |" + " --- |" * (len(counts) + 1),
            "| PSNR dB, mean / median (Direct: L2 / L1) | " + " | ".join(cells) + f" | {direct} |"]


def write_report(out: Path, report: dict) -> None:
    text = markdown(report)
    atomic_write(out / f"{STEM}.md", lambda tmp: tmp.write_text(text), overwrite=True)


def markdown(report: dict) -> str:
    """The results page, from the JSON report alone."""
    rows, steps, machine = report["rows"], report["training_step_seconds"], report["machine"]
    budget = report["training"]
    lines = [
        "# Direct Denoiser vs VAE posterior sampling (bundle `vae_direct_denoiser`)", "",
        f"Written by `scripts/benchmark_direct_denoiser.py` on {machine['processor']} ({machine['platform']}), "
        f"torch {machine['torch']}, {machine['threads']} threads, device {machine['device']}; every number below "
        "was measured by that run. Do not edit by hand.", "",
        f"Test data: {report['test_slices']} evenly spaced MNI152 T1 test-slab slices ({report['image_shape']}, "
        f"[0, 1]) with Poisson-Gaussian noise (peak {report['settings']['peak']:g}, read sigma "
        f"{report['settings']['read_sigma']:g}), one seeded draw. PSNR/SSIM against the clean slice, data range 1, "
        "averaged over slices; seconds are medians per slice. The VAE rows use the VAE of the L2 run; mean and median "
        "for one N come from one `posterior_statistics` call (median included), whose time both rows report. "
        "Training used noisy images only; checkpoints were chosen on clean validation slices, as the bundle does.", "",
        *seed_style_table(rows, report["sample_counts"]), "",
        "| method | PSNR (dB) | SSIM | seconds / image |", "| --- | --- | --- | --- |",
        *[f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds_per_image']:.4f} |" for r in rows], "",
        "## Targets", "", *target_lines(report["targets"], rows), "",
        "## Training cost", "",
        f"One Adamax step on a fixed batch of {report['settings']['batch_size']} x "
        f"{'x'.join(str(s) for s in report['settings']['patch_size'])} noisy patches (median of {STEP_REPEATS} "
        f"after {STEP_WARMUP} warm-up steps, fresh weights):", "",
        "| training step | seconds / step |", "| --- | --- |",
        f"| VAE alone (stage vae) | {steps['vae']:.4f} |",
        f"| VAE + Direct Denoiser (stage cotrain) | {steps['cotrain']:.4f} |", "",
        f"Co-training costs {steps['cotrain'] / steps['vae']:.2f}x the VAE-alone step here (the seed, on its GPU "
        f"with batch 64: {SEED_STEP_SECONDS['cotrain']} vs {SEED_STEP_SECONDS['vae']} s, "
        f"{SEED_STEP_SECONDS['cotrain'] / SEED_STEP_SECONDS['vae']:.2f}x).", "",
        "| run | epochs | training seconds |", "| --- | --- | --- |",
        *[f"| {name} | {b['epochs']} | {'n/a (reused, no record)' if b['seconds'] is None else round(b['seconds'])} |"
          for name, b in budget.items()], "",
        f"Config overrides: `{json.dumps(report['overrides'])}`." if report["overrides"] else "Config: as shipped.", "",
        f"![PSNR against seconds per image]({STEM}.png)", "",
        f"![noisy, VAE mean, VAE std (rescaled to its maximum), Direct L2, BM3D, BM3D + Anscombe, clean]"
        f"({STEM}_examples.png)", "",
    ]
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------


def main() -> None:
    from medden.engines import default_device
    from medden.io import load_network_weights
    from medden.networks import general_denoiser_net

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="max_epochs of both VAE runs (default: the bundle's)")
    parser.add_argument("--recorruption-epochs", type=int, default=None, help="default: the VAE runs' epochs")
    parser.add_argument("--slices", type=int, default=5, help="evenly spaced test slices")
    parser.add_argument("--max-samples", type=int, default=1000, help="cap on the VAE sample counts N")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="train.json override (JSON value), e.g. n_groups=2; network keys also apply when loading")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "benchmark_direct_denoiser")
    parser.add_argument("--reuse", action="store_true", help="reuse models already trained in --work-dir")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--device", default=None, help="inference and step-timing device (default: cuda if available)")
    parser.add_argument("--publish", action="store_true", help="copy the L2 model into the bundle's models/model.pt")
    args = parser.parse_args()
    for name in ("slices", "max_samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
    overrides = parse_overrides(args.override, parser)
    net_overrides = network_overrides(overrides)
    if args.publish and net_overrides:
        parser.error(f"--publish would put a model with a changed network ({net_overrides}) into the bundle, whose "
                     "inference.json could not load it; drop those --override values or --publish.")
    device = torch.device(args.device) if args.device else default_device()
    settings = train_settings({**overrides, **({"max_epochs": args.epochs} if args.epochs is not None else {})})
    epochs = settings["max_epochs"]
    recorruption_epochs = args.recorruption_epochs or epochs

    runs = direct_runs(args.work_dir, args.epochs, overrides, args.reuse)
    rec_weights, rec_seconds = train_recorruption(settings, args.work_dir / "recorruption", recorruption_epochs,
                                                  args.reuse)
    if args.publish:
        publish_model(runs["l2"][0], BUNDLE / WEIGHTS)
    models = {loss: load_model(weights, net_overrides, device) for loss, (weights, _) in runs.items()}
    recorruption = load_network_weights(general_denoiser_net(), rec_weights).to(device).eval()
    steps = step_seconds(settings, net_overrides, device)
    test, counts = test_slices(args.slices, settings), sample_counts(args.max_samples)
    rows, tiles = evaluate(models, recorruption, test, counts, settings, device)

    budget = {f"VAE + Direct Denoiser ({loss})": {"epochs": epochs, "seconds": seconds}
              for loss, (_, seconds) in runs.items()}
    budget["recorruption"] = {"epochs": recorruption_epochs, "seconds": rec_seconds}
    report = {
        "rows": rows, "sample_counts": counts, "targets": targets(rows, args.max_samples),
        "training_step_seconds": {**steps, "ratio_cotrain_over_vae": steps["cotrain"] / steps["vae"]},
        "training": budget, "test_slices": len(test), "image_shape": "x".join(str(s) for s in test[0][1].shape),
        "settings": settings, "overrides": overrides, "max_samples": args.max_samples,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                    "device": str(device)},
    }
    args.output.mkdir(parents=True, exist_ok=True)
    atomic_write(args.output / f"{STEM}.json", lambda tmp: tmp.write_text(json.dumps(report, indent=2) + "\n"),
                 overwrite=True)
    plot(args.output / f"{STEM}.png", rows)
    contact_sheet(args.output / f"{STEM}_examples.png", [tiles], label_chars=30)
    write_report(args.output, report)


if __name__ == "__main__":
    main()
