"""`medden demo`: the README's main job, end to end on the installed samples."""

import json

import pydicom

from medden.apps.cli import main
from medden.apps.demo import default_bundle_dir, run_demo


def test_demo_denoises_a_corrupted_sample_series_and_scores_it(tmp_path, capsys):
    result = run_demo(tmp_path)
    assert result["denoised"]["psnr"] > result["noisy"]["psnr"] + 8  # measured: 26.0 -> 37.0 dB
    assert result["denoised"]["ssim"] > result["noisy"]["ssim"]
    report = json.loads(open(result["report"]).read())
    assert report["processed"] == 1 and report["bundle"].startswith("general_denoiser")
    files = sorted((tmp_path / "denoised" / "dicom").rglob("*.dcm"))
    assert len(files) == 20 and "DERIVED" in pydicom.dcmread(files[0]).ImageType
    # the CLI on the same folder resumes instead of redoing the work, and prints the scores
    assert main(["demo", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "denoised" in out and f"{result['denoised']['psnr']:.2f}" in out


def test_default_bundle_is_found_in_the_checkout():
    assert (default_bundle_dir() / "models" / "model.pt").is_file()
