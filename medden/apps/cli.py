"""The ``medden`` command line: a thin layer over library calls.

Each subcommand is registered by an ``_add_<name>_command`` function that builds its parser
and sets ``func``, a handler taking the parsed arguments and returning an exit code. The
handler only translates arguments into one library call and prints the result, so anything
the CLI does, a Python call does too.

Examples:
    medden samples
    medden samples --export ./samples --names CT_small mni152
    medden denoise ./dicom_in ./dicom_out --bundle recorruption_ixi_bernoulli
    medden denoise ./scan.nii.gz ./out --bundle ./my_bundle --trust-bundle --batch-size 4 --device cpu
    medden denoise ./dicom_in ./dicom_out --fit --fit-minutes 10
    medden export --bundle general_denoiser
    medden denoise ./dicom_in ./dicom_out --backend onnx
    medden benchmark ./bench --quick
    medden serve --port 8000

Exit codes: 0 success, 1 failure (the error is printed on stderr; for ``denoise``: nothing
was denoised, or the run stopped), 2 bad usage, and for ``denoise`` 3: partial (some series
or files failed, the report says why).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence

from medden.apps.naming import DEFAULT_NAME_TEMPLATE, NAME_FIELDS
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


#: unreadable files listed by name and reason at the end of ``medden denoise`` (all with ``--verbose``)
_MAX_UNREADABLE_LINES = 10
#: ``medden denoise`` exit codes by :func:`medden.apps.batch_denoise.outcome`
DENOISE_EXIT_CODES = {"complete": 0, "nothing denoised": 1, "stopped": 1, "partial": 3}
_TRUST_HELP = ("load a bundle folder medden does not ship: its configs run Python code, so pass this only for "
               "bundles whose author you trust (see 'Security' in the README)")


def _add_denoise_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "denoise",
        help="denoise DICOM series and NIfTI files: a folder (of either or both) or one file",
        description=(
            "Write a derived, denoised series per input DICOM series (or a denoised NIfTI per file) under "
            "OUTPUT, with OUTPUT/medden_report.json. Every file and series fails alone, with its reason in the "
            "report. A run that was stopped can be started again: series finished by the same model from the same "
            "files are skipped, changed ones are redone. The next series is read while the current one is "
            "denoised. Exit codes: 0 everything was denoised (or already was); 3 partial: some series or files "
            "failed (see the report); 1 nothing was denoised, or an error (unknown or untrusted bundle, OUTPUT "
            "inside INPUT, a full disk, ...); 2 bad usage."
        ),
    )
    parser.add_argument("input", metavar="INPUT",
                        help="a DICOM folder or file, a NIfTI file, or a folder of NIfTI files (or of both)")
    parser.add_argument("output", metavar="OUTPUT", help="output folder (must not lie inside INPUT)")
    parser.add_argument("--bundle", default=DEFAULT_BUNDLE, metavar="NAME_OR_DIR",
                        help="trained bundle: the name of a shipped bundle, e.g. recorruption_ixi_bernoulli, or a "
                             "bundle folder written as a path (./my_bundle) together with --trust-bundle "
                             "(default: %(default)s)")
    parser.add_argument("--trust-bundle", action="store_true", help=_TRUST_HELP)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                        help="slices or windows per network call, >= 1 (default: the bundle's own); "
                             "lower it if the GPU runs out of memory")
    parser.add_argument("--fit", action="store_true",
                        help="first fine-tune the bundle on the input itself (self-supervised, no clean data: "
                             "neighbouring slices or recorruption, chosen by the input), keeping the result only if it "
                             "beats the bundle on held-out pixels; save it as OUTPUT/fitted_bundle with "
                             "fit_report.json, then denoise with it")
    parser.add_argument("--fit-minutes", type=_positive_float, default=1.0, metavar="MIN",
                        help="time budget of --fit in minutes, reading the input included (default: %(default)s; "
                             "it stops earlier when the held-out loss stops improving; see "
                             "docs/results/volumes_and_fit.md)")
    _add_backend_option(parser)
    parser.add_argument("--self-ensemble", action="store_true",
                        help="average the model over the eight flips and quarter turns of each slice: about 8x "
                             "slower, a little better (bundles with a self_ensemble_views setting, such as the "
                             "default; see docs/results/realistic_noise.md)")
    parser.add_argument("--name-template", default=DEFAULT_NAME_TEMPLATE, metavar="TEMPLATE",
                        help="how each derived DICOM series' folder under OUTPUT/dicom is named, in the dcm2niix "
                             "spirit: " + ", ".join(f"%%{k} {v}" for k, v in NAME_FIELDS.items()) + ", %%%% a "
                             "percent sign; no patient field exists. Values are made filesystem-safe (ASCII letters, "
                             "digits, . _ + -; never a path separator or '..'); series that would share a folder get "
                             "a suffix from their UID (default: %(default)s, e.g. MR_3_T1_axial; '%%u' gives the "
                             "older UID folders). A series a previous run finished keeps its folder.")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="redo series a previous run already finished")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace results of another model (another bundle, other weights, an earlier --fit) "
                             "in OUTPUT; without it such an OUTPUT is refused")
    _add_verbosity_options(parser)
    parser.set_defaults(func=_run_denoise)


def _add_verbosity_options(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` / ``--verbose``, stored as ``args.verbosity`` (see :mod:`medden.apps.terminal`)."""
    from medden.apps.terminal import NORMAL, QUIET, VERBOSE

    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=QUIET, default=NORMAL,
                       help="print only errors and the final line (no progress bars, no table)")
    group.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=VERBOSE,
                       help="more detail: a line per finished series or file, medden's log messages on stderr")


@contextlib.contextmanager
def _log_messages(verbosity: int) -> Iterator[None]:
    """With ``--verbose``, send medden's INFO log messages to stderr for the duration (they never hold
    patient fields); otherwise leave logging as it is."""
    import logging

    from medden.apps.terminal import VERBOSE

    if verbosity < VERBOSE:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("medden: %(name)s: %(message)s"))
    logger = logging.getLogger("medden")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _run_denoise(args: argparse.Namespace) -> int:
    from medden.apps.naming import parse_name_template
    from medden.apps.run_record import has_results
    from medden.io.files import check_output_dir
    from medden.io.inputs import VOLUME_INPUTS, identify_input

    parse_name_template(args.name_template)  # a bad template fails before anything loads
    check_output_dir(args.input, args.output)  # bad paths fail before anything loads
    identify_input(args.input, VOLUME_INPUTS)
    if args.fit and has_results(args.output) and not args.overwrite:
        raise ValueError(f"{args.output!r} holds results of an earlier run; --fit makes a new model, whose results "
                         "would replace them: choose another OUTPUT, or pass --overwrite.")
    with _log_messages(args.verbosity):
        return _denoise(args)


def _denoise(args: argparse.Namespace) -> int:
    """Fit (with ``--fit``), load the bundle, denoise with progress shown, print the summary; the exit code."""
    from medden.apps.batch_denoise import REPORT, denoise_path, run_ending_cause
    from medden.apps.terminal import DenoiseProgress, FitProgressLine, say
    from medden.bundle import load_bundle
    from medden.engines.distributed import cleanup, is_main_process

    try:
        bundle_dir, trust = args.bundle, args.trust_bundle
        if args.fit:
            from medden.apps.fit import fit_on_input

            say(f"fitting {args.bundle} to the input for {args.fit_minutes:g} min ...", args.verbosity)
            line = FitProgressLine(args.verbosity)
            try:
                bundle_dir = fit_on_input(args.input, args.output, args.bundle, args.fit_minutes, args.device,
                                          trust=trust, progress=line)
            finally:
                line.close()
            trust = True  # made just now from a bundle that was trusted
            say(f"fit: {_fit_decision(bundle_dir)}", args.verbosity)
            say(f"fitted bundle saved to {bundle_dir} (reuse it with --bundle {bundle_dir} --trust-bundle)",
                args.verbosity)
        bundle = load_bundle(bundle_dir, args.device, batch_size=args.batch_size, backend=args.backend, trust=trust,
                             overrides=_self_ensemble_overrides(bundle_dir, args.self_ensemble, trust))
        say(f"{bundle.name}: {bundle.backend} backend", args.verbosity)
        bars = DenoiseProgress(args.verbosity)
        try:
            report = denoise_path(args.input, args.output, bundle, resume=args.resume, overwrite=args.overwrite,
                                  progress=bars, name_template=args.name_template)
        except OSError as err:
            cause = run_ending_cause(err)
            if cause is None:
                raise
            print(f"medden: error: the run stopped: {cause}; what was finished is kept and recorded in "
                  f"{args.output}/{REPORT}; fix it and run the same command again to go on.", file=sys.stderr)
            return DENOISE_EXIT_CODES["stopped"]
        finally:
            bars.close()
    finally:
        main_process = is_main_process()
        cleanup()  # leave the torchrun process group, if one was joined
    if main_process:
        _print_denoise_report(report, args.output, args.verbosity)
    return DENOISE_EXIT_CODES[report["outcome"]]


def _fit_decision(bundle_dir) -> str:
    """What ``--fit`` chose and why, from the fitted bundle's report."""
    import json
    from pathlib import Path

    from medden.apps.fit import FIT_REPORT

    return json.loads((Path(bundle_dir) / FIT_REPORT).read_text())["reason"]


def _self_ensemble_overrides(bundle: str, self_ensemble: bool, trust: bool) -> dict | None:
    """The config override of ``--self-ensemble``; a bundle without the setting is refused, not ignored."""
    if not self_ensemble:
        return None
    from medden.bundle import bundle_config
    from medden.inference import ENSEMBLE_VIEWS

    if "self_ensemble_views" not in bundle_config(bundle, trust=trust):
        raise ValueError(f"bundle {bundle!r} has no self-ensemble mode (no self_ensemble_views in its "
                         "configs/inference.json); drop --self-ensemble, or use the default bundle.")
    return {"self_ensemble_views": ENSEMBLE_VIEWS}


def _print_denoise_report(report: dict, output: str, verbosity: int = 1) -> None:
    """The end of ``medden denoise``: a table naming each series (modality, description, input folder; no
    patient fields), failure reasons and warnings on stderr, and the final count line (the only line
    ``--quiet`` keeps, besides errors)."""
    from medden.apps.batch_denoise import series_label_of
    from medden.apps.naming import printable
    from medden.apps.terminal import NORMAL, VERBOSE

    rows = [("series / file", "status", "seconds", "noise before", "noise after")]
    if verbosity >= VERBOSE:
        rows[0] = (*rows[0], "series UID / output")
    for row in report["series"]:
        noise = [f"{row[k]:.4g}" if isinstance(row.get(k), float) else "" for k in
                 ("noise_sigma_before", "noise_sigma_after")]
        cells = (series_label_of(row), row["status"], str(row.get("seconds", "")), *noise)
        if verbosity >= VERBOSE:
            cells = (*cells, printable(row.get("output") or row.get("series_uid", ""), 80))
        rows.append(cells)
    if verbosity >= NORMAL:
        _print_table(rows)
    for row in report["series"]:
        if row["status"] == "failed":
            print(f"medden: failed: {series_label_of(row)}: {printable(row.get('reason'), 300)}", file=sys.stderr)
        for warning in (row.get("warnings") or []) if verbosity >= NORMAL else []:  # --quiet: counted in the last line
            print(f"medden: warning: {series_label_of(row)}: {warning}", file=sys.stderr)
    unreadable = [s for s in report["skipped"] if s["failed"]]
    shown = unreadable if verbosity >= VERBOSE else unreadable[:_MAX_UNREADABLE_LINES]
    for skipped in shown:
        print(f"medden: unreadable: {printable(skipped['path'], 120)}: {printable(skipped['reason'], 300)}",
              file=sys.stderr)
    if len(shown) < len(unreadable):
        print(f"medden: ... and {len(unreadable) - len(shown)} more unreadable file(s), each with its reason in "
              f"{output}/medden_report.json (--verbose lists them all)", file=sys.stderr)
    failed_files = report["failed_files"]
    ignored = len(report["skipped"]) - failed_files
    print(f"{report['processed']} done, {report['failed']} failed, {failed_files} file(s) unreadable, {ignored} "
          f"file(s) not images, {report['warnings']} with warnings; report: {output}/medden_report.json")
    if report["outcome"] == "nothing denoised":
        print("medden: nothing was denoised: no image series or NIfTI file in the input could be read (the report "
              "says why for each file).", file=sys.stderr)
    elif report["outcome"] == "partial":
        print("medden: partial: some series or files failed (exit code 3); the report gives each reason.",
              file=sys.stderr)


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
    parser.add_argument("--bundle", default=None, metavar="NAME_OR_DIR",
                        help="the bundle to export: a shipped bundle name, or a bundle folder written as a path (./x) "
                             "with --trust-bundle; its models/ folder receives the exports (required)")
    parser.add_argument("bundle_positional", nargs="?", default=None, metavar="NAME_OR_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--trust-bundle", action="store_true", help=_TRUST_HELP)
    parser.add_argument("--formats", nargs="+", default=list(EXPORT_FORMATS), choices=EXPORT_FORMATS,
                        help="what to write (default: all)")
    parser.add_argument("--calibration-noises", nargs="+", default=list(CALIBRATION_NOISES), metavar="NOISE",
                        help="noises of the int8 calibration windows: gaussian poisson bernoulli kspace "
                             "(default: %(default)s)")
    parser.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from medden.apps.export import export_bundle

    bundle = _one_bundle(args, "export", positional_deprecated=True)
    record = export_bundle(bundle, args.formats, noises=args.calibration_noises, trust=args.trust_bundle)
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
    _add_output_argument(parser, "medden-demo")
    parser.add_argument("--bundle", default=None, metavar="NAME_OR_DIR",
                        help="shipped bundle name, or a bundle folder written as a path with --trust-bundle "
                             "(default: the demo's shipped one)")
    parser.add_argument("--trust-bundle", action="store_true", help=_TRUST_HELP)
    parser.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from medden.apps.demo import run_demo

    from medden.apps.terminal import DenoiseProgress

    bars = DenoiseProgress()
    try:
        result = run_demo(_output(args), args.bundle, trust=args.trust_bundle, progress=bars)
    finally:
        bars.close()
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
    _add_output_argument(parser, "docs/results")
    parser.add_argument("--quick", action="store_true",
                        help="a few minutes: every modality and noise as in full mode, but one brain MR slice instead "
                             "of three, and no training: the shipped supervised_baseline model stands in for the "
                             "supervised networks (Gaussian noise only); BM3D still runs unless --no-bm3d")
    parser.add_argument("--runs-dir", default="runs/benchmark", metavar="DIR",
                        help="cache of the supervised training runs (default: %(default)s)")
    parser.add_argument("--no-train", dest="train", action="store_false",
                        help="use only cached supervised runs, train none")
    parser.add_argument("--modalities", nargs="+", metavar="NAME", help="a subset, e.g. 'head CT' 'brain MR'")
    parser.add_argument("--noises", nargs="+", metavar="NAME", help="a subset of: gaussian poisson bernoulli kspace")
    parser.add_argument("--no-bm3d", dest="bm3d", action="store_false", help="skip BM3D (seconds per slice)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the noise draws (default: %(default)s)")
    _add_verbosity_options(parser)
    parser.set_defaults(func=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> int:
    from medden.apps.benchmark import BenchmarkSettings
    from medden.apps.benchmark.suite import run_suite

    from medden.apps.terminal import NORMAL, say

    output = _output(args)
    settings = BenchmarkSettings(brain_slices=1 if args.quick else 3, seed=args.seed, include_bm3d=args.bm3d)
    if args.modalities:
        settings.modalities = tuple(args.modalities)
    if args.noises:
        settings.noises = tuple(args.noises)
    with _log_messages(args.verbosity):
        run_suite(output, quick=args.quick, runs_dir=args.runs_dir, train=args.train, settings=settings,
                  log=lambda line: say(line, args.verbosity, NORMAL))
    print(f"results: {output}/README.md")
    return 0


def _add_serve_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="start the web viewer: upload an image, see noisy | denoised | difference, download the result",
        description="Serve a local web page where a DICOM file (or a .zip of one series), a NIfTI file or a PNG "
                    "is uploaded, denoised with a chosen bundle and shown beside the input and their difference, "
                    "with a reader's tools: window/level by drag and CT presets (the file's window tags first), linked "
                    "zoom and pan at full resolution, slices by wheel and keys, an ROI's mean and SD in the image's "
                    "units, orientation letters; the result downloads as a derived DICOM series or NIfTI. "
                    "Uploads are deleted as soon as they are denoised. Needs the serve extra: "
                    'pip install "medden[serve]".',
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this computer only); 0.0.0.0 exposes the "
                             "viewer to the network, with no login")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME", dest="allowed_hosts",
                        help="another Host name to answer, e.g. the one a reverse proxy forwards (repeatable); "
                             "requests naming any other host are refused, against DNS rebinding")
    parser.add_argument("--port", type=_positive_int, default=8000, help="TCP port (default: %(default)s)")
    parser.add_argument("--max-upload-mb", type=_positive_float, default=100.0, metavar="N",
                        help="largest upload in MB; larger files are refused (default: %(default)g)")
    parser.add_argument("--bundle", dest="bundles", nargs="+", metavar="NAME_OR_DIR", default=None,
                        help="one or more bundles to offer: shipped names, or bundle folders written as paths with "
                             "--trust-bundle (default: every shipped bundle that denoises images)")
    parser.add_argument("--bundles", dest="bundles", nargs="+", metavar="NAME_OR_DIR", action=_DeprecatedOption,
                        replacement="--bundle", help=argparse.SUPPRESS)
    parser.add_argument("--trust-bundle", action="store_true",
                        help="offer the bundle folders named in --bundle although medden does not ship them: their "
                             "configs run Python code, so pass this only for bundles whose author you trust")
    _add_backend_option(parser)
    parser.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from medden.apps.serve import run_server

    run_server(args.host, args.port, bundles=args.bundles, max_upload_bytes=max(1, round(args.max_upload_mb * 2**20)),
               backend=args.backend, allowed_hosts=args.allowed_hosts, trust_bundles=args.trust_bundle)
    return 0


def _deprecated(old: str, new: str) -> None:
    """Print on stderr that ``old`` still works for this release but ``new`` replaces it."""
    print(f"medden: note: {old} is deprecated and will stop working in the next release; use {new}.",
          file=sys.stderr)


class _DeprecatedOption(argparse.Action):
    """An old option spelling that still works for one release: stores like ``replacement`` and says so on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, replacement: str, **kwargs) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.replacement = replacement

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        _deprecated(option_string, self.replacement)
        setattr(namespace, self.dest, values)


def _one_bundle(args: argparse.Namespace, command: str, positional_deprecated: bool) -> str:
    """The bundle of a command that takes it as ``--bundle`` or as a ``NAME_OR_DIR`` positional
    (``args.bundle`` and ``args.bundle_positional``); both given and different is an error."""
    bundle, positional = args.bundle, args.bundle_positional
    if positional is not None:
        if positional_deprecated:
            _deprecated(f"'medden {command} {positional}'", f"'medden {command} --bundle {positional}'")
        if bundle is not None and bundle != positional:
            raise ValueError(f"two bundles given: --bundle {bundle!r} and {positional!r}; give one.")
        bundle = positional
    if bundle is None:
        raise ValueError(f"no bundle given: give --bundle NAME_OR_DIR, e.g. 'medden {command} --bundle "
                         f"{DEFAULT_BUNDLE}'.")
    return bundle


def _add_output_argument(parser: argparse.ArgumentParser, default: str | None, shown_default: str = "") -> None:
    """An optional OUTPUT positional, as ``denoise`` has, with ``--output DIR`` kept as its alias
    (see :func:`_output`); ``shown_default`` describes a default worked out later (``default`` None)."""
    parser.add_argument("output", nargs="?", default=None, metavar="OUTPUT",
                        help=f"where to write (default: {shown_default or default})")
    parser.add_argument("--output", dest="output_option", default=None, metavar="DIR",
                        help="the same as OUTPUT (an older spelling, kept)")
    parser.set_defaults(output_default=default)


def _output(args: argparse.Namespace) -> str:
    """OUTPUT, or ``--output``, or the default; both given and different is an error."""
    if args.output is not None and args.output_option is not None and args.output != args.output_option:
        raise ValueError(f"two outputs given: OUTPUT {args.output!r} and --output {args.output_option!r}; give one.")
    return args.output or args.output_option or args.output_default


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


def _add_train_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train a bundle (its configs/train.json) from any folder, optionally evaluate it",
        description="Run a bundle's configs/train.json as 'python -m monai.bundle run' would, with the checkpoints "
                    "and TensorBoard logs in OUTPUT/train and the trained weights in OUTPUT/model.pt (the bundle's "
                    "own models/model.pt is not touched); with --evaluate, then its configs/evaluate.json on them "
                    "(OUTPUT/eval/metrics.json). Small runs: --set max_epochs=1 --set epoch_length=10 "
                    "--set val_interval=1.",
    )
    parser.add_argument("bundle_positional", nargs="?", default=None, metavar="NAME_OR_DIR",
                        help="shipped bundle name, or a bundle folder written as a path (./x) with --trust-bundle "
                             "(or give it as --bundle NAME_OR_DIR, as the other commands do)")
    _add_output_argument(parser, None, shown_default="./medden-train/<bundle name>")
    parser.add_argument("--bundle", default=None, metavar="NAME_OR_DIR", help="the same as NAME_OR_DIR")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="a config id and value, repeatable, e.g. --set max_epochs=2 --set channels=[8,16] "
                             "--set dataset_dir=/data/ixi (values are read as JSON, else as text)")
    parser.add_argument("--config", action="append", metavar="FILE",
                        help="the config(s) to run from the bundle's configs/ folder, merged in order (default: "
                             "train.json); a stage of its own, e.g. --config train_flow.json (weights in OUTPUT/flow.pt), "
                             "or train.json with an overlay: --config train.json --config train_supervised.json")
    parser.add_argument("--evaluate", action="store_true", help="then score the trained weights with evaluate.json")
    parser.add_argument("--trust-bundle", action="store_true", help=_TRUST_HELP)
    parser.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from medden.apps.train import train_command

    if args.bundle is not None and args.bundle_positional is not None and args.output is None:
        args.output, args.bundle_positional = args.bundle_positional, None  # train --bundle NAME OUTPUT
    args.bundle, args.output = _one_bundle(args, "train", positional_deprecated=False), _output(args)
    return train_command(args)


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
    _add_train_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 failed, 2 bad usage, 3 partial: see
    :data:`DENOISE_EXIT_CODES`).

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
