"""The default model's training corpus holds no held-out test image."""

import numpy as np
import pytest

pytest.importorskip("pydicom.data")
pytest.importorskip("nilearn")

from medden.data.corpus import CORPUS_SOURCES, CT_HU_OFFSET, CT_HU_SCALE, corpus_images  # noqa: E402

#: the held-out files of the benchmarks and harm checks (medden.data.modalities, docs/results/no_harm.md)
TEST_FILES = ("693_UNCR.dcm", "RG1_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "CT_small.dcm", "MR_small.dcm",
              "emri_small.dcm")


@pytest.fixture(scope="module")
def train():
    return corpus_images("train")


def _series(name: str) -> tuple[str, str]:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file(name, download=False), stop_before_pixels=True)
    return str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", ""))


def test_no_corpus_file_comes_from_a_held_out_series():
    # examples_overlay.dcm is the held-out abdomen MR's series under another name: names alone do not tell
    held_out = {_series(name) for name in TEST_FILES}
    for source in CORPUS_SOURCES:
        if not source.name.startswith("skimage:"):
            assert _series(source.name) not in held_out, source.name


def test_no_training_image_equals_a_held_out_image(train):
    from medden.data.modalities import general_test_images

    tests = [item.image for item in general_test_images(brain_slices=1)]
    fingerprints = {tuple(np.round(np.sort(t.ravel())[:: max(1, t.size // 64)], 4)) for t in tests}
    for item in train:
        assert tuple(np.round(np.sort(item.image.ravel())[:: max(1, item.image.size // 64)], 4)) not in fingerprints


def test_every_group_is_present_and_ct_is_kept_in_hu(train):
    groups = {item.modality for item in train}
    assert {"brain MR", "MR", "CT", "radiograph", "photograph", "histology"} <= groups
    ct = [item.image for item in train if item.modality == "CT"]
    hu = np.concatenate([c.ravel() for c in ct]) * CT_HU_SCALE + CT_HU_OFFSET
    assert hu.min() >= -1024.0 and 300 < hu.max() < 4000  # air to bone, not percentile-scaled
    assert all(min(item.image.shape[1:]) >= 48 for item in train)


def test_train_and_val_are_disjoint_column_strips():
    train, val = corpus_images("train"), corpus_images("val")
    widths = {item.name: item.image.shape for item in train if item.modality == "CT"}
    for item in val:
        if item.name in widths:
            assert item.image.shape[1] < widths[item.name][1] // 3  # the last 20 % of the same axis
    with pytest.raises(ValueError, match="split must be"):
        corpus_images("test")
