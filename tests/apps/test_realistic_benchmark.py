"""The realistic-noise benchmark's library (medden.apps.benchmark.realistic) on tiny images: the
cases, the methods' sigma routes, the scoring, the bundle routes and the targets (not the numbers)."""

import importlib.util
import json

import numpy as np
import pytest
import torch

from medden.apps.benchmark import realistic as rn
from medden.core.noise_estimation import estimate_noise_sigma
from medden.metrics.fidelity import method_noise_correlation

from helpers import REPO


def _case(clean, noisy, units=rn.UNIT, family=rn.WHITE, peak=None, noise="test noise"):
    return rn.make_case("phantom", noise, family, clean, noisy, units, poisson_peak=peak)


def _ramp(size=32, scale=1.0):
    return (np.linspace(0, scale, size * size, dtype=np.float32).reshape(1, size, size))


def _head_phantom(size=96):
    """``(1, size, size)`` HU: air around a 30 HU soft-tissue disc."""
    rows, cols = np.ogrid[:size, :size]
    inside = np.hypot(rows - size / 2, cols - size / 2) < 0.42 * size
    return np.where(inside, 30.0, -1000.0).astype(np.float32)[None]


def test_make_case_states_the_true_sigma_and_refuses_mismatched_images():
    clean = _ramp()
    noisy = clean + np.random.default_rng(0).normal(0, 0.1, clean.shape).astype(np.float32)
    case = _case(clean, noisy)
    assert case.name == "phantom: test noise" and not case.is_volume
    assert case.true_sigma == pytest.approx(float(np.std(noisy.astype(np.float64) - clean)), rel=1e-6)
    with pytest.raises(ValueError, match=r"must both be \(1, H, W\[, D\]\), got \(1, 32, 32\) and \(1, 32, 31\)"):
        _case(clean, noisy[..., :31])


def test_white_cases_are_seeded_by_seed_and_name_only():
    clean = _ramp(16)
    first = rn.white_case("phantom", clean, "gaussian", seed=3)
    assert np.array_equal(first.noisy, rn.white_case("phantom", clean, "gaussian", seed=3).noisy)
    assert not np.array_equal(first.noisy, rn.white_case("phantom", clean, "gaussian", seed=4).noisy)
    assert not np.array_equal(first.noisy, rn.white_case("other", clean, "gaussian", seed=3).noisy)
    poisson = rn.white_case("phantom", clean, "poisson", seed=3)
    assert poisson.poisson_peak == 30 and first.poisson_peak is None
    with pytest.raises(ValueError, match="noise must be one of .*'gaussian'.*got 'speckle'"):
        rn.white_case("phantom", clean, "speckle", seed=0)


def test_ct_case_adds_zero_mean_noise_in_hu_and_keeps_the_centre_window():
    from medden.transforms.ct_noise import RandLowDoseCTNoise

    hu = _head_phantom(64)
    case = rn.ct_case(hu, 2e4, pixel_mm=0.5, seed=0, window=32)
    assert case.units == rn.HU and case.family == rn.SCANNER and case.clean.shape == (1, 32, 32)
    assert np.array_equal(case.clean, hu[:, 16:48, 16:48])  # the clean slice, not a reconstruction of it
    noise = case.noisy - case.clean
    assert abs(float(noise.mean())) < 0.2 * case.true_sigma
    # the level the physics predicts for this slice in HU, dose and pixel size
    predicted = RandLowDoseCTNoise(2e4, pixel_mm=0.5).noise_std_map(hu, 2e4)[:, 16:48, 16:48]
    assert case.true_sigma == pytest.approx(float(np.sqrt((predicted**2).mean())), rel=0.15)
    assert rn.soft_tissue_sigma(case) == pytest.approx(case.true_sigma, rel=0.01)  # all inside the disc
    assert np.array_equal(case.noisy, rn.ct_case(hu, 2e4, pixel_mm=0.5, seed=0, window=32).noisy)


def test_mr_and_radiograph_cases_use_the_scanner_noises_at_their_levels():
    clean = 0.2 + _ramp(32, 0.8)
    mr = rn.mr_case("phantom", clean, 0.02, 4, seed=0)
    assert mr.name == "phantom: magnitude MR, sigma 0.02, g <= 2, 4 coils" and mr.family == rn.SCANNER
    assert float(mr.noisy.min()) >= 0.0 and 0.02 < mr.true_sigma < 0.02 * rn.MR_MAX_G * 1.5
    xray = rn.xray_case(clean, 50.0, seed=0)
    assert xray.name.startswith("chest radiograph: detector-blurred Poisson, peak 50, PSF sigma 1 px")
    # Poisson variance x / peak spread by the PSF (sum of its square ~ 1 / (4 pi sigma^2)), plus read-out noise
    expected = np.sqrt(float(clean.mean()) / 50.0 / (4 * np.pi) + rn.XRAY_READ_SIGMA**2)
    assert xray.true_sigma == pytest.approx(expected, rel=0.15)


def test_scores_map_by_the_clean_range_and_ct_gets_the_soft_tissue_window():
    clean = _ramp(32, 100.0)  # 0..100 HU, inside the soft-tissue window
    case = _case(clean, clean + 5.0, units=rn.HU)
    low, high = rn.unit_range(clean)
    scores = rn.score_output(case, clean + 5.0)
    assert scores["psnr"] == pytest.approx(20 * np.log10((high - low) / 5.0), abs=1e-3)
    assert scores["psnr_soft_tissue"] == pytest.approx(20 * np.log10(400 / 5.0), abs=1e-3)
    assert rn.score_output(case, clean)["ssim"] == pytest.approx(1.0)
    assert "psnr_soft_tissue" not in rn.score_output(_case(clean, clean + 5.0), clean + 5.0)
    with pytest.raises(ValueError, match=r"has shape \(1, 32, 16\), expected \(1, 32, 32\)"):
        rn.score_output(case, clean[..., :16])


def test_volumes_are_scored_in_3d():
    clean = np.random.default_rng(0).random((1, 16, 16, 8)).astype(np.float32)
    case = _case(clean, clean + 0.1, family=rn.VOLUME)
    low, high = rn.unit_range(clean)
    assert case.is_volume
    assert rn.score_output(case, case.noisy)["psnr"] == pytest.approx(20 * np.log10((high - low) / 0.1), abs=1e-3)
    assert set(rn.classical_methods(case)) == {rn.BM4D_BLIND, rn.BM4D_TRUE}


@pytest.fixture
def bm3d_calls(monkeypatch):
    """BM3D replaced by the identity, recording the sigma it is given."""
    import medden.anchors

    calls = []

    def identity(image, sigma=None):
        calls.append(sigma)
        return np.asarray(image, np.float32)

    monkeypatch.setattr(medden.anchors, "bm3d_denoise", identity)
    return calls


def test_bm3d_gets_the_blind_estimate_and_the_true_sigma_in_its_units(bm3d_calls):
    clean = _ramp(64, 500.0)  # a scanner's units, far from [0, 1]
    noisy = clean + np.random.default_rng(1).normal(0, 20.0, clean.shape).astype(np.float32)
    case = _case(clean, noisy, family=rn.SCANNER)
    methods = rn.classical_methods(case)
    assert set(methods) == {rn.BM3D_BLIND, rn.BM3D_TRUE, rn.NLM_BLIND}
    low, high = rn.unit_range(noisy)
    np.testing.assert_allclose(methods[rn.BM3D_TRUE](noisy), noisy, rtol=0, atol=1e-3)  # back in its units
    assert bm3d_calls[-1] == pytest.approx(case.true_sigma / (high - low))
    methods[rn.BM3D_BLIND](noisy)
    assert bm3d_calls[-1] == pytest.approx(estimate_noise_sigma((noisy - low) / (high - low)), rel=1e-5)


def test_true_sigma_bm3d_takes_the_anscombe_route_for_poisson(bm3d_calls):
    case = rn.white_case("phantom", _ramp(32), "poisson", seed=0)
    out = rn.classical_methods(case)[rn.BM3D_TRUE](case.noisy)
    assert bm3d_calls == [1.0]  # stabilised: unit variance
    assert out.shape == case.noisy.shape and abs(float(out.mean() - case.noisy.mean())) < 0.05


def test_score_case_scores_the_noisy_input_and_each_method():
    clean = _ramp(32)
    noisy = clean + np.random.default_rng(2).normal(0, 0.1, clean.shape).astype(np.float32)
    case = _case(clean, noisy)
    outputs, records = rn.score_case(case, {"identity": lambda y: y, "oracle": lambda y: case.clean})
    by = {r["method"]: r for r in records}
    assert list(by) == [rn.NOISY, "identity", "oracle"] and np.array_equal(outputs["oracle"], clean)
    assert by["identity"]["psnr"] == pytest.approx(by[rn.NOISY]["psnr"])
    assert by["oracle"]["psnr"] == np.inf and by[rn.NOISY]["seconds"] == 0.0
    assert by["identity"]["residual_correlation"] == 0.0  # removed nothing
    assert by["oracle"]["residual_correlation"] == pytest.approx(method_noise_correlation(noisy, clean, clean))
    assert {r["case"] for r in records} == {case.name} and {r["family"] for r in records} == {rn.WHITE}


def test_lesion_contrast_is_kept_by_the_identity_and_lost_by_a_blur():
    from scipy.ndimage import gaussian_filter

    hu = _head_phantom(96)
    noisy = hu + np.random.default_rng(3).normal(0, 20.0, hu.shape).astype(np.float32)
    sites = rn.lesion_sites(hu)
    assert 1 <= len(sites) <= rn.LesionSettings().count
    assert all(hu[0, r, c] == 30.0 for r, c in sites)
    assert rn.lesion_contrast_kept(lambda y: y, noisy, noisy, sites) == pytest.approx(1.0)

    def blur(y):
        return gaussian_filter(y, (0, 4, 4))

    assert rn.lesion_contrast_kept(blur, noisy, blur(noisy), sites) < 0.6
    with pytest.raises(ValueError, match="no 21-pixel neighbourhood of the image lies in soft tissue"):
        rn.lesion_sites(np.full((1, 64, 64), -1000.0, np.float32))


def test_ms_per_slice_is_the_median_per_256_square_pixels(monkeypatch):
    ticks = iter(np.arange(0.0, 100.0, 0.01))
    monkeypatch.setattr(rn.time, "perf_counter", lambda: float(next(ticks)))
    calls = []
    image = np.zeros((1, 128, 128), np.float32)
    ms = rn.ms_per_slice(calls.append, image, repeats=3)
    assert len(calls) == 4  # one untimed warm-up call
    assert ms == pytest.approx(10.0 * 4)  # 10 ms per call on a quarter of a 256 x 256 slice
    assert rn.ms_per_slice(calls.append, image, repeats=1, warm_up=False) == pytest.approx(40.0)
    assert len(calls) == 5


def test_missing_bundles_are_skipped_with_a_note():
    methods, names, notes = rn.model_methods(None, "no_such_bundle_v9", upper_bound="clean.pt")
    assert methods == {} and names == {}
    assert notes[0].startswith("v2 (no_such_bundle_v9) was skipped: unknown bundle 'no_such_bundle_v9'")
    assert notes[1] == ("clean-target upper bound (clean.pt) was skipped: it runs in the v2 bundle, "
                        "which did not load.")


def _conv_weights(path, bias):
    """A 1 x 1 convolution's weights: the identity plus ``bias`` (in the network's [0, 1] units)."""
    torch.save({"weight": torch.ones(1, 1, 1, 1), "bias": torch.full((1,), float(bias))}, path)
    return path


def _tiny_bundle(folder, ensemble: bool):
    """A bundle whose network is a 1 x 1 convolution, with a self-ensemble entry or without."""
    config = {
        "imports": ["$import torch", "$import medden", "$import medden.io", "$import medden.inference"],
        "bundle_root": ".", "model_path": "$@bundle_root + '/models/model.pt'", "device": "$torch.device('cpu')",
        "intensity_percentiles": [0.5, 99.5],
        "network_def": "$torch.nn.Conv2d(1, 1, 1)",
        "network": "$medden.io.load_network_weights(@network_def, @model_path).to(@device).eval()",
        "inferer": {"_target_": "monai.inferers.SimpleInferer"},
    }
    if ensemble:
        config.update({rn.ENSEMBLE_KEY: 1,
                       "inferer": {"_target_": "medden.inference.SelfEnsembleInferer", "views": f"@{rn.ENSEMBLE_KEY}"}})
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "configs" / "inference.json").write_text(json.dumps(config))
    _conv_weights(folder / "models" / "model.pt", 0.0)
    return folder


def test_v2_its_self_ensemble_and_the_upper_bound_run_through_the_bundle(tmp_path):
    v2 = _tiny_bundle(tmp_path / "v2", ensemble=True)
    upper = _conv_weights(tmp_path / "clean_target.pt", 0.25)
    methods, names, notes = rn.model_methods(None, str(v2), upper_bound=str(upper), trust=True)
    assert set(methods) == {rn.V2, rn.V2_ENSEMBLE, rn.UPPER_BOUND} and notes == []
    assert names[rn.V2_ENSEMBLE].endswith(f"({rn.ENSEMBLE_KEY} 8)")
    image = (100.0 * _ramp(32)).astype(np.float32)
    np.testing.assert_allclose(methods[rn.V2](image), image, atol=1e-3)
    np.testing.assert_allclose(methods[rn.V2_ENSEMBLE](image), image, atol=1e-3)
    shift = methods[rn.UPPER_BOUND](image) - image  # the upper bound's weights, in v2's intensity handling
    assert float(shift.min()) > 20.0

    plain = _tiny_bundle(tmp_path / "plain", ensemble=False)
    methods, _, notes = rn.model_methods(str(plain), str(plain), trust=True)
    assert set(methods) == {rn.V1, rn.V2}
    assert notes == [f"v2 self-ensemble was skipped: the v2 bundle's inference config has no '{rn.ENSEMBLE_KEY}' "
                     "entry."]


def _records(case, family, psnr):
    return [{"case": case, "family": family, "method": m, "psnr": p, "residual_correlation": 0.01}
            for m, p in psnr.items()]


def test_targets_state_each_miss_with_its_figure():
    records = (_records("CT: Gaussian sigma 20/255", rn.WHITE, {rn.V2: 30.5, rn.BM3D_TRUE: 30.0})
               + _records("MR: Poisson peak 30", rn.WHITE, {rn.V2: 29.8, rn.BM3D_TRUE: 30.0})
               + _records("MR: Rician sigma 0.05", rn.WHITE, {rn.V2: 20.0, rn.BM3D_TRUE: 30.0})  # not a target
               + _records("CT: low dose", rn.SCANNER, {rn.V2: 40.0, rn.BM3D_BLIND: 39.0, rn.BM3D_TRUE: 40.4}))
    checks = rn.target_checks(records, {rn.V2: 30.0, rn.BM3D_TRUE: 1200.0}, {"CT: low dose": {rn.V2: 0.97}})
    verdicts = [(c["met"], c["figure"]) for c in checks]
    assert verdicts == [
        (False, "1 of 2 cases; worst -0.20 dB (MR: Poisson peak 30)"),
        (True, "1 of 1 cases; worst +1.00 dB (CT: low dose)"),
        (True, "1 of 1 cases; worst -0.40 dB (CT: low dose)"),
        (True, "30.0 ms"),
        (False, "40x (1200 ms / 30.0 ms)"),
        (True, "worst +0.010 (CT: Gaussian sigma 20/255)"),
        (True, "least 97.0 % (CT: low dose)"),
    ]
    unmeasured = rn.target_checks(records, {}, {}, model=rn.V1)
    assert {c["met"] for c in unmeasured} == {None} and {c["figure"] for c in unmeasured} == {"not measured"}


def _script():
    spec = importlib.util.spec_from_file_location("benchmark_realistic_noise",
                                                  REPO / "scripts" / "benchmark_realistic_noise.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_page_tables_have_one_cell_per_column():
    clean = _ramp(32, 100.0)
    cases = [_case(clean, clean + 5.0, units=rn.HU, family=rn.SCANNER, noise="low-dose CT, I0 1e+04/bin"),
             _case(clean, clean + 2.0, noise="Gaussian sigma 20/255")]
    records = [r for case in cases for r in rn.score_case(case, {rn.V1: lambda y: y})[1]]
    script = _script()
    payload = {"command": "python scripts/benchmark_realistic_noise.py", "quick": True, "seed": 0, "threads": 2,
               "machine": "test", "bundles": {rn.V1: "tiny"}, "notes": ["v2 was skipped"],
               "methods": [rn.NOISY, rn.V1], "model_under_test": rn.V1,
               "cases": [script.case_row(c) for c in cases], "records": records, "speed": {rn.V1: 10.0},
               "timing_case": cases[0].name, "lesion": {cases[0].name: {rn.V1: 0.9}},
               "lesion_settings": {"count": 8, "radius": 5, "contrast": 40.0, "tissue": [10, 60]},
               "levels": {"ct_doses": [1e4], "mr_levels": [[0.02, 4]], "mr_max_g": 2.0, "xray_peaks": [50.0],
                          "xray_psf_sigma": 1.0}}
    text = script.markdown(json.loads(json.dumps(payload)))
    tables = [block.splitlines() for block in text.split("\n\n") if block.startswith("|")]
    assert len(tables) == 6  # cases, PSNR, CT window, speed, residual correlation, lesion contrast
    for table in tables:
        assert {line.count("|") for line in table} == {table[0].count("|")}, table
    assert "- Note: v2 was skipped" in text
    assert "a lesion-sized structure keeps >= 95 % of its contrast: **NOT met** (least 90.0 %" in text
