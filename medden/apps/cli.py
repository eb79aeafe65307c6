"""The ``medden`` command line: a thin layer over library calls.

Each subcommand is registered by an ``_add_<name>_command`` function that builds its parser
and sets ``func``, a handler taking the parsed arguments and returning an exit code. The
handler only translates arguments into one library call and prints the result, so anything
the CLI does, a Python call does too.

Examples:
    medden samples
    medden samples --export ./samples --names CT_small mni152
    medden denoise ./dicom_in ./dicom_out --bundle recorruption_ixi_bernoulli
    medden denoise ./scan.nii.gz ./out --bundle ./my_bundle --batch-size 4 --device cpu
    medden denoise ./dicom_in ./dicom_out --fit --fit-minutes 10
    medden export general_denoiser
    medden denoise ./dicom_in ./dicom_out --backend onnx
    medden benchmark --quick --output ./bench
    medden serve --port 8000

Exit codes: 0 success, 1 failure (the error is printed on stderr; for ``denoise``: nothing
could be processed), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from medden.bundle.resolve import DEFAULT_BUNDLE
from medden.bundle.exports import BACKENDS, CALIBRATION_NOISES, EXPORT_FORMATS

__all__ = ["build_parser", "main"]


def _add_samples_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "samples",
        help="list or export the sample images shipped by installed packages",
        description="List the sample images, or export them as NIfTI and DICOM with --export.",
    )
    parser.add_argument(
        "--export",
        metavar="DIR",
        help="write DIR/nifti/<name>.nii.gz and DIR/dicom/<name>/ for each sample",
    )
    parser.add_argument(
        "--names", nargs="+", metavar="NAME", help="samples to export (default: all installed)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace files from an earlier export"
    )
    parser.set_defaults(func=_run_samples)


def _run_samples(args: argparse.Namespace) -> int:
    from medden.data import export_samples, list_samples

    if args.export is None:
        if args.names or args.overwrite:
            raise ValueError("--names and --overwrite only apply with --export DIR.")
        rows = [("name", "modality", "shape", "package", "installed")]
        for s in list_samples():
            installed = "yes" if s.installed else f"no ({s.install_hint})"
            rows.append((s.name, s.modality, "x".join(map(str, s.shape)), s.package, installed))
        _print_table(rows)
        return 0
    written = export_samples(args.export, args.names, overwrite=args.overwrite)
    for name, paths in written.items():
        nifti, dicom = paths[0], paths[1:]
        where = dicom[0] if len(dicom) == 1 else f"{dicom[0].parent}/ ({len(dicom)} files)"
        print(f"{name}: {nifti}  {where}")
    print(f"exported {len(written)} sample(s) to {args.export}")
    return 0


def _add_denoise_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "denoise",
        help="denoise a DICOM folder, a NIfTI file or a folder of NIfTI files",
        description=(
            "Write a derived, denoised series per input DICOM series (or a denoised NIfTI per file) under "
            "OUTPUT, with OUTPUT/medden_report.json. A run that was stopped can be started again: finished "
            "series are skipped. The next series is read while the current one is denoised. Exit codes: 0 "
            "when at least one series was denoised (or all were already done), 1 when nothing could be "
            "processed or on an error (unknown bundle, OUTPUT inside INPUT, ...), 2 for bad usage."
        ),
    )
    parser.add_argument("input", metavar="INPUT", help="DICOM folder, NIfTI file or folder of NIfTI files")
    parser.add_argument("output", metavar="OUTPUT", help="output folder (must not lie inside INPUT)")
    parser.add_argument("--bundle", default=DEFAULT_BUNDLE, metavar="NAME_OR_DIR",
                        help="trained bundle: a folder (configs/inference.json, models/model.pt) or the name of "
                             "a bundle in the repository's bundles/ folder, e.g. recorruption_ixi_bernoulli "
                             "(default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                        help="slices or windows per network call, >= 1 (default: the bundle's own); "
                             "lower it if the GPU runs out of memory")
    parser.add_argument("--fit", action="store_true",
                        help="first fine-tune the bundle on the input itself (self-supervised, no clean data), "
                             "save it as OUTPUT/fitted_bundle, then denoise with it")
    parser.add_argument("--fit-minutes", type=_positive_float, default=1.0, metavar="MIN",
                        help="time budget of --fit in minutes (default: %(default)s; on a single image longer "
                             "budgets start to learn its noise, see docs/results/general_denoiser.md)")
    _add_backend_option(parser)
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="redo series a previous run already finished")
    parser.set_defaults(func=_run_denoise)


def _run_denoise(args: argparse.Namespace) -> int:
    from medden.apps.batch_denoise import denoise_path
    from medden.bundle import load_bundle
    from medden.engines.distributed import cleanup, is_main_process

    try:
        bundle_dir = args.bundle
        if args.fit:
            from medden.apps.fit import fit_on_input

            print(f"fitting {args.bundle} to the input for {args.fit_minutes:g} min ...", flush=True)
            bundle_dir = fit_on_input(args.input, args.output, args.bundle, args.fit_minutes, args.device)
            print(f"fitted bundle saved to {bundle_dir} (reuse it with --bundle)", flush=True)
        bundle = load_bundle(bundle_dir, args.device, batch_size=args.batch_size, backend=args.backend)
        print(f"{bundle.name}: {bundle.backend} backend", flush=True)
        report = denoise_path(args.input, args.output, bundle, resume=args.resume)
    finally:
        main_process = is_main_process()
        cleanup()  # leave the torchrun process group, if one was joined
    if not main_process:
        return 0 if report["processed"] else 1
    rows = [("series / file", "status", "seconds", "noise before", "noise after")]
    for row in report["series"]:
        noise = [f"{row[k]:.4g}" if isinstance(row.get(k), float) else "" for k in
                 ("noise_sigma_before", "noise_sigma_after")]
        rows.append((str(row.get("series_uid", row.get("file"))), row["status"], str(row.get("seconds", "")), *noise))
    _print_table(rows)
    print(f"{report['processed']} done, {report['failed']} failed, {len(report['skipped'])} file(s) skipped; "
          f"report: {args.output}/medden_report.json")
    return 0 if report["processed"] else 1


def _add_backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="auto", choices=("auto", *BACKENDS),
                        help="what runs the network: the PyTorch weights, or the bundle's TorchScript, ONNX or int8 "
                             "ONNX export (written by 'medden export'); auto: the fastest current export that loses "
                             "under 0.1 dB, else torch (default: %(default)s; see docs/results/deployment.md)")


def _add_export_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="export a bundle's network to TorchScript, ONNX and int8 ONNX for deployment",
        description="Write models/model.ts, models/model.onnx and models/model_int8.onnx next to the bundle's "
                    "models/model.pt, each checked against PyTorch (float: largest difference <= 1e-4; int8: PSNR "
                    "change on corrupted validation windows), and record the checks in models/export.json. "
                    "'medden denoise --backend' then runs them.",
    )
    parser.add_argument("bundle", metavar="NAME_OR_DIR", help="bundle folder or shipped bundle name")
    parser.add_argument("--formats", nargs="+", default=list(EXPORT_FORMATS), choices=EXPORT_FORMATS,
                        help="what to write (default: all)")
    parser.add_argument("--calibration-noises", nargs="+", default=list(CALIBRATION_NOISES), metavar="NOISE",
                        help="noises of the int8 calibration windows: gaussian poisson bernoulli kspace "
                             "(default: %(default)s)")
    parser.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from medden.apps.export import export_bundle

    record = export_bundle(args.bundle, args.formats, noises=args.calibration_noises)
    rows = [("format", "file", "MB", "check")]
    for name in args.formats:
        entry = record[name]
        check = (f"PSNR change {entry['psnr_change_db']:+.3f} dB vs float" if "psnr_change_db" in entry
                 else f"max |difference| {entry['max_abs_difference']:.2g} (tolerance {entry['tolerance']:g})")
        rows.append((name, entry["file"], f"{entry['bytes'] / 2**20:.2f}", check))
    _print_table(rows)
    return 0


def _add_demo_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="corrupt a sample MR series, denoise it with the default bundle and score the result",
        description="Write a clean and a corrupted MR DICOM series from the installed samples, run "
                    "'medden denoise' on the corrupted one, and print PSNR/SSIM against the clean one.",
    )
    parser.add_argument("--output", default="medden-demo", metavar="DIR", help="where to write (default: %(default)s)")
    parser.add_argument("--bundle", default=None, metavar="NAME_OR_DIR",
                        help="bundle folder or shipped bundle name (default: the demo's shipped one)")
    parser.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from medden.apps.demo import run_demo

    result = run_demo(args.output, args.bundle)
    _print_table([("series", "PSNR (dB)", "SSIM"),
                  *[(name, f"{result[name]['psnr']:.2f}", f"{result[name]['ssim']:.4f}") for name in ("noisy", "denoised")]])
    print(f"clean:    {result['clean_dicom']}\nnoisy:    {result['noisy_dicom']}\n"
          f"denoised: {result['denoised_dicom']}\nreport:   {result['report']}")
    return 0


def _add_benchmark_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "benchmark",
        help="score every method on every sample modality and noise; write the results page",
        description="Corrupt the held-out sample images (brain MR, shoulder MR, head CT, chest X-ray, histology) "
                    "with Gaussian, Poisson, Bernoulli and k-space noise and score the classical anchors, the "
                    "shipped bundles and supervised networks: PSNR, SSIM, seconds per slice, model size and "
                    "diagnostic fidelity. Writes OUTPUT/README.md, OUTPUT/benchmark.json and PNG grids. Full mode "
                    "trains the supervised networks first (cached in --runs-dir, reused); needs the bench extra.",
    )
    parser.add_argument("--output", default="docs/results", metavar="DIR", help="where to write (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="a few minutes: one brain slice, no training (the shipped supervised model)")
    parser.add_argument("--runs-dir", default="runs/benchmark", metavar="DIR",
                        help="cache of the supervised training runs (default: %(default)s)")
    parser.add_argument("--no-train", dest="train", action="store_false",
                        help="use only cached supervised runs, train none")
    parser.add_argument("--modalities", nargs="+", metavar="NAME", help="a subset, e.g. 'head CT' 'brain MR'")
    parser.add_argument("--noises", nargs="+", metavar="NAME", help="a subset of: gaussian poisson bernoulli kspace")
    parser.add_argument("--no-bm3d", dest="bm3d", action="store_false", help="skip BM3D (seconds per slice)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the noise draws (default: %(default)s)")
    parser.set_defaults(func=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> int:
    from medden.apps.benchmark import BenchmarkSettings
    from medden.apps.benchmark.suite import run_suite

    settings = BenchmarkSettings(brain_slices=1 if args.quick else 3, seed=args.seed, include_bm3d=args.bm3d)
    if args.modalities:
        settings.modalities = tuple(args.modalities)
    if args.noises:
        settings.noises = tuple(args.noises)
    run_suite(args.output, quick=args.quick, runs_dir=args.runs_dir, train=args.train, settings=settings)
    print(f"results: {args.output}/README.md")
    return 0


def _add_serve_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="start the web viewer: upload an image, see noisy | denoised | difference, download the result",
        description="Serve a local web page where a DICOM file (or a .zip of one series), a NIfTI file or a PNG "
                    "is uploaded, denoised with a chosen bundle and shown beside the input and their difference, "
                    "with a slice slider for volumes; the result downloads as a derived DICOM series or NIfTI. "
                    "Uploads are deleted as soon as they are denoised. Needs the serve extra: "
                    'pip install "medden[serve]".',
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this computer only); 0.0.0.0 exposes the "
                             "viewer to the network, with no login")
    parser.add_argument("--port", type=_positive_int, default=8000, help="TCP port (default: %(default)s)")
    parser.add_argument("--max-upload-mb", type=_positive_float, default=100.0, metavar="N",
                        help="largest upload in MB; larger files are refused (default: %(default)g)")
    parser.add_argument("--bundles", nargs="+", metavar="NAME", default=None,
                        help="bundles to offer: shipped names or bundle folders (default: every shipped bundle "
                             "that denoises images)")
    _add_backend_option(parser)
    parser.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from medden.apps.serve import run_server

    run_server(args.host, args.port, bundles=args.bundles, max_upload_bytes=max(1, round(args.max_upload_mb * 2**20)),
               backend=args.backend)
    return 0


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (anything else is a usage error, exit code 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    """argparse type: an int >= 1 (anything else is a usage error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def build_parser() -> argparse.ArgumentParser:
    """The ``medden`` argument parser with every subcommand registered."""
    from medden import __version__

    parser = argparse.ArgumentParser(
        prog="medden", description="Denoise medical images without clean data."
    )
    parser.add_argument("--version", action="version", version=f"medden {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_samples_command(commands)
    _add_denoise_command(commands)
    _add_export_command(commands)
    _add_demo_command(commands)
    _add_benchmark_command(commands)
    _add_serve_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 failed, 2 bad usage).

    Args:
        argv: the arguments without the program name; ``sys.argv[1:]`` if None.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return args.func(args)
    except (ValueError, OSError, ImportError, RuntimeError) as err:
        print(f"medden: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
