"""Probe: what the flow-prior objective itself prefers, with no denoising network in the way.

For one flow checkpoint and one MNI152 T1 validation slice (cropped to 192 x 224, Gaussian
noise sigma 25/255, seeded), it prints:

* the flow's negative log density per value (nats) of the clean slice, the noisy slice, BM3D's
  output and the noisy slice under Gaussian blurs of std 0.5-2 px, with the objective's value
  for each (a good prior ranks them by closeness to the clean slice);
* the MAP estimate of ``FlowPriorLoss`` found by L-BFGS from the noisy slice (3 rounds of 50
  iterations) for each ``--settings`` entry ``BLUR:WIDTH:LAMBDA_SCALE``: its PSNR after each
  round and its final negative log density.

The bundle's defaults (smoothed prior, no blur, lambda 0.5 x 2 sigma^2) were chosen with this
probe; see ``bundles/flow_prior_unpaired/docs/README.md``.

    python scripts/probe_flow_prior_map.py FLOW.pt [--levels 3 --steps 4 --hidden 64]
        [--settings none:1:0.5 gaussian:1:1] [--slice 10] [--label TEXT] [--output FILE.md]

With ``--output`` the tables are appended to that markdown file under a heading naming
``--label`` (what the flow is), so several flows can be compared on one page.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from medden.core import protocols
from medden.data.unpaired import unpaired_slices
from medden.io import load_network_weights
from medden.losses import FlowPriorLoss, blur_images
from medden.metrics.image_quality import psnr
from medden.networks import ImageFlow

SIGMA = protocols.FLOW_PRIOR_SIGMA_TEST


def _psnr(image: torch.Tensor, clean: torch.Tensor) -> float:
    return round(float(psnr(image.detach()[0].numpy(), clean[0].numpy(), 1.0)[0]), 2)


def _nll(flow, image: torch.Tensor) -> float:
    with torch.no_grad():
        return round(float(-flow(image) / image[0].numel()), 3)


def main() -> None:
    from medden.anchors import BM3DDenoiser

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flow", help="flow weights (a stage-1 best.pt or models/flow.pt)")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--settings", nargs="+", default=["none:1:0.5", "none:1:1", "gaussian:1:1"])
    parser.add_argument("--slice", type=int, default=10, help="index into the validation slab")
    parser.add_argument("--label", default=None, help="what the flow is (the heading of this probe)")
    parser.add_argument("--output", type=Path, default=None, help="append the tables to this markdown file")
    args = parser.parse_args()
    lines = [f"## {args.label or args.flow}", ""]

    flow = load_network_weights(ImageFlow(1, args.levels, args.steps, args.hidden), args.flow).eval()
    clean = torch.as_tensor(unpaired_slices("val")[args.slice][:, :192, :224])[None]
    noisy = clean + SIGMA * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    bm3d = torch.as_tensor(np.asarray(BM3DDenoiser(sigma=SIGMA)(noisy[0].numpy()), np.float32))[None]
    candidates = {"clean": clean, "noisy": noisy, "BM3D": bm3d,
                  **{f"noisy, blur {w:g} px": blur_images(noisy, "gaussian", w) for w in (0.5, 1.0, 1.5, 2.0)}}
    seed_loss = FlowPriorLoss(flow, blur="gaussian", blur_width=1.0, lambda_scale=1.0, noise_sigma=SIGMA)
    lines += ["| image | PSNR (dB) | -log f / value (nats) | seed objective (blur 1 px, lambda 1) |",
              "| --- | --- | --- | --- |"]
    for name, image in candidates.items():
        with torch.no_grad():
            value = float(seed_loss(image, noisy))
        lines.append(f"| {name} | {_psnr(image, clean)} | {_nll(flow, image)} | {value:.4f} |")
    lines += ["", "| blur : width : lambda scale | MAP PSNR after 50 / 100 / 150 L-BFGS iterations | -log f / value |",
              "| --- | --- | --- |"]
    for setting in args.settings:
        blur, width, scale = setting.split(":")
        loss = FlowPriorLoss(flow, blur=blur, blur_width=float(width), lambda_scale=float(scale), noise_sigma=SIGMA)
        estimate = noisy.clone().requires_grad_(True)
        optimizer = torch.optim.LBFGS([estimate], lr=1, max_iter=50, history_size=20, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            value = loss(estimate, noisy)
            value.backward()
            return value

        rounds = []
        for _ in range(3):
            optimizer.step(closure)
            rounds.append(_psnr(estimate, clean))
        lines.append(f"| {setting} | {' / '.join(str(r) for r in rounds)} | {_nll(flow, estimate.detach())} |")
    text = "\n".join(lines) + "\n\n"
    print(text)
    if args.output is not None:
        with open(args.output, "a") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
