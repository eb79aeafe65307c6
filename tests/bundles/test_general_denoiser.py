"""General-purpose denoiser: mixed-modality data, the network, anchors and the bundle configs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medden.anchors import anscombe, inverse_anscombe, nlm_denoise, with_anscombe
from medden.data.modalities import MODALITIES, ModalityImage, balanced_items, general_images, general_test_images
from medden.inference import denoise_image
from medden.networks import general_denoiser_net
from medden.networks.conditioned import NoiseConditionedDenoiser

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "general_denoiser"


@pytest.fixture(scope="module")
def train_images():
    return general_images("train")


def test_every_modality_trains_and_tests_on_disjoint_images(train_images):
    val, test = general_images("val"), general_test_images(brain_slices=2)
    assert {i.modality for i in train_images} == set(MODALITIES)
    assert {i.modality for i in test} == set(MODALITIES)
    for item in [*train_images, *val, *test]:
        assert item.image.dtype == np.float32 and item.image.ndim == 3 and item.image.shape[0] == 1
        assert 0.0 <= item.image.min() and item.image.max() <= 1.0
    # the held-out test files are never training files, and the histology halves do not overlap
    dicom = lambda items: {i.name for i in items if i.name.endswith(".dcm")}  # noqa: E731
    assert not dicom(train_images) & dicom(test)
    train_strips = {i.image.tobytes() for i in train_images}
    assert not any(i.image.tobytes() in train_strips for i in [*val, *test])


def test_balanced_items_repeat_each_modality_equally(train_images):
    items = balanced_items(train_images, per_modality=7)
    assert len(items) == 7 * len(MODALITIES)
    brain = [i for i in train_images if i.modality == "brain MR"]
    assert len(brain) > 7  # the template's many slices would dominate without balancing
    with pytest.raises(ValueError, match="per_modality"):
        balanced_items(train_images, 0)
    with pytest.raises(ValueError, match="no images"):
        balanced_items([], 3)
    one = [ModalityImage("CT", "a", np.zeros((1, 4, 4), np.float32))]
    assert len(balanced_items(one, 3)) == 3


def test_general_images_rejects_the_test_split():
    with pytest.raises(ValueError, match="general_test_images"):
        general_images("test")


@pytest.mark.parametrize("conditioned", [False, True])
def test_general_net_is_residual_and_keeps_shape(conditioned):
    net = general_denoiser_net(conditioned=conditioned, channels=(4, 8, 16))
    x = torch.rand(2, 1, 32, 48)
    assert net(x).shape == x.shape
    for p in net.parameters():
        torch.nn.init.zeros_(p)
    assert torch.equal(net(x), x)  # zero correction: the identity, as residual learning starts


def test_fast_unet_rejects_sizes_it_cannot_halve_and_bad_levels():
    from medden.networks import FastResUNet

    with pytest.raises(ValueError, match="multiples of 8, got 36 x 48"):
        FastResUNet(channels=(4, 8, 16))(torch.rand(1, 1, 36, 48))
    with pytest.raises(ValueError, match="two levels"):
        FastResUNet(channels=(4,))


def test_conditioned_net_sees_each_inputs_own_noise_level():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(x[:, 1, 0, 0].clone())
            return torch.zeros_like(x[:, :1])

    net = NoiseConditionedDenoiser(Probe())
    gen = torch.Generator().manual_seed(0)
    smooth = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(2, 1, 64, 64).clone()
    smooth[0] += 0.02 * torch.randn(1, 64, 64, generator=gen)
    smooth[1] += 0.10 * torch.randn(1, 64, 64, generator=gen)
    net(smooth)
    assert seen[0][0] == pytest.approx(0.02, rel=0.15) and seen[0][1] == pytest.approx(0.10, rel=0.15)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        NoiseConditionedDenoiser("not a net")


def test_inverse_anscombe_is_unbiased_where_the_algebraic_one_is_not():
    rng = np.random.default_rng(0)
    for mean_count in (2.0, 5.0, 30.0):
        stabilised = anscombe(rng.poisson(mean_count, 400_000)).mean()
        assert inverse_anscombe(np.array(stabilised)) == pytest.approx(mean_count, rel=0.02)
    low = anscombe(rng.poisson(2.0, 400_000)).mean()
    assert abs((low / 2) ** 2 - 0.375 - 2.0) > 0.1  # the naive inverse is biased at low counts


def test_anchors_denoise_and_reject_bad_shapes():
    rng = np.random.default_rng(1)
    clean = np.tile(np.linspace(0.2, 0.8, 48, dtype=np.float32), (48, 1))[None]
    noisy = clean + 0.08 * rng.standard_normal(clean.shape).astype(np.float32)
    out = nlm_denoise(noisy, 0.08)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert np.abs(out - clean).mean() < 0.6 * np.abs(noisy - clean).mean()
    assert nlm_denoise(noisy).shape == clean.shape  # sigma estimated
    counts = rng.poisson(30 * clean) / 30.0
    poisson_out = with_anscombe(nlm_denoise, 30.0)(counts.astype(np.float32))
    assert np.abs(poisson_out - clean).mean() < np.abs(counts - clean).mean()
    with pytest.raises(ValueError, match=r"\(1, H, W\)"):
        nlm_denoise(np.zeros((48, 48), np.float32), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        nlm_denoise(noisy, -1.0)


def test_bundle_configs_parse_and_declare_robust_scaling():
    from monai.bundle import ConfigParser

    for name in ("train", "evaluate", "inference", "multi_gpu_train", "metadata"):
        assert (BUNDLE / "configs" / f"{name}.json").is_file()
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    assert parser["intensity_percentiles"] == [0.5, 99.5]
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    assert meta["version"] and "Noise2Noise" in meta["description"]


def test_shipped_model_loads_and_denoises_every_modality():
    """The trained weights load with weights_only and improve a noisy slice of each modality."""
    from medden.bundle import load_bundle
    from medden.metrics.image_quality import psnr

    if not (BUNDLE / "models" / "model.pt").is_file():
        pytest.fail("bundles/general_denoiser/models/model.pt is missing: train the bundle (see its README)")
    bundle = load_bundle(BUNDLE, device="cpu")
    rng = np.random.default_rng(2)
    for item in general_test_images(brain_slices=1):
        noisy = item.image + np.float32(20 / 255) * rng.standard_normal(item.image.shape).astype(np.float32)
        out = np.asarray(denoise_image(noisy[..., None], bundle.network, bundle.inferer, bundle.percentiles))[..., 0]
        assert float(psnr(out, item.image, 1.0)) > float(psnr(noisy, item.image, 1.0)) + 3.0, item.modality


def test_robust_normalisation_round_trips_every_intensity():
    """Scaling by the 0.5-99.5th percentiles is undone exactly, outliers included (nothing is clipped)."""
    from monai.inferers import SliceInferer

    class Identity(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            seen.append((float(x.min()), float(x.max())))
            return x * self.scale

    seen = []
    rng = np.random.default_rng(3)
    volume = rng.normal(-300.0, 200.0, (1, 32, 32, 4)).astype(np.float32)  # CT-like units
    volume[0, 0, 0, 0], volume[0, 1, 1, 1] = -3000.0, 9000.0  # outliers beyond the percentiles
    inferer = SliceInferer(spatial_dim=2, roi_size=(32, 32), sw_batch_size=4)
    out = denoise_image(volume, Identity(), inferer, percentiles=(0.5, 99.5))
    np.testing.assert_allclose(out, volume, rtol=1e-5, atol=1e-3)
    low, high = np.percentile(volume, [0.5, 99.5])
    assert seen[0][0] < 0 and seen[0][1] > 1  # the network saw the outliers outside [0, 1], unclipped
    assert (9000.0 - low) / (high - low) == pytest.approx(seen[0][1], rel=1e-4)


def test_intensity_range_measured_after_smoothing_resists_noise():
    from medden.inference.volumes import intensity_range

    rng = np.random.default_rng(4)
    clean = np.zeros((1, 96, 96, 2), np.float32)
    clean[:, 24:72, 24:72] = 1.0  # a bright object in dark air
    noisy = clean + 0.05 * rng.standard_normal(clean.shape).astype(np.float32)
    raw_low, _ = intensity_range(noisy, (0.5, 99.5))
    smooth_low, smooth_high = intensity_range(noisy, (0.5, 99.5), smoothing=5)
    assert raw_low < -0.1  # noise drags the dark percentile about 2.6 sigma below the air
    assert abs(smooth_low) < 0.35 * abs(raw_low) and smooth_high == pytest.approx(1.0, abs=0.05)
    assert intensity_range(np.full((1, 4, 4), 3.0, np.float32)) == (3.0, 4.0)  # constant: a unit range


@pytest.mark.parametrize("anchor", ["nlm", "bm3d"])
def test_anchors_take_rgb_images(anchor):
    from medden.anchors import bm3d_denoise

    fn = {"nlm": nlm_denoise, "bm3d": bm3d_denoise}[anchor]
    rng = np.random.default_rng(0)
    clean = np.stack([np.tile(np.linspace(0.2, 0.8, 48, dtype=np.float32), (48, 1))] * 3) * np.array([1, 0.8, 0.6],
                                                                                                   np.float32)[:, None, None]
    noisy = clean + rng.normal(0, 0.08, clean.shape).astype(np.float32)
    out = fn(noisy, 0.08)
    assert out.shape == (3, 48, 48) and out.dtype == np.float32
    assert np.abs(out - clean).mean() < 0.5 * np.abs(noisy - clean).mean()
    with pytest.raises(ValueError, match=r"grey \(1, H, W\) or RGB \(3, H, W\)"):
        fn(noisy[:2], 0.08)
