"""Training items of the default model: scanner-like noise pairs, clean pairs, the noisy input's range."""

import numpy as np
import pytest
import torch

from medden.core.intensity import intensity_range
from medden.data.modalities import ModalityImage
from medden.engines.general_training import (
    NOISE_MENUS,
    WHITE_NOISE_MENUS,
    general_training_dataset,
    make_noise,
    menus_without,
    validation_items,
)
from medden.transforms import stack_indices


def _images():
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0.0, 1.0, 120, dtype=np.float32), (110, 1))[None]
    ct = np.full((1, 128, 128), (40 + 1024) / 4096, np.float32)  # soft tissue
    ct[:, :10] = 0.0  # air
    return [ModalityImage("photograph", "ramp", ramp + 0.01 * rng.random(ramp.shape, dtype=np.float32)),
            ModalityImage("CT", "water", ct)]


def test_items_are_patch_pairs_scaled_by_the_noisy_input_range():
    data = general_training_dataset(_images(), patches={"photograph": 4, "CT": 4}, patch_size=32, region_size=64,
                                    menus=WHITE_NOISE_MENUS)
    assert len(data) == 8
    for item in data:
        assert set(item) == {"input", "target"}
        assert tuple(item["input"].shape) == tuple(item["target"].shape) == (1, 32, 32)
        assert item["input"].dtype == torch.float32


def test_clean_pairs_teach_the_identity_and_are_in_every_menu():
    assert all(menu["clean"] > 0 for menu in NOISE_MENUS.values())
    only_clean = {menu: {"clean": 1.0} for menu in NOISE_MENUS}
    for item in general_training_dataset(_images(), patches={"photograph": 3}, patch_size=32, region_size=64,
                                         menus=only_clean):
        assert torch.equal(item["input"], item["target"])


def test_pairs_are_scaled_by_the_whole_image_range_or_by_the_crop():
    image = _images()[0]
    image = ModalityImage(image.modality, image.name, np.concatenate([image.image, image.image + 1.0], axis=2))
    only_gaussian = {menu: {"gaussian": 1.0} for menu in NOISE_MENUS}
    levels = {"gaussian": 0.3}

    def item(scaling):  # clean targets, to see the crop's own extent
        return general_training_dataset([image], patches={"photograph": 1}, patch_size=96, region_size=96, mode="n2c",
                                        levels=levels, menus=only_gaussian, pair_scaling=scaling, seed=0)[0]

    # the whole image spans 0..2, a 96-pixel crop about 0.8 of it: scaled by the whole image's range,
    # the crop covers about 0.4 of [0, 1], as it does in the whole image at inference
    low, high = intensity_range(np.asarray(item("image")["target"]), (0.5, 99.5), 0)
    assert 0.35 < high - low < 0.65
    # scaled by the noisy crop's own smoothed range, the input's percentiles map near 0 and 1
    low, high = intensity_range(np.asarray(item("noisy_region")["input"]), (0.5, 99.5), 5)
    assert abs(low) < 0.02 and abs(high - 1) < 0.02
    # scaled by the crop's range before noise, the noise widens the input beyond [0, 1]
    low, high = intensity_range(np.asarray(item("clean_region")["input"]), (0.5, 99.5), 5)
    assert high - low > 1.05
    with pytest.raises(ValueError, match="pair_scaling must be one of"):
        item("clean")


def test_menus_and_noise_names_are_checked():
    assert "ct" not in menus_without(("ct",))["CT"]
    with pytest.raises(ValueError, match="unknown noise 'speckle'"):
        make_noise("speckle")
    with pytest.raises(ValueError, match="patch_size=256"):
        general_training_dataset(_images(), patches={"CT": 1}, patch_size=256)


def test_magnitude_pairs_get_targets_without_the_noise_floor_bias():
    air = [ModalityImage("MR", "air", np.zeros((1, 96, 96), np.float32))]
    for noise in ("rician", "mr"):
        menus = {menu: {noise: 1.0} for menu in NOISE_MENUS}
        levels = {"rician": 0.1, "mr": 0.1, "mr_coils": 8, "mr_g_max": 1.0}
        item = general_training_dataset(air, patches={"MR": 1}, patch_size=96, region_size=96, levels=levels,
                                        menus=menus, pair_scaling="clean_region", bias_corrected_magnitude=True)[0]
        # Rician air: input mean 1.25 sigma; the corrected target about 0.46 sigma (0.37 of the input's)
        ratio = float(item["target"].mean() / item["input"].mean())
        assert 0.25 < ratio < 0.5, (noise, ratio)
    plain = general_training_dataset(air, patches={"MR": 1}, patch_size=96, region_size=96, levels={"rician": 0.1},
                                     menus={menu: {"rician": 1.0} for menu in NOISE_MENUS},
                                     pair_scaling="clean_region")[0]
    assert 0.8 < float(plain["target"].mean() / plain["input"].mean()) < 1.25  # off by default


def _slab(depth=12):
    """A ``(1, 80, 90, depth)`` volume whose slice ``k`` holds ``0.2 + 0.05 k`` everywhere (scaled: ``k / (depth - 1)``)."""
    values = 0.2 + 0.05 * np.arange(depth, dtype=np.float32)
    return [ModalityImage("brain MR volume", "slab", np.broadcast_to(values, (1, 80, 90, depth)).copy())]


def test_stack_items_cut_real_volumes_and_deform_2d_images():
    only_clean = {menu: {"clean": 1.0} for menu in NOISE_MENUS}
    data = general_training_dataset(_images()[:1], patches={"photograph": 2, "brain MR volume": 6}, patch_size=32,
                                    region_size=64, menus=only_clean, seed=0, neighbours=2, volumes=_slab())
    assert len(data) == 8
    from_volume = []
    for item in data:
        assert tuple(item["input"].shape) == (5, 32, 32) and tuple(item["target"].shape) == (1, 32, 32)
        assert torch.equal(item["target"], item["input"][2:3])  # clean pairs: the target is the centre slice
        if float(item["input"].std(dim=(1, 2)).max()) < 1e-5:  # constant slices: the volume's
            from_volume.append((item["input"][:, 0, 0] * 11).round().int().tolist())
    assert len(from_volume) == 6  # the volume group is trained on, from real slices of the volume
    stacks = [stack_indices(12, 2, c, step) for c in range(12) for step in (1, 2, 3, 4)]
    lone = [picks for picks in from_volume if len(set(picks)) == 1]  # a share repeat one slice, as a 2D image
    assert len(lone) < 3 and all(picks in stacks or picks[::-1] in stacks for picks in from_volume if picks not in lone)
    # the 2D model leaves the volumes out
    flat = general_training_dataset(_images()[:1], patches={"photograph": 2, "brain MR volume": 6}, patch_size=32,
                                    region_size=64, menus=only_clean, seed=0, volumes=_slab())
    assert len(flat) == 2 and tuple(flat[0]["input"].shape) == (1, 32, 32)


def test_stack_validation_items_hold_the_clean_centre_slice():
    items = validation_items(_images()[:1], {"photograph": 2, "brain MR volume": 2}, patch_size=32, region_size=64,
                             menus=WHITE_NOISE_MENUS, neighbours=1, volumes=_slab())
    assert len(items) == 4
    for item in items:
        assert tuple(item["input"].shape) == (3, 32, 32) and tuple(item["clean"].shape) == (1, 32, 32)
        assert not torch.equal(item["input"][1:2], item["clean"])  # noisy input, clean target
