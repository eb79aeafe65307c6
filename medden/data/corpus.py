"""The training corpus of the default model, version 2: every installed image that is not held out.

Version 1 (:func:`medden.data.modalities.general_images`) learnt from seven images and a
brain template. Version 2 takes every real grey image the installed packages ship, and
scikit-image's grey photographs for texture, except the held-out test images
(:data:`HELD_OUT`), which no shipped model trains on:

============= ======================================================================
group         images (pydicom-data / pydicom / scikit-image / nilearn)
============= ======================================================================
brain MR      MNI152 T1 train slab: every axial slice, and every 4th coronal and sagittal
              slice cut to the slab's axial extent
MR            shoulder ``MR2_UNCR`` (full and half size)
CT            ``bad_sequence`` (neck), ``explicit_VR-UN`` (abdomen), ``eCT_Supplemental``
              (head, both frames), ``J2K_pixelrep_mismatch`` (skull base), in HU
radiograph    extremity ``RG3_UNCR`` (1/2 and 1/4 size)
other medical ultrasound ``JPGLosslessP14SV1_1s_1f_8b``, nuclear medicine ``JPEG2000_UNC``
test pattern  ``image_dfl`` (squares), ``mlut_18`` (SMPTE line pairs)
photograph    camera, coins, moon, text, page, brick, grass, gravel, clock, cell, and grey
              astronaut, chelsea, coffee, rocket, hubble_deep_field, retina
histology     the left half of the IHC image, grey
============= ======================================================================

Units: CT images stay in HU, stored as ``(HU + 1024) / 4096`` (HU below -1024, the padding outside
the field of view, read as air) (:data:`CT_HU_OFFSET`,
:data:`CT_HU_SCALE`) so that the CT physics noise (which needs attenuation) can be simulated
and the generic noises still see values near [0, 1]; every other image is scaled by its own
0.5-99.5th percentiles to [0, 1]. Training pairs are rescaled afterwards by the whole image's
range as ``medden denoise`` measures it (:mod:`medden.engines.general_training`).

The last 20 % of the columns of every 2D image (and the MNI validation slab) validate; the
first 80 % train (:func:`~medden.data.modalities.column_split`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medden.data.modalities import ROBUST_PERCENTILES, ModalityImage, column_split, downsample, installed_test_file
from medden.data.slices import mni_slices, scale_to_unit

__all__ = ["CT_HU_OFFSET", "CT_HU_SCALE", "HELD_OUT", "CorpusSource", "CORPUS_SOURCES", "corpus_images",
           "corpus_volumes"]

#: HU of a stored CT value 0, and HU per stored unit: ``HU = value * CT_HU_SCALE + CT_HU_OFFSET``
CT_HU_OFFSET, CT_HU_SCALE = -1024.0, 4096.0
#: installed images no shipped model trains on: the benchmarks' and the harm checks' test images
HELD_OUT = (
    "MNI152 T1 test slab", "MR-SIEMENS-DICOM-WithOverlays.dcm (abdomen MR) and examples_overlay.dcm (the same image)",
    "693_*.dcm (head CT)", "RG1_*.dcm (chest CR)", "CT_small.dcm", "MR_small*.dcm", "emri_small*.dcm",
    "the right half of scikit-image's immunohistochemistry image",
)


@dataclass(frozen=True)
class CorpusSource:
    """One installed image: a pydicom test file name, or ``skimage:<name>`` for scikit-image data."""

    group: str
    name: str
    downsample: int = 1


CORPUS_SOURCES = (
    CorpusSource("MR", "MR2_UNCR.dcm"),
    CorpusSource("MR", "MR2_UNCR.dcm", downsample=2),
    CorpusSource("CT", "bad_sequence.dcm"),
    CorpusSource("CT", "explicit_VR-UN.dcm"),
    CorpusSource("CT", "eCT_Supplemental.dcm"),
    CorpusSource("CT", "J2K_pixelrep_mismatch.dcm"),
    CorpusSource("radiograph", "RG3_UNCR.dcm", downsample=2),
    CorpusSource("radiograph", "RG3_UNCR.dcm", downsample=4),
    CorpusSource("other medical", "JPGLosslessP14SV1_1s_1f_8b.dcm"),
    CorpusSource("other medical", "JPEG2000_UNC.dcm"),
    CorpusSource("test pattern", "image_dfl.dcm"),
    CorpusSource("test pattern", "mlut_18.dcm"),
    *(CorpusSource("photograph", f"skimage:{name}") for name in (
        "camera", "coins", "moon", "text", "page", "brick", "grass", "gravel", "clock", "cell", "astronaut",
        "chelsea", "coffee", "rocket", "hubble_deep_field", "retina")),
    CorpusSource("histology", "skimage:immunohistochemistry"),
)
_MIN_SIDE = 96  # training crops are at most this small; smaller images are not used


def _skimage_grey(name: str) -> np.ndarray:
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)(), np.float32)
    grey = image[..., :3].mean(axis=-1) if image.ndim == 3 else image
    if name == "immunohistochemistry":
        grey = grey[:, : grey.shape[1] // 2]  # the right half is held out
    return grey


def _dicom_planes(name: str) -> list[np.ndarray]:
    """Every frame of one pydicom test file, ``(H, W)`` each, in modality units (HU for CT)."""
    from medden.io.dicom_series import read_dicom_image

    volume = read_dicom_image(installed_test_file(name)).numpy().mean(axis=0)  # channels (RGB) to grey
    return [volume] if volume.ndim == 2 else [volume[..., k] for k in range(volume.shape[-1])]


def _stored(group: str, plane: np.ndarray) -> np.ndarray:
    """``(1, H, W)`` float32 in the corpus units (see the module docstring)."""
    if group == "CT":
        # padding outside the scanner's field of view (-2000, -3024 HU) is air for the physics
        return ((np.maximum(plane[None], CT_HU_OFFSET) - CT_HU_OFFSET) / CT_HU_SCALE).astype(np.float32)
    return scale_to_unit(plane[None].astype(np.float32), ROBUST_PERCENTILES)


def _brain_slices(split: str) -> list[np.ndarray]:
    """Axial slices of the MNI ``split`` slab, and for training every 4th coronal and sagittal
    slice of the same slab (the slab's axial extent only, so no test slice leaks in)."""
    axial = mni_slices(split)
    if split != "train":
        return axial
    slab = np.stack([s[0] for s in axial], axis=-1)  # (197, 233, slices)
    coronal = [slab[:, j, :][None] for j in range(0, slab.shape[1], 4)]
    sagittal = [slab[i, :, :][None] for i in range(0, slab.shape[0], 4)]
    return axial + [s for s in coronal + sagittal if s.max() > 0.05 and min(s.shape[1:]) >= _MIN_SIDE // 2]


def corpus_images(split: str) -> list[ModalityImage]:
    """Training (``"train"``) or validation (``"val"``) images of the version 2 corpus.

    Returns:
        :class:`~medden.data.modalities.ModalityImage` list (``modality`` is the group of the
        table above); images are ``(1, H, W)`` float32, CT in stored HU units, the others in
        [0, 1]. Training images have every side >= 96 except thin brain slices (>= 48).

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"val"``.
        ModuleNotFoundError: the ``samples`` extra (pydicom-data, nilearn) is not installed.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}.")
    images = [ModalityImage("brain MR", f"mni152 {split} slice {i}", s) for i, s in enumerate(_brain_slices(split))]
    for source in CORPUS_SOURCES:
        if source.name.startswith("skimage:"):
            planes = [_skimage_grey(source.name.split(":", 1)[1])]
        else:
            planes = _dicom_planes(source.name)
        for k, plane in enumerate(planes):
            stored = column_split(_stored(source.group, downsample(plane.astype(np.float32), source.downsample)), split)
            if split == "train" and min(stored.shape[1:]) < _MIN_SIDE:
                continue
            images.append(ModalityImage(source.group, f"{source.name} frame {k} (1/{source.downsample} size)",
                                        np.ascontiguousarray(stored)))
    return images


def corpus_volumes(split: str) -> list[ModalityImage]:
    """Real volumes of the volumetric (2.5D) model's training (``"train"``) or validation (``"val"``) set.

    The installed samples hold one real volume, the MNI152 T1 template, 1 mm isotropic: its
    train (93 slices) or val (20 slices) axial slab, the same voxels as :func:`corpus_images`'
    brain slices of that split (never the test slab). No real CT volume is installed, so CT is
    learnt from 2D slices made into deformed stacks (:class:`~medden.transforms.RandPseudoStack`).

    Returns:
        :class:`~medden.data.modalities.ModalityImage` list, modality ``"brain MR volume"``,
        images ``(1, 197, 233, D)`` float32 in [0, 1].
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}.")
    from medden.data.slices import mni_slab

    volume, _ = mni_slab(split)
    return [ModalityImage("brain MR volume", f"mni152 {split} slab", np.ascontiguousarray(volume, np.float32))]
