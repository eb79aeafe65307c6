"""Progress of inference calls: slice-stack, sliding-window and wrapper inferers report to the installed
callback, monotonically, ending at the total; a bundle reports in slices."""

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.inferers import SliceInferer, SlidingWindowInferer

from medden.inference import RefinementInferer, SelfEnsembleInferer, SliceStackInferer, denoise_image
from medden.inference.progress import count_windows, progress_part, report_progress, reporting_progress, \
    run_base_inferer

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def _recorded(inferer, inputs, network):
    seen = []
    with reporting_progress(lambda done, total: seen.append((done, total))):
        run_base_inferer(inferer, inputs, network)
    return seen


def _monotone_to_end(seen):
    assert seen, "no progress was reported"
    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and len({t for _, t in seen}) == 1
    assert seen[-1][0] == seen[-1][1]


def test_nothing_is_reported_without_a_callback():
    report_progress(1, 2)  # a no-op
    with progress_part(0, 2):
        report_progress(1, 1)


def test_slice_stack_inferer_reports_each_batch_of_slices():
    seen = _recorded(SliceStackInferer(neighbours=1, sw_batch_size=4), torch.rand(2, 1, 8, 8, 10),
                     lambda s: s[:, 1:2])
    assert seen == [(4, 20), (8, 20), (10, 20), (14, 20), (18, 20), (20, 20)]


@pytest.mark.parametrize("roi, overlap, shape", [((8, 8), 0.25, (1, 1, 20, 13, 3)), ((-1, -1), 0.0, (2, 1, 9, 9, 4)),
                                                 ((16, 16), 0.5, (1, 1, 10, 30, 2))])
def test_sliding_window_count_matches_what_monai_runs(roi, overlap, shape):
    inferer = SliceInferer(spatial_dim=2, roi_size=roi, sw_batch_size=3, overlap=overlap, progress=False)
    calls = []

    def network(x):
        calls.append(x.shape[0])
        return x

    inferer(torch.rand(shape), network)
    assert count_windows(inferer, shape) == sum(calls)
    seen = _recorded(inferer, torch.rand(shape), lambda x: x)
    _monotone_to_end(seen)
    assert seen[-1][1] == sum(calls)
    flat = SlidingWindowInferer(roi_size=(8, 8), overlap=0.25)
    assert count_windows(flat, (1, 1, 20, 13)) == 3 * 2  # ceil((20-8)/6)+1 by ceil((13-8)/6)+1
    assert count_windows(lambda x, n: n(x), shape) is None


def test_wrappers_split_the_progress_into_parts():
    stack = SliceStackInferer(neighbours=1, sw_batch_size=2)
    seen = _recorded(SelfEnsembleInferer(views=2, base_inferer=stack), torch.rand(1, 1, 6, 6, 4),
                     lambda s: s[:, 1:2])
    assert seen == [(2, 8), (4, 8), (6, 8), (8, 8)]
    refine = RefinementInferer(eta=0.5, steps=3, base_inferer=SliceInferer(spatial_dim=2, roi_size=(6, 6),
                                                                           sw_batch_size=1, progress=False))
    seen = _recorded(refine, torch.rand(1, 1, 6, 6, 2), lambda x: x)
    _monotone_to_end(seen)
    assert len(seen) == 6 and seen[-1] == (6, 6)


def test_denoise_image_reports_the_windows_of_a_monai_inferer():
    seen = []
    with reporting_progress(lambda done, total: seen.append((done, total))):
        denoise_image(np.random.default_rng(0).random((1, 12, 12, 5), dtype=np.float32), torch.nn.Identity(),
                      SliceInferer(spatial_dim=2, roi_size=(12, 12), sw_batch_size=2, progress=False))
    assert seen == [(2, 5), (4, 5), (5, 5)]


@pytest.mark.parametrize("name", ["general_denoiser_v3", "recorruption_ixi_bernoulli"])
def test_bundle_denoise_reports_slices(name):
    from medden.bundle import load_bundle

    bundle = load_bundle(BUNDLES / name, device="cpu", batch_size=2)
    volume = np.random.default_rng(1).random((1, 32, 32, 6), dtype=np.float32)
    seen = []
    out = bundle.denoise(volume, progress=lambda done, total: seen.append((done, total)))
    assert out.shape == volume.shape
    _monotone_to_end(seen)
    assert seen[-1] == (6, 6) and len(seen) >= 2  # more than the end alone
    np.testing.assert_array_equal(out, bundle.denoise(volume))  # reporting does not change the pixels
    seen.clear()
    bundle.denoise(volume[..., 0], progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 1)]
