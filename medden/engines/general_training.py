"""Training data of the default model, version 2: every corpus image, noise as scanners make it.

One training item is made in this order, as :func:`general_training_dataset` builds it:

1. a random ``region_size`` square of one corpus image (:func:`medden.data.corpus.corpus_images`);
2. a Noise2Noise pair (two independent realisations at one level) of a noise drawn from the
   image group's menu (:data:`NOISE_MENUS`): low-dose CT from the CT physics' noise power
   spectrum for CT, magnitude MR with g-factor maps and coils for MR, detector-blurred
   Poisson-Gaussian noise for radiographs, plus white Gaussian, Poisson-Gaussian and Rician
   noise for every group, and a share of *clean pairs* (input = target = the image as shipped)
   that teach the network to leave an image without added noise alone (magnitude MR pairs can get
   bias-corrected targets, :class:`BiasCorrectedMagnitudePaird`; off by default);
3. both scaled by the whole image's range: its 0.5-99.5th percentiles after a 5 x 5 box mean,
   what ``medden denoise`` measures on a whole noisy slice (the box mean keeps the noise from
   moving them), so the network sees noise and anatomy at the scale it meets at inference
   (:class:`medden.transforms.ScaleByNoisyRanged` with a ready range);
4. the same random ``patch_size`` crop of both, random flips and 90-degree turns.

Items are dicts with ``Keys.INPUT`` and ``Keys.TARGET``, ``(1, patch, patch)`` float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from monai.data import Dataset
from monai.transforms import Compose, DeleteItemsd, OneOf, RandFlipd, RandRotate90d, RandSpatialCropd
from torch.utils.data import ConcatDataset

from medden.core.intensity import intensity_range
from medden.core.keys import Keys
from medden.data.corpus import CT_HU_OFFSET, CT_HU_SCALE
from medden.data.modalities import ROBUST_PERCENTILES, ModalityImage
from medden.transforms import (
    NoisyPaird,
    NoisyStackPaird,
    RandCTNoiseFromNPS,
    RandDetectorBlurNoise,
    RandGaussianSigmaNoise,
    RandMagnitudeMRNoise,
    RandPoissonGaussianNoise,
    RandPseudoStackd,
    RandRicianSigmaNoise,
    RandVolumeStackd,
    ScaleByNoisyRanged,
    magnitude_bias_corrected,
)

__all__ = [
    "BiasCorrectedMagnitudePaird", "GROUP_PATCHES", "IMAGE_RANGE_KEY", "MEDICAL_GROUP_PATCHES", "MIN_RANGE",
    "NOISE_LEVELS", "NOISE_MENUS", "PAIR_SCALINGS", "STACK_GROUP_PATCHES", "WHITE_NOISE_MENUS",
    "general_training_dataset", "make_noise",
    "menus_without", "validation_items",
]

#: level ranges of each noise, in the corpus image's units (CT: incident photons per detector bin)
NOISE_LEVELS = {
    "gaussian": (0.0, 50 / 255),
    "poisson_gaussian": (10.0, 300.0),
    "read_sigma": (0.0, 0.01),
    "rician": (0.0, 0.1),
    "ct": (5e3, 2e5),
    "mr": (0.0, 0.08),
    "mr_coils": 8,
    "mr_g_max": (1.0, 2.5),
    "detector": (10.0, 300.0),
    "clean": 0.0,
}
#: noise menu of each image group: noise name -> relative weight
NOISE_MENUS = {
    "CT": {"ct": 0.45, "gaussian": 0.2, "poisson_gaussian": 0.1, "detector": 0.1, "clean": 0.15},
    "MR": {"mr": 0.2, "mr_multicoil": 0.15, "rician": 0.15, "gaussian": 0.2, "poisson_gaussian": 0.1,
           "detector": 0.05, "clean": 0.15},
    "radiograph": {"detector": 0.35, "poisson_gaussian": 0.2, "gaussian": 0.2, "rician": 0.05, "clean": 0.2},
    "other": {"gaussian": 0.35, "poisson_gaussian": 0.2, "detector": 0.15, "rician": 0.1, "clean": 0.2},
}
#: the ablation's "white noise only" menus: version 1's noises, no scanner physics, no clean pairs
WHITE_NOISE_MENUS = {menu: {"gaussian": 1 / 3, "poisson_gaussian": 1 / 3, "rician": 1 / 3} for menu in NOISE_MENUS}


def menus_without(noises) -> dict[str, dict[str, float]]:
    """:data:`NOISE_MENUS` without the named ``noises`` (e.g. the ablation's "no clean pairs")."""
    return {menu: {name: weight for name, weight in items.items() if name not in noises}
            for menu, items in NOISE_MENUS.items()}


_MENU_OF_GROUP = {"CT": "CT", "MR": "MR", "brain MR": "MR", "brain MR volume": "MR", "radiograph": "radiograph",
                  "other medical": "radiograph"}
#: how training pairs may be scaled (see :func:`general_training_dataset`)
PAIR_SCALINGS = ("image", "noisy_region", "clean_region")
#: the data key of each item's whole-image intensity range
IMAGE_RANGE_KEY = "image_range"
#: the least intensity range a pair is scaled by, in corpus units (a tenth of a [0, 1] image; 410 HU):
#: a region of nearly uniform air or background is not blown up to its noise (see ScaleByNoisyRange)
MIN_RANGE = 0.1
#: training patches drawn per epoch from each image group
GROUP_PATCHES = {"brain MR": 160, "MR": 160, "CT": 320, "radiograph": 160, "other medical": 80, "test pattern": 40,
                 "photograph": 160, "histology": 40}

#: training patches per epoch of the volumetric (2.5D) model: :data:`GROUP_PATCHES` and the real MNI volume
STACK_GROUP_PATCHES = {**GROUP_PATCHES, "brain MR": 80, "brain MR volume": 480}

#: :data:`GROUP_PATCHES` without the photographs and test patterns (the ablation's "medical images only")
MEDICAL_GROUP_PATCHES = {group: count for group, count in GROUP_PATCHES.items()
                         if group not in ("photograph", "test pattern")}


def make_noise(name: str, levels: Mapping[str, object] = NOISE_LEVELS):
    """One corruption of the menus by name (see :data:`NOISE_LEVELS` for the levels' units)."""
    if name == "gaussian":
        return RandGaussianSigmaNoise(levels["gaussian"])
    if name == "clean":
        return RandGaussianSigmaNoise(levels["clean"])
    if name == "poisson_gaussian":
        return RandPoissonGaussianNoise(levels["poisson_gaussian"], levels["read_sigma"])
    if name == "rician":
        return RandRicianSigmaNoise(levels["rician"])
    if name == "ct":
        return RandCTNoiseFromNPS(levels["ct"], hu_scale=CT_HU_SCALE, hu_offset=CT_HU_OFFSET)
    if name in ("mr", "mr_multicoil"):
        coils = levels["mr_coils"] if name == "mr_multicoil" else 1
        return RandMagnitudeMRNoise(levels["mr"], coils=coils, g_max_range=levels["mr_g_max"])
    if name == "detector":
        return RandDetectorBlurNoise(levels["detector"], read_sigma_range=levels["read_sigma"])
    raise ValueError(f"unknown noise {name!r}; choose from {sorted(NOISE_LEVELS)} (except read_sigma, mr_coils, "
                     "mr_g_max) or mr_multicoil.")


class BiasCorrectedMagnitudePaird(NoisyPaird):
    """A Noise2Noise pair of magnitude MR noise whose target has its noise floor's bias removed.

    A network trained on Rician (or noncentral chi) targets learns their mean, which sits
    ``sigma sqrt(pi / 2)`` above zero in air and lifts every dark region. The target here is
    :func:`~medden.transforms.magnitude_bias_corrected` with the target draw's own sigma
    (``RandRicianSigmaNoise``: its level; :class:`~medden.transforms.RandMagnitudeMRNoise`: its
    g-factor sigma map and coil count). In air its mean falls from ``1.25 sigma`` to about
    ``0.46 sigma`` (one coil); where the signal is a few sigma or more it is unchanged.
    Clean-target (``"n2c"``) pairs are left as they are.
    """

    def __call__(self, data):
        d = super().__call__(data)
        corruption = self.pair.corruption
        if self.pair.mode != "n2n" or corruption.level is None:  # not applied
            return d
        if isinstance(corruption, RandMagnitudeMRNoise):
            sigma, coils = corruption.last_sigma_map, corruption.coils
        else:
            sigma, coils = corruption.level, 1
        d[Keys.TARGET] = magnitude_bias_corrected(d[Keys.TARGET], sigma, coils)
        return d


#: noises whose pairs get bias-corrected targets, and the groups where they do (with ``bias_corrected_magnitude``)
_MAGNITUDE_NOISES = ("mr", "mr_multicoil", "rician")
_MAGNITUDE_GROUPS = ("MR", "brain MR")


def _group_transform(group: str, mode: str, patch_size: int, region_size: int, levels, menus,
                     pair_scaling: str, bias_corrected_magnitude: bool, neighbours: int = 0,
                     volumes: bool = False) -> Compose:
    menu = menus[_MENU_OF_GROUP.get(group, "other")]
    corrected = bias_corrected_magnitude and group in _MAGNITUDE_GROUPS
    if neighbours:
        pairs = [NoisyStackPaird(keys="clean", corruption=make_noise(name, levels), mode=mode) for name in menu]
    else:
        pairs = [(BiasCorrectedMagnitudePaird if corrected and name in _MAGNITUDE_NOISES else NoisyPaird)(
            keys="clean", corruption=make_noise(name, levels), mode=mode) for name in menu]
    region_crop = RandSpatialCropd(keys="clean", roi_size=(region_size, region_size), random_size=False)
    if volumes:  # a real volume: a stack around a random slice, then the region
        stacking = [RandVolumeStackd(keys="clean", neighbours=neighbours), region_crop]
    elif neighbours:  # a 2D image: the region, then a deformed stack of it
        stacking = [region_crop, RandPseudoStackd(keys="clean", neighbours=neighbours)]
    else:
        stacking = [region_crop]
    pair_keys = [Keys.INPUT, Keys.TARGET]
    if pair_scaling == "image":
        scaling = ScaleByNoisyRanged(keys=pair_keys, range_key=IMAGE_RANGE_KEY)
    elif pair_scaling == "noisy_region":
        scaling = ScaleByNoisyRanged(keys=pair_keys, reference_key=Keys.INPUT, min_range=MIN_RANGE)
    else:
        scaling = ScaleByNoisyRanged(keys=[*pair_keys, "clean"], reference_key="clean", smoothing=0,
                                     min_range=MIN_RANGE)
    return Compose([
        *stacking,
        OneOf(pairs, weights=list(menu.values())),
        scaling,
        DeleteItemsd(keys=["clean", IMAGE_RANGE_KEY]),
        RandSpatialCropd(keys=pair_keys, roi_size=(patch_size, patch_size), random_size=False),
        RandFlipd(keys=pair_keys, prob=0.5, spatial_axis=0),
        RandRotate90d(keys=pair_keys, prob=0.5),
    ])


def validation_items(images: Sequence[ModalityImage], patches: Mapping[str, int], seed: int = 0,
                     patch_size: int = 64, region_size: int = 96, levels: Mapping[str, object] = NOISE_LEVELS,
                     menus: Mapping[str, Mapping[str, float]] = NOISE_MENUS, neighbours: int = 0,
                     volumes: Sequence[ModalityImage] = ()) -> list[dict]:
    """A fixed validation set drawn once: items as :func:`general_training_dataset` makes them in
    ``"n2c"`` mode (the noisy input and the image it came from, scaled alike),
    with ``Keys.CLEAN`` holding the clean target, so an evaluator scores denoising of the same
    noises, levels and scaling the model trains on. Groups without an image as large as
    ``patch_size`` are left out, and so are clean pairs (nothing to denoise, an infinite PSNR).
    """
    noisy_menus = {menu: {name: w for name, w in items.items() if name != "clean"} for menu, items in menus.items()}
    dataset = general_training_dataset(images, patches, mode="n2c", patch_size=patch_size, region_size=region_size,
                                       levels=levels, menus=noisy_menus, seed=seed, neighbours=neighbours,
                                       volumes=volumes)
    return [{Keys.INPUT: item[Keys.INPUT], Keys.CLEAN: item[Keys.TARGET]} for item in dataset]


def general_training_dataset(images: Sequence[ModalityImage], patches: Mapping[str, int] = GROUP_PATCHES,
                             mode: str = "n2n", patch_size: int = 96, region_size: int = 160,
                             levels: Mapping[str, object] = NOISE_LEVELS,
                             menus: Mapping[str, Mapping[str, float]] = NOISE_MENUS,
                             pair_scaling: str = "image", bias_corrected_magnitude: bool = False,
                             seed: int | None = None, neighbours: int = 0,
                             volumes: Sequence[ModalityImage] = ()) -> ConcatDataset:
    """One epoch of training items: ``patches[group]`` items from each group's images, cycled.

    Args:
        images: corpus images (``modality`` is the group); images with a side below
            ``patch_size`` are skipped.
        patches: items per epoch per group; a group missing here is not trained on.
        mode: ``"n2n"`` (two noisy realisations) or ``"n2c"`` (noisy input, the image as
            target: the clean-target upper bound).
        patch_size: side of the training patches, pixels.
        region_size: side of the region the noise and the intensity range are computed on.
        levels, menus: see :data:`NOISE_LEVELS` and :data:`NOISE_MENUS`.
        pair_scaling: the range each pair is scaled by (:data:`PAIR_SCALINGS`): ``"image"``, the
            whole image's 0.5-99.5th percentiles after a 5 x 5 box mean, which is what
            ``medden denoise`` measures on a whole noisy slice (the box mean keeps noise from
            moving them); ``"noisy_region"``, the noisy input crop's own range (never below
            :data:`MIN_RANGE`); ``"clean_region"``, the crop's range before noise.
        bias_corrected_magnitude: give the magnitude MR and Rician pairs of the MR groups
            :class:`BiasCorrectedMagnitudePaird` targets. Off in the shipped model: one network
            cannot tell Rician from Gaussian noise in a patch, and it learnt to darken images
            (``docs/results/ablation.md``: -0.14 dB on scanner-like and -0.25 dB on white noise).
        seed: seeds every group's transforms (group ``k`` with ``seed + k``); None leaves them to MONAI.
        neighbours: 0 for the 2D model; ``n`` > 0 for the volumetric (2.5D) model, whose inputs
            are ``(2n + 1, patch, patch)`` stacks (:mod:`medden.transforms.stacks`): cut from
            ``volumes`` at slice steps 1-3, or made from a 2D image by smooth deformations, every
            slice with its own noise at one level; the target stays the centre slice ``(1, patch, patch)``.
        volumes: real volumes for the 2.5D model, ``(1, H, W, D)`` images; their ``modality``
            is their group (e.g. ``"brain MR volume"``).

    Raises:
        ValueError: no image of any group in ``patches`` is large enough.
    """
    by_group: dict[str, list] = {}
    for item in [*images, *(volumes if neighbours else ())]:
        if min(item.image.shape[1:3]) >= patch_size and item.modality in patches:
            by_group.setdefault(item.modality, []).append(item.image)
    if pair_scaling not in PAIR_SCALINGS:
        raise ValueError(f"pair_scaling must be one of {PAIR_SCALINGS}, got {pair_scaling!r}.")
    if not by_group:
        raise ValueError(f"no image of the groups {sorted(patches)} has both sides >= patch_size={patch_size}.")
    parts = []
    for k, (group, group_images) in enumerate(by_group.items()):
        ranges = [intensity_range(image, ROBUST_PERCENTILES, 5) for image in group_images]
        data = [{"clean": group_images[i % len(group_images)], IMAGE_RANGE_KEY: ranges[i % len(group_images)]}
                for i in range(patches[group])]
        transform = _group_transform(group, mode, patch_size, region_size, levels, menus, pair_scaling,
                                     bias_corrected_magnitude, neighbours, group_images[0].ndim == 4)
        if seed is not None:
            transform.set_random_state(seed + k)
        parts.append(Dataset(data, transform))
    return ConcatDataset(parts)
