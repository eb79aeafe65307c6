"""Tests for the ``medden`` command line."""

import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from medden.apps.cli import build_parser, main
from medden.data import list_samples, sample_path


def test_samples_lists_every_sample(capsys):
    assert main(["samples"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "modality", "shape", "package", "installed"]
    assert [line.split()[0] for line in lines[1:]] == [s.name for s in list_samples()]
    assert ["CT_small", "CT", "1x128x128", "pydicom", "yes"] in [line.split() for line in lines]


def test_samples_export(tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["samples", "--export", str(out), "--names", "CT_small", "MR_small"]) == 0
    printed = capsys.readouterr().out
    assert "exported 2 sample(s)" in printed and str(out / "nifti" / "CT_small.nii.gz") in printed
    assert sorted(p.name for p in (out / "nifti").iterdir()) == [
        "CT_small.nii.gz",
        "MR_small.nii.gz",
    ]
    copy = out / "dicom" / "MR_small" / "MR_small.dcm"
    assert copy.read_bytes() == sample_path("MR_small").read_bytes()
    assert pydicom.dcmread(copy).Modality == "MR"

    assert main(["samples", "--export", str(out), "--names", "CT_small"]) == 1  # never overwrites
    assert "already exists" in capsys.readouterr().err
    assert main(["samples", "--export", str(out), "--names", "CT_small", "--overwrite"]) == 0


@pytest.mark.parametrize(
    "argv,code,message",
    [
        (["samples", "--export", "{file}"], 1, "exists and is a file"),
        (
            ["samples", "--export", "{dir}", "--names", "nope"],
            1,
            "unknown sample 'nope'; choose one of",
        ),
        (["samples", "--names", "CT_small"], 1, "only apply with --export"),
        ([], 2, "required: COMMAND"),
        (["frobnicate"], 2, "invalid choice"),
        (["denoise"], 2, "the following arguments are required: INPUT, OUTPUT"),
        (["denoise", "{dir}", "{dir}2", "--batch-size", "two"], 2, "expected a whole number >= 1, got 'two'"),
        (["denoise", "{file}", "{dir}", "--bundle", "no_such_bundle"], 1, "lies inside the input folder"),
        (["denoise", "{dir}", "{file}"], 1, "does not exist"),
        (["denoise", "{file}", "{file}"], 1, "output_dir must be a folder, but"),
    ],
)
def test_errors_are_reported_not_raised(tmp_path, capsys, argv, code, message):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    argv = [arg.format(file=a_file, dir=tmp_path / "out") for arg in argv]
    assert main(argv) == code
    assert message in capsys.readouterr().err
    assert a_file.read_text() == "keep me"
    assert not (tmp_path / "out").exists()


def test_console_script():
    exe = shutil.which("medden", path=str(Path(sys.executable).parent)) or shutil.which("medden")
    if exe is None:
        pytest.skip("the medden console script is not installed (pip install -e .)")
    result = subprocess.run([exe, "samples"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "CT_small" in result.stdout and "immunohistochemistry" in result.stdout


def test_denoise_help_and_defaults(capsys):
    args = build_parser().parse_args(["denoise", "in", "out"])
    assert (args.bundle, args.batch_size, args.device, args.resume) == ("general_denoiser_v3", None, None, True)
    assert build_parser().parse_args(["denoise", "in", "out", "--batch-size", "4"]).batch_size == 4
    assert main(["denoise", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--bundle NAME_OR_DIR", "(default: general_denoiser_v3)", "--batch-size N",
                   "Exit codes: 0", "3 partial", "2 bad usage", "--trust-bundle", "--overwrite"):
        assert phrase in text


def test_self_ensemble_runs_the_eight_views_and_is_refused_by_a_bundle_without_it(tmp_path, capsys, monkeypatch):
    import medden.bundle
    from medden.inference import SelfEnsembleInferer

    source = sample_path("CT_small")
    (tmp_path / "in").mkdir()
    shutil.copyfile(source, tmp_path / "in" / source.name)
    loaded = []
    real_load = medden.bundle.load_bundle

    def spy(*args, **kwargs):
        loaded.append(real_load(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(medden.bundle, "load_bundle", spy)
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--self-ensemble", "--backend", "torch"]) == 0
    ensemble = loaded[-1].inferer
    while not isinstance(ensemble, SelfEnsembleInferer):  # inside the do-no-harm guard
        ensemble = ensemble.base_inferer
    assert ensemble.views == 8
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out2"), "--self-ensemble",
                 "--bundle", "n2n_image"]) == 1
    assert "has no self-ensemble mode" in capsys.readouterr().err
