"""Turn :func:`~medden.apps.benchmark.runner.run_benchmark` results into the published page:
``README.md`` (one table per modality, best values in bold, the protocol above each table),
``benchmark.json`` (every record) and one PNG grid per modality."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medden.apps.benchmark.cases import NOISES
from medden.io.files import atomic_write

__all__ = ["aggregate", "markdown", "write_results"]

_MEANS = ("psnr", "ssim", "method_noise_corr", "cnr_bright", "cnr_dark", "contrast_kept_bright", "contrast_kept_dark")


def aggregate(results: dict) -> list[dict]:
    """One row per (modality, noise, method): means over the modality's images (median for
    seconds per slice), in run order."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in results["records"]:
        groups[(record["modality"], record["noise"], record["method"])].append(record)
    rows = []
    for (modality, noise, method), recs in groups.items():
        row = {"modality": modality, "noise": noise, "method": method, "kind": recs[0]["kind"], "images": len(recs),
               "seconds_per_slice": float(np.median([r["seconds_per_slice"] for r in recs]))}
        row.update({key: float(np.mean([r[key] for r in recs])) for key in _MEANS})
        rows.append(row)
    return rows


def _fmt(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _size(info: dict) -> tuple[str, str]:
    if info.get("parameters") is None:
        return "-", "-"
    return f"{info['parameters'] / 1e6:.3f} M", f"{info['size_bytes'] / 2**20:.2f} MiB"


def _bold_best(rows: list[dict], key: str, best) -> set[int]:
    """Indices of the rows with the best ``key`` (not the noisy input)."""
    values = [(i, row[key]) for i, row in enumerate(rows) if row["kind"] != "input" and math.isfinite(row[key])]
    if not values:
        return set()
    target = best(v for _, v in values)
    return {i for i, v in values if v == target}


def _protocol(results: dict, modality: str) -> str:
    settings = results["settings"]
    images = sorted({r["image"] for r in results["records"] if r["modality"] == modality})
    crop = f", central {settings['crop']} x {settings['crop']} window" if settings.get("crop") else ""
    own = [r["clean_noise_sigma"] for r in results["references"] if r["modality"] == modality]
    return (f"Images: {'; '.join(images)}{crop}, clean in [0, 1]; the reference's own noise (wavelet estimate) "
            f"is {255 * float(np.mean(own)):.1f}/255, against 20/255 added for Gaussian. One seeded noise draw per image and noise (base "
            f"seed {settings['seed']}). PSNR (dB, data range 1) and SSIM against the clean image, averaged over the "
            "images; seconds per 256 x 256 slice (median, scaled by pixel count; "
            f"{results['environment']['threads']} torch threads, CPU); method-noise corr = Pearson correlation of "
            "(noisy - denoised) with the clean image (the ideal output, the clean image itself, gives the value shown "
            "with each noise: near 0 for zero-mean noise; bold is the closest to it); CNR = contrast of the brightest / darkest small structure (radius 3 px) over the "
            "residual noise in its ring; kept = its contrast over the clean image's. Bold: best among methods "
            "(supervised rows use clean data and are the upper bound).")


def markdown(results: dict, title: str = "medden benchmark: every method on every modality") -> str:
    """The results page (GitHub markdown)."""
    rows = aggregate(results)
    info = results["methods"]
    ideal = defaultdict(list)
    for ref in results["references"]:
        ideal[(ref["modality"], ref["noise"])].append(ref["ideal_method_noise_corr"])
    lines = [f"# {title}", "",
             "Written by `medden benchmark` (`scripts/benchmark_all.py`); do not edit by hand. "
             + ("**Quick mode**: fewer images and methods. " if results["settings"].get("extra", {}).get("quick") else ""),
             "", "Noises: " + "; ".join(f"**{n.key}**: {n.label}" for n in NOISES.values()
                                         if n.key in results["settings"]["noises"]) + ".", ""]
    for note in results["settings"].get("extra", {}).get("notes", []):
        lines += [f"- {note}"]
    modalities = list(dict.fromkeys(row["modality"] for row in rows))
    header = ("| noise | method | PSNR | SSIM | s / slice | parameters | size | method-noise corr | CNR bright / dark "
              "| contrast kept bright / dark |")
    for modality in modalities:
        lines += ["", f"## {modality}", "", _protocol(results, modality), "", header,
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for noise in results["settings"]["noises"]:
            group = [row for row in rows if row["modality"] == modality and row["noise"] == noise]
            if not group:
                continue
            reference = float(np.mean(ideal[(modality, noise)]))
            off_ideal = [{**r, "method_noise_corr": abs(r["method_noise_corr"] - reference)} for r in group]
            bold = {"psnr": _bold_best(group, "psnr", max), "ssim": _bold_best(group, "ssim", max),
                    "seconds_per_slice": _bold_best(group, "seconds_per_slice", min),
                    "method_noise_corr": _bold_best(off_ideal, "method_noise_corr", min)}
            label = f"{noise} (ideal corr {reference:+.3f})"
            for i, row in enumerate(group):
                params, size = _size(info.get(row["method"], {}))

                def cell(key, digits, i=i, row=row):
                    if row["kind"] == "input" and key in ("seconds_per_slice", "method_noise_corr"):
                        return "-"  # the input removes nothing and costs nothing
                    text = _fmt(row[key], digits)
                    return f"**{text}**" if i in bold.get(key, ()) else text

                name = row["method"] + (" (clean targets)" if row["kind"] == "supervised" else "")
                lines.append(f"| {label if i == 0 else ''} | {name} | {cell('psnr', 2)} | {cell('ssim', 3)} "
                             f"| {cell('seconds_per_slice', 3)} | {params} | {size} | {cell('method_noise_corr', 3)} "
                             f"| {_fmt(row['cnr_bright'], 1)} / {_fmt(row['cnr_dark'], 1)} "
                             f"| {_fmt(row['contrast_kept_bright'], 2)} / {_fmt(row['contrast_kept_dark'], 2)} |")
        lines += ["", f"![{modality}]({_figure_name(modality)})"]
    return "\n".join(lines) + "\n"


def _figure_name(modality: str) -> str:
    return "benchmark_" + modality.lower().replace(" ", "_").replace("-", "") + ".png"


def write_results(results: dict, output_dir: str | os.PathLike, title: str | None = None,
                  noises: Sequence[str] | None = None) -> list[Path]:
    """Write ``README.md``, ``benchmark.json`` and the PNG grids into ``output_dir`` (atomically).

    Returns:
        The written paths.
    """
    from medden.apps.benchmark.helpers import contact_sheet

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(results, *([title] if title else []))
    written = [atomic_write(out / "README.md", lambda tmp: Path(tmp).write_text(text), overwrite=True)]
    data = {key: value for key, value in results.items() if key != "figures"}
    data["table"] = aggregate(results)
    written.append(atomic_write(out / "benchmark.json", lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1)),
                                overwrite=True))
    for modality, by_noise in results["figures"].items():
        rows = [[(f"{noise}: {label}" if i == 1 else label, image) for i, (label, image) in enumerate(tiles)]
                for noise, tiles in by_noise.items() if noises is None or noise in noises]
        written.append(contact_sheet(out / _figure_name(modality), rows, tile_size=160, label_chars=26))
    return written
