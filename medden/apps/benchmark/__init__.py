"""``medden benchmark``: every method on every sample modality and noise, on one page.

* :mod:`~medden.apps.benchmark.cases` — the test images and the four noises;
* :mod:`~medden.apps.benchmark.methods` — classical anchors, shipped bundles, supervised networks;
* :mod:`~medden.apps.benchmark.runner` — scoring and timing (:func:`run_benchmark`);
* :mod:`~medden.apps.benchmark.report` — the markdown tables, JSON and figures;
* :mod:`~medden.apps.benchmark.helpers` — what the per-method benchmark scripts share.
"""

from medden.apps.benchmark.cases import NOISES, Case, NoiseSpec, make_case
from medden.apps.benchmark.report import aggregate, markdown, write_results
from medden.apps.benchmark.runner import BenchmarkSettings, run_benchmark, supervised_method, train_supervised

__all__ = [
    "NOISES",
    "BenchmarkSettings",
    "Case",
    "NoiseSpec",
    "aggregate",
    "make_case",
    "markdown",
    "run_benchmark",
    "supervised_method",
    "train_supervised",
    "write_results",
]
