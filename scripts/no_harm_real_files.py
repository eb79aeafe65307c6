"""Do no harm on real clean files: the default models through the DICOM path of ``medden denoise``.

Every real clean DICOM file installed with pydicom and pydicom-data that no default model trains
on (:data:`FILES`: CT, MR, a multi-frame MR, a radiograph; nothing is downloaded) is copied into
a temporary folder and denoised by each bundle given with ``--bundle`` (default: those of
``general_denoiser``, ``general_denoiser_v2`` and ``general_denoiser_v3`` that are shipped) with
:func:`medden.apps.batch_denoise.denoise_path`, as ``medden denoise`` does; the written series is
read back. No noise is added: a good denoiser should leave these images as they are.

One row per file and bundle: the estimated noise before and after, the power of each 2-pixel
pattern after / before (:func:`medden.metrics.harm.pattern_powers`), the harm checks' values
and the ones raised (:func:`medden.metrics.harm.harm_flags`), the change in units of the input's
noise (:func:`medden.metrics.harm.change_to_noise`), and which of issue 22's do-no-harm targets
are missed (the criteria of ``tests/apps/test_default_does_no_harm.py``).

Writes ``no_harm.json`` and ``no_harm.md`` (rendered from the JSON alone by :func:`markdown`)
into ``--output``. Run from the repository root (about 1 minute per bundle on 2 CPU cores; needs
the ``samples`` extra for pydicom-data):

    python scripts/no_harm_real_files.py --bundle general_denoiser
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

DEFAULT_OUTPUT = Path("docs/results")
STEM = "no_harm"
DEFAULT_BUNDLES = ("general_denoiser", "general_denoiser_v2", "general_denoiser_v3")
#: file -> (package that ships it, what it shows)
FILES = {
    "CT_small.dcm": ("pydicom", "head CT in HU, 128 x 128"),
    "693_UNCR.dcm": ("pydicom-data", "head CT in HU, 512 x 512"),
    "MR_small.dcm": ("pydicom", "MR slice, 64 x 64"),
    "emri_small.dcm": ("pydicom-data", "enhanced MR, multi-frame: 10 frames of 64 x 64"),
    "MR-SIEMENS-DICOM-WithOverlays.dcm": ("pydicom-data", "abdomen MR, 484 x 484"),
    "RG1_UNCR.dcm": ("pydicom-data", "chest radiograph (CR, MONOCHROME1), 1955 rows x 1841 columns"),
}
HELD_OUT = (
    "None of these files is in a default model's training set: general_denoiser trains on pydicom-data's "
    "MR2_UNCR, bad_sequence, explicit_VR-UN, eCT_Supplemental and RG3_UNCR, the MNI152 template and the left half "
    "of scikit-image's histology image (`bundles/general_denoiser/configs/metadata.json`); general_denoiser_v2 "
    "and general_denoiser_v3 hold out 693_*, RG1_*, CT_small, MR_small*, emri_small* and "
    "MR-SIEMENS-DICOM-WithOverlays (`medden.data.corpus.HELD_OUT`). general_denoiser_v3 runs the multi-frame "
    "emri_small (10 frames) as a volume, each frame with its neighbours; the single images go through its 2D "
    "network (general_denoiser_v2's weights)."
)
#: do-no-harm criteria (issue 22), as in tests/apps/test_default_does_no_harm.py
PATTERN_TOLERANCE = 0.10
MAX_CHANGE_TO_NOISE = 2.0
PATTERNS = {"H": "stripes along H", "W": "stripes along W", "HW": "checkerboard"}


def misses(flags: dict, change: float) -> list[str]:
    """The do-no-harm targets missed: ``noise up``, ``pattern``, ``seam``, ``change``."""
    missed = ["noise up"] * flags["noise_up"]["raised"]
    missed += ["pattern"] * (flags["periodic_pattern"]["value"] > 1.0 + PATTERN_TOLERANCE)
    missed += ["seam"] * flags["tile_seam"]["raised"]
    return missed + ["change"] * (change > MAX_CHANGE_TO_NOISE)


def measure(before, after) -> dict:
    """The figures of one denoised file (``before``, ``after``: ``(C, H, W, D)`` in modality units)."""
    from medden.core.noise_estimation import estimate_noise_sigma
    from medden.metrics.harm import change_to_noise, harm_flags, pattern_powers

    flags = {flag.name: {"value": flag.value, "raised": flag.raised}
             for flag in harm_flags(before, after, include_passed=True)}
    change = change_to_noise(before, after)
    return {
        "shape": list(before.shape), "sigma_before": estimate_noise_sigma(before),
        "sigma_after": estimate_noise_sigma(after), "pattern_before": pattern_powers(before),
        "pattern_after": pattern_powers(after), "checks": flags, "change_to_noise": change,
        "raised": [name for name, flag in flags.items() if flag["raised"]], "misses": misses(flags, change),
    }


def denoise_file(source: Path, bundle, work: Path) -> dict:
    """Copy ``source`` into ``work``, denoise it through the DICOM path, read both back and measure."""
    from medden.apps.batch_denoise import denoise_path
    from medden.io import read_dicom_folder

    (work / "in").mkdir(parents=True)
    shutil.copyfile(source, work / "in" / source.name)
    start = time.perf_counter()
    report = denoise_path(work / "in", work / "out", bundle)
    seconds = time.perf_counter() - start
    (row,) = report["series"]
    if row["status"] != "done":
        return {"status": row["status"], "reason": row.get("reason", "")}
    (before,), _ = read_dicom_folder(work / "in")
    (after,), _ = read_dicom_folder(work / "out" / "dicom")
    return {"status": "done", "seconds": seconds, **measure(before.volume, after.volume)}


def run(bundles: list[str]) -> dict:
    from pydicom.data import get_testdata_file

    from medden.bundle import load_bundle

    rows = []
    for name in bundles:
        bundle = load_bundle(name, device="cpu")
        for file in FILES:
            source = get_testdata_file(file, download=False)  # never download
            if source is None:
                rows.append({"file": file, "bundle": name, "status": f"not installed (pip install {FILES[file][0]})"})
                continue
            with tempfile.TemporaryDirectory() as work:
                rows.append({"file": file, "bundle": name, **denoise_file(Path(source), bundle, Path(work))})
    return {"bundles": bundles, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.machine(), "files": {file: what for file, (_, what) in FILES.items()},
            "held_out": HELD_OUT, "pattern_tolerance": PATTERN_TOLERANCE, "max_change_to_noise": MAX_CHANGE_TO_NOISE,
            "rows": rows}


def _ratio(after: float, before: float) -> str:
    return f"{after / before:.3g}" if before > 0 else ("-" if after == 0 else "inf")


def _row(row: dict) -> str:
    if row["status"] != "done":
        return f"| {row['file']} | {row['bundle']} | {row['status']} {row.get('reason', '')} |" + " |" * 8
    checks = row["checks"]
    cell = {name: (f"**{checks[name]['value']:.3g}**" if checks[name]["raised"] else f"{checks[name]['value']:.3g}")
            for name in checks}
    patterns = " / ".join(_ratio(row["pattern_after"][key], row["pattern_before"][key]) for key in PATTERNS)
    verdict = "yes" if not row["misses"] else "**no**: " + ", ".join(row["misses"])
    return (f"| {row['file']} | {row['bundle']} | {tuple(row['shape'])} | {row['sigma_before']:.3g} / "
            f"{row['sigma_after']:.3g} | {cell['noise_up']} | {patterns} | {cell['periodic_pattern']} | "
            f"{cell['tile_seam']} | {row['change_to_noise']:.3g} | {', '.join(row['raised']) or '-'} | {verdict} |")


def _summary(report: dict) -> list[str]:
    lines = []
    for bundle in report["bundles"]:
        done = [row for row in report["rows"] if row["bundle"] == bundle and row["status"] == "done"]
        clean = [row["file"] for row in done if not row["misses"]]
        lines.append(f"* `{bundle}`: does no harm to {len(clean)} of {len(done)} files"
                     + (f" ({', '.join(clean)})." if clean else "."))
    return lines


def markdown(report: dict) -> str:
    """The results page, from the JSON that :func:`run` returns alone."""
    lines = [
        "# Do no harm: the default models on real clean files",
        "",
        "Written by `scripts/no_harm_real_files.py`; do not edit by hand.",
        "",
        f"Each file, as installed, with no noise added, copied and denoised through the DICOM path of `medden denoise` "
        f"(`denoise_path`), the written series read back (CPU, torch {report['torch']}, {report['threads']} threads, "
        f"{report['machine']}). {report['held_out']}",
        "",
        *[f"* `{file}`: {what}" for file, what in report["files"].items()],
        "",
        "Columns: estimated noise (wavelet MAD) before / after; the harm checks of `medden.metrics.harm_flags` "
        "(noise_up: noise after / before; periodic_pattern: the largest rise of a 2-pixel pattern's power, with a "
        "negligible pattern added to both; tile_seam: the largest jump of the change across a straight line, in noise "
        "units), raised ones in bold; the power of each 2-pixel pattern after / before, unadjusted (stripes along H / "
        "along W / checkerboard); change / noise: std(after - before) / the input's estimated noise.",
        "",
        "Do no harm (issue 22) means all of: noise_up not raised; periodic_pattern at most "
        f"{1 + report['pattern_tolerance']:g} (the output's 2-pixel patterns not above the input's); tile_seam not "
        f"raised; change / noise at most {report['max_change_to_noise']:g}.",
        "",
        "| file | bundle | shape | sigma before / after | noise_up | pattern power after / before (H / W / HW) "
        "| periodic_pattern | tile_seam | change / noise | raised | does no harm |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *[_row(row) for row in report["rows"]],
        "",
        *_summary(report),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    from medden.bundle.resolve import shipped_bundles

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", action="append", help="a bundle to run (repeat for several); default: "
                        f"those of {', '.join(DEFAULT_BUNDLES)} that are shipped")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="folder for the .json and .md")
    args = parser.parse_args()
    bundles = args.bundle or [name for name in DEFAULT_BUNDLES if name in shipped_bundles()]
    report = run(bundles)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"{STEM}.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.output / f"{STEM}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
