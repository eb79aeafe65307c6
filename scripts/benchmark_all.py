"""Benchmark: every method on every sample modality and noise (``medden benchmark``).

The same as ``medden benchmark [ARGS]``: the held-out sample images (brain MR, shoulder MR,
head CT, chest X-ray, histology) under Gaussian (sigma 20/255), Poisson (lambda 30),
Bernoulli (p 0.5) and k-space (radial, ~10%) noise; the classical anchors (NLM, TV, BM3D,
dipy NLM on MR, L1-wavelet CS on k-space), every shipped medden bundle on the noise it was
trained for, and supervised networks trained with clean targets (the zoo on Gaussian noise,
the upper bound on every noise; cached in runs/benchmark). Writes docs/results/README.md,
docs/results/benchmark.json and docs/results/benchmark_<modality>.png. Run from the
repository root:

    python scripts/benchmark_all.py                 # the published page (trains, then ~15 min)
    python scripts/benchmark_all.py --quick --output /tmp/bench   # a few minutes, no training
"""

import sys

from medden.apps.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
