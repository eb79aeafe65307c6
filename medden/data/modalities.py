"""Mixed-modality images from the installed samples, for the general-purpose denoiser.

A model that has only seen brain MR makes CT and radiographs worse (../shared/DESIGN.md), so
the general denoiser learns from every modality the installed packages ship, and is tested on
images it never saw:

========== ============================================== ===============================
modality   training images (train / val column strips)    held-out test image
========== ============================================== ===============================
brain MR   MNI152 T1 train slab (val: val slab)            MNI152 T1 test slab
MR         shoulder ``MR2_UNCR`` (1/2 size)                abdomen ``MR-SIEMENS-...``
CT         neck, abdomen, head CT (``bad_sequence``, ...)  head CT ``693_UNCR``
radiograph extremity ``RG3_UNCR`` (1/4 size)               chest ``RG1_UNCR`` (1/4 size)
histology  left half of scikit-image's IHC image (grey)    its right half
========== ============================================== ===============================

Two-dimensional training images are split by columns: the first 80 % train, the last 20 %
validate. Every image is scaled by its own robust range (0.5-99.5th percentiles to [0, 1],
clipped), the normalisation :func:`medden.inference.denoise_image` applies at inference.
Images are ``(1, H, W)`` float32 numpy arrays (axis order as in :mod:`medden`: H along a DICOM row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medden.core.validation import check_int
from medden.data.slices import mni_slices, scale_to_unit

__all__ = [
    "MODALITIES",
    "ROBUST_PERCENTILES",
    "ModalityImage",
    "BENCHMARK_MODALITIES",
    "balanced_items",
    "benchmark_images",
    "general_images",
    "general_test_images",
    "histology_rgb",
    "sample_plane",
    "installed_test_file",
]

#: intensity percentiles mapped to [0, 1] (robust to a few hot or dead pixels)
ROBUST_PERCENTILES = (0.5, 99.5)
MODALITIES = ("brain MR", "MR", "CT", "radiograph", "histology")
_VAL_FRACTION = 0.2
_TEST_WINDOW = 256


@dataclass(frozen=True)
class _Source:
    modality: str
    name: str  # a pydicom-data/pydicom test file, or "immunohistochemistry"
    downsample: int = 1
    frame: int = 0


_TRAIN_SOURCES = (
    _Source("MR", "MR2_UNCR.dcm", downsample=2),
    _Source("CT", "bad_sequence.dcm"),
    _Source("CT", "explicit_VR-UN.dcm"),
    _Source("CT", "eCT_Supplemental.dcm"),
    _Source("radiograph", "RG3_UNCR.dcm", downsample=4),
)
_TEST_SOURCES = (
    _Source("MR", "MR-SIEMENS-DICOM-WithOverlays.dcm"),
    _Source("CT", "693_UNCR.dcm"),
    _Source("radiograph", "RG1_UNCR.dcm", downsample=4),
)


@dataclass(frozen=True)
class ModalityImage:
    """One clean image: ``image`` is ``(1, H, W)`` float32 in [0, 1]."""

    modality: str
    name: str
    image: np.ndarray


def downsample(plane: np.ndarray, factor: int) -> np.ndarray:
    """Block-average ``factor`` x ``factor``; a partial block at the far edges is dropped, not
    zero-padded (a padded block would be a dark line the size of one output pixel)."""
    if factor == 1:
        return plane
    from skimage.transform import downscale_local_mean

    whole = plane[: plane.shape[0] // factor * factor, : plane.shape[1] // factor * factor]
    return downscale_local_mean(whole, (factor, factor)).astype(np.float32)


def installed_test_file(name: str) -> str:
    """The path of one installed pydicom / pydicom-data test file, never downloaded.

    Raises:
        ModuleNotFoundError: it is not installed (the ``samples`` extra brings pydicom-data).
    """
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        raise ModuleNotFoundError(f"{name} was not found; install the samples with: pip install 'medden[samples]'")
    return path


def _load_plane(source: _Source) -> np.ndarray:
    """One grey plane ``(H, W)`` in modality units (MONOCHROME1 already inverted)."""
    if source.name == "immunohistochemistry":
        from medden.data.samples import load_sample

        plane = load_sample("immunohistochemistry").numpy().mean(axis=0)  # RGB -> grey
    else:
        from medden.io.dicom_series import read_dicom_image

        volume = read_dicom_image(installed_test_file(source.name)).numpy()
        plane = volume.mean(axis=0)
        plane = plane[..., source.frame] if plane.ndim == 3 else plane
    return downsample(np.asarray(plane, np.float32), source.downsample)


def _unit(plane: np.ndarray) -> np.ndarray:
    return scale_to_unit(plane[None], ROBUST_PERCENTILES)


def column_split(image: np.ndarray, split: str) -> np.ndarray:
    cut = int(round(image.shape[1] * (1 - _VAL_FRACTION)))
    return image[:, :cut] if split == "train" else image[:, cut:]


def sample_plane(name: str, downsample: int = 1) -> np.ndarray:
    """One installed sample image (a pydicom-data file name, or ``"immunohistochemistry"``) as a
    ``(1, H, W)`` float32 plane in [0, 1], scaled by its 0.5-99.5th percentiles, downsampled by
    block averaging."""
    return _unit(_load_plane(_Source("", name, downsample)))


def _histology() -> np.ndarray:
    return _unit(_load_plane(_Source("histology", "immunohistochemistry")))


def histology_rgb() -> np.ndarray:
    """scikit-image's IHC image in RGB, ``(3, H, W)`` float32 in [0, 1], scaled by the robust
    range (:data:`ROBUST_PERCENTILES`) of all three channels together."""
    from medden.data.samples import load_sample

    return scale_to_unit(load_sample("immunohistochemistry").numpy(), ROBUST_PERCENTILES)


def general_images(split: str) -> list[ModalityImage]:
    """Clean training (``"train"``) or validation (``"val"``) images of every modality.

    Returns:
        :class:`ModalityImage` list; brain MR slices are ``(1, 197, 233)``, the others are
        column strips of whole images (sizes vary, every side at least 96).

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"val"``.
        ModuleNotFoundError: the ``samples`` extra is not installed.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val' (the test images are general_test_images()), got {split!r}.")
    images = [ModalityImage("brain MR", f"mni152 {split} slice {i}", s) for i, s in enumerate(mni_slices(split))]
    for source in _TRAIN_SOURCES:
        images.append(ModalityImage(source.modality, source.name, column_split(_unit(_load_plane(source)), split)))
    histology = _histology()
    left_half = histology[:, : histology.shape[1] // 2]
    images.append(ModalityImage("histology", "immunohistochemistry left half", column_split(left_half, split)))
    return images


def centre_window(image: np.ndarray, size: int = _TEST_WINDOW) -> np.ndarray:
    x0 = max((image.shape[1] - size) // 2, 0)
    y0 = max((image.shape[2] - size) // 2, 0)
    return np.ascontiguousarray(image[:, x0 : x0 + size, y0 : y0 + size])


def general_test_images(brain_slices: int = 3) -> list[ModalityImage]:
    """Held-out clean test images, one group per modality, none seen in training by the
    general-purpose models (``general_denoiser``, ``n2n_image``, ``supervised_baseline``).

    The radiograph window overlaps the region bundle ``recorruption_jsrt_poisson`` trains on;
    :func:`benchmark_images` tests chest X-ray on that bundle's test region instead.

    Brain MR: ``brain_slices`` evenly spaced slices of the MNI test slab, whole
    (``(1, 197, 233)``); the others: the centre 256 x 256 window of a held-out image.
    """
    slab = mni_slices("test")
    picks = np.linspace(0, len(slab) - 1, brain_slices + 2).round().astype(int)[1:-1]
    images = [ModalityImage("brain MR", f"mni152 test slice {int(i)}", slab[int(i)]) for i in picks]
    for source in _TEST_SOURCES:
        images.append(ModalityImage(source.modality, source.name, centre_window(_unit(_load_plane(source)))))
    histology = _histology()
    right_half = histology[:, histology.shape[1] // 2 :]
    images.append(ModalityImage("histology", "immunohistochemistry right half", centre_window(right_half)))
    return images


#: the modalities of ``medden benchmark``, in table order
BENCHMARK_MODALITIES = ("brain MR", "shoulder MR", "head CT", "chest X-ray", "histology")


def benchmark_images(brain_slices: int = 3) -> list[ModalityImage]:
    """Clean test images of ``medden benchmark``: one group per :data:`BENCHMARK_MODALITIES`.

    None was trained on by any shipped bundle (by its default training data): brain MR and
    head CT as in :func:`general_test_images`; shoulder MR is the held-out column strip (the
    last 20 % of columns, used only for validation) of ``MR2_UNCR`` at its full 1024 x 1024
    resolution (the general denoiser trained on the other 80 % at half size), ``(1, 205, 256)``;
    chest X-ray is the test region of bundle ``recorruption_jsrt_poisson``
    (:func:`medden.data.jsrt.chest_regions`: the bottom right quarter of ``RG1_UNCR`` at 1/4
    size as a viewer shows it, ``(1, 230, 244)``), since that bundle trains on the top half of
    the same plane and validates on the bottom left quarter (the centre window of
    :func:`general_test_images` would be half in its training region). Histology is the centre
    256 x 256 window of the right half of scikit-image's IHC image in RGB, ``(3, 256, 256)``,
    scaled by the robust range of all three channels together (``recorruption_camelyon_gaussian`` trains on the left half;
    the window's top half lies in the region it validates on, its bottom half in its test
    region). Every image is in [0, 1].
    """
    tests = general_test_images(brain_slices)
    images = [item for item in tests if item.modality == "brain MR"]
    shoulder = column_split(_unit(_load_plane(_Source("MR", "MR2_UNCR.dcm"))), "val")
    images.append(ModalityImage("shoulder MR", "MR2_UNCR held-out columns", centre_window(shoulder)))
    images += [ModalityImage("head CT", item.name, item.image) for item in tests if item.modality == "CT"]
    from medden.data.jsrt import chest_images

    images.append(ModalityImage("chest X-ray", "RG1_UNCR.dcm bottom right quarter (the JSRT bundle's test region)",
                                chest_images("test")[0]))
    rgb = histology_rgb()
    images.append(ModalityImage("histology", "immunohistochemistry right half (RGB)",
                                centre_window(rgb[:, rgb.shape[1] // 2:])))
    return images


def balanced_items(images: list[ModalityImage], per_modality: int, key: str = "clean") -> list[dict]:
    """Data dicts ``{key: image}`` with ``per_modality`` entries for every modality present.

    The brain MR template has about a hundred slices and the other modalities a handful of
    images each; cycling every modality's images to the same count makes an epoch see each
    modality equally often (random crops then make the repeats differ).

    Raises:
        TypeError: ``per_modality`` is not an int.
        ValueError: ``per_modality`` < 1 or no images.
    """
    check_int(per_modality, "per_modality")
    if not images:
        raise ValueError("no images to balance.")
    by_modality: dict[str, list[np.ndarray]] = {}
    for item in images:
        by_modality.setdefault(item.modality, []).append(item.image)
    return [{key: group[i % len(group)]} for group in by_modality.values() for i in range(per_modality)]
