"""The shipped default model does no harm to real clean images (issue 22, "do no harm").

The default bundle (``medden.bundle.resolve.DEFAULT_BUNDLE``) denoises copies of two real CT
slices with no noise added, through the DICOM path of ``medden denoise``
(:func:`medden.apps.batch_denoise.denoise_path`); the written series is read back and compared
with the input. Neither file is in the default model's training set. The output must not be
worse than the input:

* the estimated noise does not rise (``noise_up`` not raised: at most +5%);
* no 2-pixel periodic pattern: the pattern measure of ``periodic_pattern`` (with its allowance
  for a negligible pattern) rises at most ``1 + PATTERN_TOLERANCE`` -fold, where the harm check
  itself only warns above 4-fold;
* no seam along a straight line (``tile_seam`` not raised), e.g. where 256 x 256 tiles meet
  inside the 512 x 512 slice;
* the change stays within ``MAX_CHANGE_TO_NOISE`` x the input's own noise
  (:func:`medden.metrics.harm.change_to_noise`).

Every failed criterion is listed with its measured figure. The first default model
(``general_denoiser``) fails on both files (``docs/results/no_harm.md``). The same criteria hold
for a real clean MR volume (the 10-frame ``emri_small``), which the 2.5D default denoises as a
volume.
"""

from __future__ import annotations

import shutil

import pytest

from medden.apps.batch_denoise import denoise_path
from medden.bundle import load_bundle
from medden.bundle.resolve import DEFAULT_BUNDLE
from medden.data import sample_path
from medden.io import read_dicom_folder
from medden.metrics.harm import NOISE_UP, PERIODIC_PATTERN, TILE_SEAM, change_to_noise, harm_flags

#: the 2-pixel pattern measure may rise by 10%. A denoiser that returns its input unchanged reads
#: exactly 1 through the DICOM path, and a 0.1% gain change (the output rounded to the stored
#: integers again) 0.998-1.001 on these files; a denoiser that removes noise reads below 1. 10%
#: in power is a pattern amplitude of about 0.3 x the larger of the input's own pattern and the
#: negligible one (0.1 x the noise), far below the 4-fold rise at which reports warn; version 1's
#: grid read 5.7-fold (CT_small) and 7.8-fold (693_UNCR).
PATTERN_TOLERANCE = 0.10
#: issue 22: "the change stays within 2x the input's own noise"
MAX_CHANGE_TO_NOISE = 2.0
#: real clean CT slices held out from the default model's training, by sample name
FILES = {
    "CT_small": "128 x 128 head CT, one tile (pydicom)",
    "693_UNCR": "512 x 512 head CT with padding outside its field of view (pydicom-data)",
}


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(DEFAULT_BUNDLE, device="cpu")


def _source(name: str):
    try:
        return sample_path(name)
    except ModuleNotFoundError as err:  # 693_UNCR comes with pydicom-data (the samples extra)
        pytest.skip(f"{name}.dcm is not installed: {err}")


def _denoise_copy(name: str, tmp_path, bundle):
    """``(before, after)`` volumes in modality units: the file as read, and the written output read back."""
    original = _source(name)
    content = original.read_bytes()
    (tmp_path / "in").mkdir()
    shutil.copyfile(original, tmp_path / "in" / original.name)
    report = denoise_path(tmp_path / "in", tmp_path / "out", bundle)
    assert [row["status"] for row in report["series"]] == ["done"], report
    assert original.read_bytes() == content  # the installed file was only copied
    (before,), _ = read_dicom_folder(tmp_path / "in")
    (after,), _ = read_dicom_folder(tmp_path / "out" / "dicom")
    return before.volume, after.volume


def _harms(before, after) -> list[str]:
    """Every do-no-harm criterion ``after`` misses, with its figure; empty when none."""
    flags = {flag.name: flag for flag in harm_flags(before, after, include_passed=True)}
    harms = [flags[name].message for name in (NOISE_UP, TILE_SEAM) if flags[name].raised]
    if flags[PERIODIC_PATTERN].value > 1.0 + PATTERN_TOLERANCE:
        harms.append(f"the 2-pixel pattern power rose {flags[PERIODIC_PATTERN].value:.3g}-fold "
                     f"(allowed {1.0 + PATTERN_TOLERANCE:g})")
    change = change_to_noise(before, after)
    if change > MAX_CHANGE_TO_NOISE:
        harms.append(f"the change is {change:.3g} x the input's noise (allowed {MAX_CHANGE_TO_NOISE:g})")
    return harms


@pytest.mark.parametrize("name", FILES)
def test_the_default_model_does_no_harm_to_a_real_clean_ct_slice(name, tmp_path, bundle):
    before, after = _denoise_copy(name, tmp_path, bundle)
    harms = _harms(before, after)
    assert not harms, f"{DEFAULT_BUNDLE} on {name}.dcm ({FILES[name]}), no noise added:\n- " + "\n- ".join(harms)


def test_the_default_model_does_no_harm_to_a_real_clean_mr_volume(tmp_path, bundle):
    """The multi-frame emri_small (10 frames of 64 x 64, held out) goes through the default's volume path: each
    frame with its neighbours (the 2.5D network), not the single-image one."""
    from medden.bundle.bundle import single_image_network

    assert bundle.runs_on_volumes and single_image_network(bundle.inferer) is not None
    before, after = _denoise_copy("emri_small", tmp_path, bundle)
    assert before.shape[-1] == 10
    harms = _harms(before, after)
    assert not harms, f"{DEFAULT_BUNDLE} on emri_small.dcm (10-frame MR), no noise added:\n- " + "\n- ".join(harms)
