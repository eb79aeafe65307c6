"""Loading a bundle: by folder or shipped name, its checked settings, other weights, and
``Bundle.denoise`` on 2D images, volumes, grey and RGB bundles."""

import hashlib

import numpy as np
import pytest
import torch

from medden.bundle import (Bundle, ChannelError, bundle_config, bundle_network, load_bundle, resolve_bundle,
                           shipped_bundles, shipped_bundles_dir)
from medden.inference import denoise_image

from helpers import REPO, bundle_variant

BUNDLE = REPO / "bundles" / "recorruption_ixi_bernoulli"


@pytest.fixture(scope="module")
def general() -> Bundle:
    return load_bundle("general_denoiser", device="cpu")


@pytest.fixture(scope="module")
def rgb() -> Bundle:
    return load_bundle("recorruption_camelyon_gaussian", device="cpu")


def test_bundle_is_found_by_folder_or_shipped_name(tmp_path):
    assert "recorruption_ixi_bernoulli" in shipped_bundles()
    assert resolve_bundle("recorruption_ixi_bernoulli") == shipped_bundles_dir() / "recorruption_ixi_bernoulli"
    assert resolve_bundle("recorruption_ixi_bernoulli").resolve() == BUNDLE.resolve()
    assert resolve_bundle(str(BUNDLE)) == BUNDLE
    assert load_bundle("recorruption_ixi_bernoulli", device="cpu").name == load_bundle(BUNDLE, device="cpu").name


def test_unknown_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"unknown bundle 'no_such_bundle'.*shipped: .*recorruption_ixi_bernoulli"):
        resolve_bundle("no_such_bundle")
    with pytest.raises(FileNotFoundError, match="is not a medden bundle"):
        resolve_bundle(tmp_path)  # a folder, but not a bundle
    with pytest.raises(FileNotFoundError, match="bundle folder .* does not exist"):
        load_bundle(tmp_path / "missing")


def test_batch_size_is_checked():
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0; it is how many slices"):
        load_bundle(BUNDLE, device="cpu", batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int >= 1, got 2.0 of type float"):
        load_bundle(BUNDLE, device="cpu", batch_size=2.0)


def test_batch_size_needs_an_inferer_that_has_one(tmp_path):
    variant = bundle_variant(tmp_path, BUNDLE, inferer={"_target_": "monai.inferers.SimpleInferer"})
    assert load_bundle(variant, device="cpu", trust=True).inferer is not None  # fine without batch_size
    with pytest.raises(ValueError, match="inferer SimpleInferer .* has no sw_batch_size"):
        load_bundle(variant, device="cpu", batch_size=4, trust=True)


@pytest.mark.parametrize("value", [[99.5, 0.5], [0.5], "0.5, 99.5", [0, 101]])
def test_bad_bundle_percentiles_are_refused(tmp_path, value):
    with pytest.raises(ValueError, match=r"intensity_percentiles in .*inference.json"):
        load_bundle(bundle_variant(tmp_path, BUNDLE, intensity_percentiles=value), device="cpu", trust=True)


def test_bundle_intensity_smoothing_is_loaded_and_checked(tmp_path):
    bundle = load_bundle(bundle_variant(tmp_path, BUNDLE, intensity_smoothing=5), device="cpu", trust=True)
    assert bundle.smoothing == 5 and bundle.parameters["intensity_smoothing"] == 5
    assert load_bundle(bundle_variant(tmp_path / "plain", BUNDLE), device="cpu", trust=True).smoothing == 0
    for value in (-1, 2.5, True):
        with pytest.raises(ValueError, match=r"intensity_smoothing in .*inference.json"):
            load_bundle(bundle_variant(tmp_path / str(value), BUNDLE, intensity_smoothing=value), device="cpu", trust=True)


def test_bundle_network_loads_other_weights_into_the_bundles_network(tmp_path):
    shipped = load_bundle("general_denoiser").network
    state = {key: value + 1 for key, value in shipped.state_dict().items()}
    torch.save(state, tmp_path / "other.pt")
    loaded = bundle_network("general_denoiser", tmp_path / "other.pt")
    assert not loaded.training
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, state[key])



def test_loaded_bundle_carries_what_callers_record(general):
    assert general.root == shipped_bundles_dir() / "general_denoiser" and general.backend == "torch"
    assert general.name.startswith("general_denoiser ") and general.image_channels == 1
    weights = hashlib.sha256((general.root / "models" / "model.pt").read_bytes()).hexdigest()
    assert general.parameters == {"intensity_percentiles": [0.5, 99.5], "intensity_smoothing": 5,
                                  "weights_sha256": weights, "config_sha256": general.parameters["config_sha256"]}
    assert general.runs_on_volumes and not general.network.training


def test_bundle_config_reads_any_config_with_overrides():
    parser = bundle_config("general_denoiser", "train.json", {"max_epochs": 3, "not_there": 1}, only_known=True)
    assert parser["max_epochs"] == 3 and "not_there" not in parser
    assert parser["bundle_root"] == str(shipped_bundles_dir() / "general_denoiser")


def _image(channels, *spatial, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(300, 60, (channels, *spatial)) + rng.normal(0, 30, (channels, *spatial))).astype(np.float32)


def test_denoise_keeps_shape_dtype_and_input_and_matches_denoise_image(general):
    volume = _image(1, 32, 32, 2)
    before = volume.copy()
    out = general.denoise(volume)
    np.testing.assert_array_equal(volume, before)
    assert out.shape == volume.shape and out.dtype == np.float32 and out.flags.c_contiguous
    expected = denoise_image(volume, general.network, general.inferer, general.percentiles, smoothing=general.smoothing)
    np.testing.assert_array_equal(out, expected)  # exactly medden denoise's numbers
    image = volume[..., 1]  # a 2D image is a one-slice volume
    np.testing.assert_array_equal(general.denoise(image), general.denoise(image[..., None])[..., 0])
    assert np.abs(out - volume).mean() > 1.0  # it denoised something


def test_grey_bundle_takes_the_channels_of_a_colour_image_as_slices_of_one_volume(general):
    colour = _image(3, 32, 32, 2, seed=1)
    out = general.denoise(colour)
    grey = colour.transpose(1, 2, 3, 0).reshape(1, 32, 32, 6)  # slice k, channel c -> grey slice 3 k + c
    expected = general.denoise(grey).reshape(32, 32, 2, 3).transpose(3, 0, 1, 2)
    np.testing.assert_array_equal(out, expected)


def test_a_bundle_with_a_2d_inferer_runs_slice_by_slice(rgb):
    assert not rgb.runs_on_volumes and rgb.image_channels == 3
    volume = np.random.default_rng(2).random((3, 32, 40, 2), dtype=np.float32)
    out = rgb.denoise(volume)
    for k in range(2):
        np.testing.assert_array_equal(out[..., k], rgb.denoise(volume[..., k]))


def test_denoise_refuses_other_channel_counts_bad_shapes_and_non_finite_values(rgb, general):
    with pytest.raises(ChannelError, match="takes 3-channel images, got 1 channel") as caught:
        rgb.denoise(np.zeros((1, 32, 32), np.float32))
    assert (caught.value.expected, caught.value.got) == (3, 1) and isinstance(caught.value, ValueError)
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(C, H, W, D\), got shape \(32, 32\)"):
        general.denoise(np.zeros((32, 32), np.float32))
    image = np.ones((1, 32, 32), np.float32)
    image[0, 3, 4] = np.nan
    with pytest.raises(ValueError, match="image"):
        general.denoise(image)
