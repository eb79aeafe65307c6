"""One flag name per concept across the commands: --bundle everywhere (old spellings still work for one release,
with a note on stderr), OUTPUT as a positional (``--output`` kept), and help that says what --quick does."""

import pytest

from medden.apps.cli import build_parser, main


def _parse(argv):
    return build_parser().parse_args(argv)


def test_serve_takes_one_or_more_bundles_with_bundle_and_the_old_bundles_with_a_note(capsys):
    assert _parse(["serve", "--bundle", "a"]).bundles == ["a"]
    assert _parse(["serve", "--bundle", "a", "./b"]).bundles == ["a", "./b"]
    assert capsys.readouterr().err == ""
    assert _parse(["serve", "--bundles", "a", "b"]).bundles == ["a", "b"]
    err = capsys.readouterr().err
    assert "--bundles is deprecated" in err and "use --bundle" in err
    assert _parse(["serve"]).bundles is None
    main(["serve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--bundle NAME_OR_DIR [NAME_OR_DIR ...]" in help_text and "--bundles" not in help_text


def test_export_takes_bundle_and_the_old_positional_with_a_note(capsys, monkeypatch):
    calls = []

    def export_bundle(bundle, formats, noises=None, trust=False):
        calls.append(bundle)
        raise ValueError("stop here")

    monkeypatch.setattr("medden.apps.export.export_bundle", export_bundle)
    assert main(["export", "--bundle", "general_denoiser"]) == 1
    assert calls == ["general_denoiser"] and "deprecated" not in capsys.readouterr().err
    assert main(["export", "general_denoiser", "--formats", "onnx"]) == 1
    err = capsys.readouterr().err
    assert calls[-1] == "general_denoiser"
    assert "'medden export general_denoiser' is deprecated" in err and "medden export --bundle general_denoiser" in err
    assert main(["export"]) == 1
    assert "no bundle given: give --bundle NAME_OR_DIR" in capsys.readouterr().err
    assert main(["export", "a", "--bundle", "b"]) == 1
    assert "two bundles given" in capsys.readouterr().err and calls[-1] == "general_denoiser"


@pytest.mark.parametrize("command, default", [("demo", "medden-demo"), ("benchmark", "docs/results")])
def test_output_is_a_positional_with_output_kept(command, default, monkeypatch, capsys):
    written = []

    def stop(output, *args, **kwargs):
        written.append(str(output))
        raise ValueError("stop here")

    monkeypatch.setattr("medden.apps.demo.run_demo", stop)
    monkeypatch.setattr("medden.apps.benchmark.suite.run_suite", stop)
    for argv in ([], ["out"], ["--output", "out"], ["out", "--output", "out"]):
        assert main([command, *argv]) == 1
    assert written == [default, "out", "out", "out"]
    capsys.readouterr()
    assert main([command, "a", "--output", "b"]) == 1
    assert "two outputs given: OUTPUT 'a' and --output 'b'; give one." in capsys.readouterr().err
    assert written == [default, "out", "out", "out"]
    main([command, "--help"])
    assert f"OUTPUT where to write (default: {default})" in " ".join(capsys.readouterr().out.split())


def test_every_command_names_its_bundle_option_bundle():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in ("denoise", "export", "demo", "serve"):
        options = {s for action in commands[name]._actions for s in action.option_strings}
        assert "--bundle" in options, name


def test_quick_help_says_what_quick_mode_runs(capsys):
    main(["benchmark", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "one brain MR slice instead of three" in text and "every modality and noise" in text
    from medden.apps.benchmark import BenchmarkSettings
    from medden.data.modalities import BENCHMARK_MODALITIES

    assert BenchmarkSettings().modalities == BENCHMARK_MODALITIES  # quick mode keeps them all, fewer brain slices


def test_benchmark_shows_n_of_m_cases_and_quiet_hides_them(tmp_path, capsys, monkeypatch):
    seen = {}

    def run_suite(output, quick, runs_dir, train, settings, log, progress=None):
        seen["output"] = output
        log("case 1/2: brain MR x gaussian")
        return {}

    monkeypatch.setattr("medden.apps.benchmark.suite.run_suite", run_suite)
    assert main(["benchmark", str(tmp_path / "b"), "--quick"]) == 0
    out = capsys.readouterr().out
    assert "case 1/2: brain MR x gaussian" in out and seen["output"] == str(tmp_path / "b")
    assert main(["benchmark", str(tmp_path / "b"), "--quick", "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"results: {tmp_path / 'b'}/README.md"]
