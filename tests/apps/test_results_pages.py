"""Every page under docs/results/ re-renders identically from the JSON next to it.

Each page is written by a script in ``scripts/`` that measures, saves the measurements as JSON
and renders the page from that JSON alone (the ``markdown`` function of each script). Here every
committed page is rendered again from its committed JSON and compared byte for byte, so a page
edited by hand, or a renderer that reads anything beyond the JSON, fails. Figures (PNG) are not
compared. ``flow_prior_probe.md`` is the one page without a JSON: ``scripts/probe_flow_prior_map.py``
appends one section per flow it is given, and its first flow (an exploration run) is not shipped.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
#: page -> (script under scripts/, or the package module that renders it; its JSON)
PAGES = {
    "README.md": ("medden.apps.benchmark.report", "benchmark.json"),
    "batch_throughput.md": ("benchmark_batch_throughput", "batch_throughput.json"),
    "deployment.md": ("benchmark_deployment", "deployment.json"),
    "direct_denoiser.md": ("benchmark_direct_denoiser", "direct_denoiser.json"),
    "flow_prior.md": ("benchmark_flow_prior", "flow_prior.json"),
    "general_denoiser.md": ("benchmark_general_denoiser", "general_denoiser.json"),
    "harm_flags.md": ("calibrate_harm_flags", "harm_flags.json"),
    "n2n.md": ("benchmark_n2n", "n2n.json"),
    "no_harm.md": ("no_harm_real_files", "no_harm.json"),
    "realistic_noise.md": ("benchmark_realistic_noise", "realistic_noise.json"),
    "ablation.md": ("ablate_general_denoiser", "ablation.json"),
    "volumes_and_fit.md": ("benchmark_volumes_and_fit", "volumes_and_fit.json"),
    "real_noisy_mr.md": ("real_noisy_mr", "real_noisy_mr.json"),
    "recorruption_camelyon.md": ("benchmark_recorruption_seed", "recorruption_camelyon.json"),
    "recorruption_ixi.md": ("benchmark_recorruption", "recorruption_ixi.json"),
    "recorruption_jsrt.md": ("benchmark_recorruption_seed", "recorruption_jsrt.json"),
}
WITHOUT_JSON = {"flow_prior_probe.md"}


def _renderer(name: str):
    if name.startswith("medden."):
        return importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(f"results_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_page_is_listed():
    assert {p.name for p in RESULTS.glob("*.md")} == set(PAGES) | WITHOUT_JSON


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_re_renders_identically(page):
    script, data = PAGES[page]
    results = json.loads((RESULTS / data).read_text())
    assert _renderer(script).markdown(results) == (RESULTS / page).read_text(), (
        f"docs/results/{page} differs from what its renderer writes from {data}; render it again with the "
        "script's renderer (never edit the page or the numbers by hand)")
