"""``medden benchmark``: cases, methods, the quick mode end to end, the report."""

import json

import numpy as np
import pytest

from medden.apps.benchmark import NOISES, BenchmarkSettings, make_case, markdown
from medden.apps.benchmark.suite import run_suite


def _image():
    yy, xx = np.mgrid[:48, :40]
    return (0.2 + 0.6 * (((yy - 24) ** 2 + (xx - 20) ** 2) < 150)).astype(np.float32)[None]


@pytest.mark.parametrize("noise", sorted(NOISES))
def test_cases_are_seeded_and_carry_kspace_only_for_kspace_noise(noise):
    clean = _image()
    case = make_case("head CT", "disk", clean, noise, seed=3)
    again = make_case("head CT", "disk", clean, noise, seed=3)
    np.testing.assert_array_equal(case.noisy, again.noisy)
    assert case.noisy.shape == clean.shape and not np.array_equal(case.noisy, clean)
    assert (case.kspace is not None) == (noise == "kspace")
    if noise == "kspace":
        from medden.transforms import reconstruct

        assert case.kspace.shape == (1, 48, 40, 2) and case.mask.shape == (1, 48, 40)
        # the measured samples are those of the clean image where the mask is 1, zero elsewhere
        assert np.all(case.kspace[case.mask[0][None].repeat(1, 0) == 0] == 0)
        assert reconstruct(case.kspace, "real").shape == (1, 48, 40)


def test_unknown_noise_is_refused():
    with pytest.raises(ValueError, match="unknown noise 'speckle'"):
        make_case("head CT", "disk", _image(), "speckle", seed=0)


def test_quick_mode_writes_a_table_with_every_method_it_ran(tmp_path):
    settings = BenchmarkSettings(modalities=("brain MR",), noises=("gaussian", "kspace"), brain_slices=1,
                                 include_bm3d=False, crop=96)
    lines, counts = [], []
    results = run_suite(tmp_path, quick=True, settings=settings, log=lines.append,
                        progress=lambda done, total: counts.append((done, total)))
    assert counts == [(1, 2), (2, 2)]  # N of M cases: one brain slice x two noises
    assert [line.split(":")[0] for line in lines if line.startswith("case ")] == ["case 1/2", "case 2/2"]
    data = json.loads((tmp_path / "benchmark.json").read_text())
    methods = {(row["noise"], row["method"]) for row in data["table"]}
    for expected in [("gaussian", "noisy input"), ("gaussian", "NLM"), ("gaussian", "TV"),
                     ("gaussian", "general_denoiser (N2N)"), ("gaussian", "supervised (shipped model)"),
                     ("kspace", "CS L1-wavelet (sigpy)"), ("kspace", "n2n_kspace_mri (N2N)")]:
        assert expected in methods
    assert ("kspace", "general_denoiser (N2N)") not in methods  # bundles run only on the noise they learnt
    assert ("kspace", "NLM (dipy, Rician)") in methods  # MR only: the Rician model of magnitude images
    rows = {(row["noise"], row["method"]): row for row in data["table"]}
    noisy, learned = rows[("gaussian", "noisy input")], rows[("gaussian", "general_denoiser (N2N)")]
    assert learned["psnr"] > noisy["psnr"] + 5  # a real denoiser on a real MR slice, not a placeholder
    assert rows[("kspace", "n2n_kspace_mri (N2N)")]["psnr"] > rows[("kspace", "noisy input")]["psnr"]
    assert data["methods"]["general_denoiser (N2N)"]["parameters"] > 1000
    assert data["methods"]["NLM"]["parameters"] is None
    page = (tmp_path / "README.md").read_text()
    assert page == markdown(results)
    assert "## brain MR" in page and "Quick mode" in page and "**" in page
    assert (tmp_path / "benchmark_brain_mr.png").stat().st_size > 1000


def test_benchmark_cli_refuses_an_unknown_modality(tmp_path, capsys):
    from medden.apps.cli import main

    assert main(["benchmark", "--quick", "--output", str(tmp_path), "--modalities", "foot MR"]) == 1
    assert "unknown modalities or noises ['foot MR']" in capsys.readouterr().err
