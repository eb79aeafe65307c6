"""Noise2Noise against clean-target training and the classical anchors, on held-out slices.

Two experiments, each trained twice with the identical budget (same bundle config, epochs,
data, network, optimiser and seed; only the targets differ):

* **k-space**: ``bundles/n2n_kspace_mri``: MNI152 T1 test-slab slices (padded to 256 x 256)
  sampled with the radial variable-density Bernoulli mask (about 10%), one fixed pattern per
  slice. Columns: zero-filled input, Noise2Noise, Noise2Clean, and compressed sensing
  (``sigpy.mri.app.L1WaveletRecon``, regularisation chosen on the validation slab).
* **Gaussian**: ``bundles/n2n_image`` with sigma = 25/255 on the held-out test images of every
  sample modality. Columns: noisy input, Noise2Noise, Noise2Clean, BM3D (true sigma).

PSNR/SSIM use data range 1 on the image's own region (k-space slices: the unpadded slice).
Seconds are medians per slice on this machine. Writes ``n2n.md``, ``n2n.json``,
``n2n_kspace.png`` and ``n2n_gaussian.png`` into ``--output``.

    python scripts/benchmark_n2n.py [--kspace-epochs 100] [--image-epochs 50] [--publish]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch

from medden.apps.benchmark.helpers import contact_sheet, image_scores, timed_outputs, train_bundle
from medden.bundle import bundle_network
from medden.bundle.layout import WEIGHTS
from medden.core import protocols
from medden.io import publish_model

ROOT = Path(__file__).resolve().parents[1]
KSPACE_BUNDLE, IMAGE_BUNDLE = ROOT / "bundles" / "n2n_kspace_mri", ROOT / "bundles" / "n2n_image"
SIGMA = protocols.N2N_GAUSSIAN_SIGMA_TEST
CS_LAMBDAS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
CS_ITERATIONS = 100


# ---- k-space -------------------------------------------------------------------------------


def undersampled_slices(split: str, seed: int):
    """(clean (1, 256, 256), raw k-space (1, 256, 256, 2), mask (1, 256, 256), zero-filled) per slice."""
    from medden.data.mri import kspace_slices
    from medden.transforms import RandKspaceUndersample

    undersample = RandKspaceUndersample("radial_bernoulli", output="real").set_random_state(seed)
    return [(clean, *undersample(clean)) for clean in kspace_slices(split)]


def slice_region() -> tuple[slice, slice]:
    """Where the unpadded MNI slice sits inside the 256 x 256 field of view."""
    from medden.data.mri import fit_field_of_view
    from medden.data.slices import mni_slices

    inside = fit_field_of_view(np.ones_like(mni_slices("test")[0]))[0] > 0
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def cs_recon(kspace: np.ndarray, mask: np.ndarray, lamda: float) -> np.ndarray:
    """L1-wavelet compressed sensing (sigpy), real part, ``(1, H, W)``."""
    import sigpy.mri.app

    measured = kspace[0, ..., 0] + 1j * kspace[0, ..., 1]
    app = sigpy.mri.app.L1WaveletRecon(measured[None], np.ones((1, *measured.shape), np.complex64), lamda,
                                       weights=mask[0], max_iter=CS_ITERATIONS, show_pbar=False)
    return np.real(app.run())[None].astype(np.float32)


def network_recon(network, kspace: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from medden.inference.kspace import density_weights, reconstruct_kspace

    return reconstruct_kspace(network, kspace[None], mask, density_weights(mask, "radial_bernoulli"))[0]


def mean_psnr(fn, items, region) -> float:
    return float(np.mean([image_scores(fn(k, m)[(slice(None), *region)], c[(slice(None), *region)])[0]
                          for c, k, m, _ in items]))


def validation_psnr(models: dict, region) -> tuple[float, dict]:
    """CS lambda chosen on every third validation-slab slice, and every method's PSNR there."""
    val = undersampled_slices("val", seed=11)[::3]
    cs = {}
    for lamda in CS_LAMBDAS:
        cs[lamda] = mean_psnr(lambda k, m: cs_recon(k, m, lamda), val, region)
        print(f"CS lambda {lamda:g}: validation PSNR {cs[lamda]:.2f}")
    psnrs = {f"CS lambda {lamda:g}": value for lamda, value in cs.items()}
    with torch.no_grad():
        for mode, name in (("n2n", "Noise2Noise"), ("n2c", "Noise2Clean")):
            psnrs[name] = mean_psnr(lambda k, m: network_recon(models[mode], k, m), val, region)
    return max(cs, key=cs.get), {"slices": len(val), "psnr": psnrs}


def kspace_experiment(models: dict, region) -> dict:
    test = undersampled_slices("test", seed=21)
    lamda, validation = validation_psnr(models, region)
    methods = {
        "zero-filled": lambda item: item[3],
        "Noise2Noise": lambda item: network_recon(models["n2n"], item[1], item[2]),
        "Noise2Clean": lambda item: network_recon(models["n2c"], item[1], item[2]),
        f"CS L1-wavelet (lambda {lamda:g})": lambda item: cs_recon(item[1], item[2], lamda),
    }
    rows, outputs = {}, {}
    with torch.no_grad():
        for name, fn in methods.items():
            outs, seconds = timed_outputs(fn, test)
            pairs = [image_scores(o[(slice(None), *region)], item[0][(slice(None), *region)]) for o, item in zip(outs, test)]
            rows[name] = {"psnr": float(np.mean([p for p, _ in pairs])), "ssim": float(np.mean([s for _, s in pairs])),
                          "seconds_per_slice": seconds}
            outputs[name] = outs[len(outs) // 2]
            print(f"k-space {name}: {rows[name]}")
    sampled = float(np.mean([item[2].mean() for item in test]))
    return {"rows": rows, "slices": len(test), "sampled_fraction": sampled, "cs_lambda": lamda,
            "validation": validation, "figure": [("clean", test[len(test) // 2][0]), *outputs.items()]}


# ---- Gaussian ------------------------------------------------------------------------------


def gaussian_experiment(models: dict) -> dict:
    from monai.inferers import SlidingWindowInferer

    from medden.anchors import bm3d_denoise
    from medden.data.modalities import general_test_images
    from medden.transforms import RandGaussianSigmaNoise

    inferer = SlidingWindowInferer((256, 256), sw_batch_size=1, padding_mode="replicate")
    noise = RandGaussianSigmaNoise(SIGMA).set_random_state(7)
    test = [(item, noise(item.image)) for item in general_test_images()]

    def net(model):
        return lambda pair: inferer(torch.as_tensor(pair[1])[None], model)[0].numpy()

    methods = {"noisy": lambda pair: pair[1], "Noise2Noise": net(models["n2n"]), "Noise2Clean": net(models["n2c"]),
               "BM3D (true sigma)": lambda pair: bm3d_denoise(pair[1], SIGMA)}
    rows, figure_tiles = {}, [("clean", test[0][0].image)]
    with torch.no_grad():
        for name, fn in methods.items():
            outs, seconds = timed_outputs(fn, test)
            per_image = {f"{pair[0].modality}: {pair[0].name}": image_scores(o, pair[0].image) for o, pair in zip(outs, test)}
            rows[name] = {"psnr": float(np.mean([p for p, _ in per_image.values()])),
                          "ssim": float(np.mean([s for _, s in per_image.values()])), "seconds_per_image": seconds,
                          "per_image": per_image}
            figure_tiles.append((name, outs[0]))
            print(f"gaussian {name}: psnr {rows[name]['psnr']:.2f} ssim {rows[name]['ssim']:.4f}")
    return {"rows": rows, "images": len(test), "figure": figure_tiles}


# ---- report --------------------------------------------------------------------------------


def table(rows: dict, seconds_key: str) -> list[str]:
    unit = seconds_key.replace("seconds_per_", "")
    lines = [f"| method | PSNR (dB) | SSIM | seconds per {unit} |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r[seconds_key]:.4f} |" for name, r in rows.items()]
    return lines


def markdown(results: dict) -> str:
    """The results page, from the JSON (``kspace``, ``gaussian``, ``budget``, ``machine``) alone."""
    kspace, gaussian, budget, machine = results["kspace"], results["gaussian"], results["budget"], results["machine"]
    k, g = kspace["rows"], gaussian["rows"]
    cs_name = next(name for name in k if name.startswith("CS"))
    k_gap, g_gap = k["Noise2Noise"]["psnr"] - k["Noise2Clean"]["psnr"], g["Noise2Noise"]["psnr"] - g["Noise2Clean"]["psnr"]
    speedup = k[cs_name]["seconds_per_slice"] / k["Noise2Noise"]["seconds_per_slice"]
    lines = [
        "# Noise2Noise: k-space MRI and Gaussian noise", "",
        f"Written by `scripts/benchmark_n2n.py` on {machine['processor']}, {machine['threads']} threads, torch "
        f"{machine['torch']}. Every number below was measured by that run.", "",
        "## Undersampled MRI (k-space)", "",
        f"MNI152 T1 test slab, {kspace['slices']} axial slices padded to 256 x 256, one radial variable-density Bernoulli "
        f"pattern per slice (mean sampled fraction {kspace['sampled_fraction']:.3f}); metrics on the unpadded "
        "197 x 233 slice, data range 1. Networks: the bundle's residual U-Net, zero-filled (density-compensated) input, "
        "measured frequencies restored (data consistency). CS: sigpy L1WaveletRecon, "
        f"{CS_ITERATIONS} iterations, lambda chosen on the validation slab (below).", "",
        *table(k, "seconds_per_slice"), "",
        f"On the validation slab ({kspace['validation']['slices']} slices, every third; where CS's lambda and the "
        "networks' checkpoints were chosen), PSNR in dB: "
        + ", ".join(f"{name} {value:.2f}" for name, value in kspace["validation"]["psnr"].items()) + ".", "",
        f"- Noise2Noise minus Noise2Clean: **{k_gap:+.2f} dB** (target: within 0.1 dB; the paper: 31.74 vs 31.77 dB on IXI).",
        f"- Noise2Noise minus CS: **{k['Noise2Noise']['psnr'] - k[cs_name]['psnr']:+.2f} dB**, at **{speedup:.0f}x** "
        "the speed (target: above CS and at least 20x faster).", "",
        "## Gaussian noise, sigma = 25/255", "",
        f"Held-out test images of every sample modality ({gaussian['images']} images: 3 MNI test-slab slices, "
        "abdomen MR, head CT, chest radiograph, histology), scaled to [0, 1]; whole images through a 256 x 256 sliding window.",
        "", *table(g, "seconds_per_image"), "",
        f"- Noise2Noise minus Noise2Clean: **{g_gap:+.2f} dB** (target: within 0.1 dB).",
        f"- Noise2Noise minus BM3D: **{g['Noise2Noise']['psnr'] - g['BM3D (true sigma)']['psnr']:+.2f} dB**.", "",
        "Per image (PSNR dB / SSIM):", "",
        "| image | " + " | ".join(g) + " |", "| --- |" + " --- |" * len(g),
    ]
    for image in g["noisy"]["per_image"]:
        lines.append(f"| {image} | " + " | ".join(f"{r['per_image'][image][0]:.2f} / {r['per_image'][image][1]:.3f}"
                                                 for r in g.values()) + " |")
    lines += ["", "## Training budget", "",
              "Both members of each pair ran the same bundle config with the same seed, epochs, data, network and "
              "optimiser; only `pair_mode` differed (`n2n`: an independent second realisation as the target; `n2c`: "
              "the clean image, for k-space a fully sampled target through the same Fourier loss). The budget is equal "
              "in epochs; the seconds are wall-clock on this machine and grow when it is busy with other work.", "",
              "| run | epochs | training seconds |", "| --- | --- | --- |"]
    lines += [f"| {name} | {b['epochs']} | {b['seconds'] if b['seconds'] is None else round(b['seconds'])} |"
              for name, b in budget.items()]
    lines += ["", "![k-space](n2n_kspace.png)", "", "![Gaussian](n2n_gaussian.png)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kspace-epochs", type=int, default=100)
    parser.add_argument("--image-epochs", type=int, default=50)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "benchmark_n2n")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--reuse", action="store_true", help="reuse trained models found in --work")
    parser.add_argument("--publish", action="store_true", help="copy the Noise2Noise models into the bundles")
    args = parser.parse_args()
    torch.manual_seed(0)
    budget, models = {}, {}
    for bundle, epochs, tag in ((KSPACE_BUNDLE, args.kspace_epochs, "kspace"), (IMAGE_BUNDLE, args.image_epochs, "image")):
        for mode in ("n2n", "n2c"):
            weights, seconds = train_bundle(bundle, args.work / f"{tag}_{mode}", {"max_epochs": epochs, "pair_mode": mode},
                                            args.reuse)
            budget[f"{tag} {mode}"] = {"epochs": epochs, "seconds": seconds}
            models[(tag, mode)] = bundle_network(bundle, weights)
            if args.publish and mode == "n2n":
                publish_model(weights, bundle / WEIGHTS)
    kspace = kspace_experiment({m: models[("kspace", m)] for m in ("n2n", "n2c")}, slice_region())
    gaussian = gaussian_experiment({m: models[("image", m)] for m in ("n2n", "n2c")})
    args.output.mkdir(parents=True, exist_ok=True)
    contact_sheet(args.output / "n2n_kspace.png", [kspace.pop("figure")], tile_size=224)
    contact_sheet(args.output / "n2n_gaussian.png", [gaussian.pop("figure")], tile_size=224)
    machine = {"processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "torch": torch.__version__}
    results = {"kspace": kspace, "gaussian": gaussian, "budget": budget, "machine": machine}
    (args.output / "n2n.md").write_text(markdown(results))
    (args.output / "n2n.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
