"""Slice extraction, slab/subject splits, the IXI T1 folder reader and corrupted-image datasets."""

import nibabel as nib
import numpy as np
import pytest

from medden.data.datasets import CorruptedImageDataset
from medden.data.slices import IXIT1Folder, axial_slices, scale_to_unit, slab_split, split_subjects
from medden.core.keys import Keys
from medden.transforms import RandBernoulliNoise, RandGaussianSigmaNoise


def test_scale_to_unit_maps_percentiles_and_rejects_constant_volumes():
    vol = np.linspace(-100, 300, 1000).reshape(10, 10, 10)
    scaled = scale_to_unit(vol)
    assert scaled.dtype == np.float32 and scaled.min() == 0 and scaled.max() == 1
    with pytest.raises(ValueError, match="constant"):
        scale_to_unit(np.ones((4, 4, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        scale_to_unit(np.full((4, 4, 4), np.nan))


def test_axial_slices_drop_empty_slices_and_keep_order():
    vol = np.zeros((8, 6, 5), np.float32)
    vol[..., 1] = 0.5
    vol[..., 3] = 0.9
    slices = axial_slices(vol)
    assert len(slices) == 2 and slices[0].shape == (1, 8, 6)
    assert slices[0].max() == pytest.approx(0.5) and slices[1].max() == pytest.approx(0.9)


@pytest.mark.parametrize("n", [20, 133, 189])
def test_slab_split_is_disjoint_with_gaps(n):
    parts = slab_split(n, gap=2)
    train, val, test = (set(parts[k]) for k in ("train", "val", "test"))
    assert not (train & val or val & test or train & test)
    assert min(val) - max(train) == 3 and min(test) - max(val) == 3
    assert max(test) == n - 1


def test_slab_split_rejects_too_few_slices():
    with pytest.raises(ValueError, match="cannot split 6 slices"):
        slab_split(6, gap=2)


def _write_ixi(folder, subject, shape=(12, 10, 8), value=1.0):
    data = np.zeros(shape, np.float32)
    data[2:-2, 2:-2, :] = value * (1 + np.arange(shape[2]))
    # IXI T1 volumes are stored sagittally: the first axis runs left-right
    affine = np.array([[0, 0, -1.2, 90], [-0.94, 0, 0, 120], [0, 0.94, 0, -100], [0, 0, 0, 1]], float)
    path = folder / f"{subject}-Guys-0828-T1.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_ixi_folder_splits_by_subject_and_reads_axial_slices(tmp_path):
    for i in range(2, 12):
        _write_ixi(tmp_path, f"IXI{i:03d}")
    (tmp_path / "IXI099-Guys-0001-T2.nii.gz").write_bytes(b"not a T1")  # other contrasts are ignored
    (tmp_path / "notes.txt").write_text("ignored")
    folder = IXIT1Folder(tmp_path)
    files = folder.files()
    assert len(files) == 10 and "IXI099" not in files
    splits = split_subjects(list(files))
    assert set(splits["train"]).isdisjoint(splits["val"]) and set(splits["val"]).isdisjoint(splits["test"])
    assert len(splits["train"]) == 8
    slices = folder.slices("val")
    canonical = nib.as_closest_canonical(nib.load(files[splits["val"][0]]))
    assert slices[0].shape == (1, *canonical.shape[:2])  # axial = last RAS axis
    assert 0 <= min(s.min() for s in slices) and max(s.max() for s in slices) <= 1


def test_ixi_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no IXI T1 files"):
        IXIT1Folder(tmp_path).files()
    with pytest.raises(ValueError, match="is not a folder"):
        IXIT1Folder(tmp_path / "missing").files()
    _write_ixi(tmp_path, "IXI002")
    with pytest.raises(ValueError, match="split must be one of"):
        IXIT1Folder(tmp_path).slices("training")


def _clean_images(n=4):
    rng = np.random.default_rng(0)
    return [rng.uniform(0.2, 1, (1, 16, 16)).astype(np.float32) for _ in range(n)]


def test_recorruption_dataset_draws_one_fixed_recorruption_per_image():
    ds = CorruptedImageDataset(_clean_images(), noise=RandBernoulliNoise((0.5, 0.9)),
                               recorruption=RandBernoulliNoise((0.6, 0.9)), seed=3)
    first, again = ds[1], ds[1]
    for key in (Keys.INPUT, Keys.TARGET, Keys.TARGET_MASK, Keys.CLEAN):
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(ds[0][Keys.INPUT], ds[1][Keys.INPUT])
    np.testing.assert_array_equal(first[Keys.TARGET_MASK], (first[Keys.TARGET] != 0).astype(np.float32))
    assert np.all((first[Keys.INPUT] != 0) <= (first[Keys.TARGET] != 0))


def test_fresh_recorruption_changes_y_prime_but_not_y():
    ds = CorruptedImageDataset(_clean_images(), noise=RandGaussianSigmaNoise(0.1),
                               recorruption=RandGaussianSigmaNoise(0.05), fixed_recorruption=False)
    a, b = ds[0], ds[0]
    np.testing.assert_array_equal(a[Keys.TARGET], b[Keys.TARGET])
    assert not np.array_equal(a[Keys.INPUT], b[Keys.INPUT])


def test_validation_and_supervised_items_pair_noisy_with_clean():
    ds = CorruptedImageDataset(_clean_images(), noise=RandBernoulliNoise(0.5))
    item = ds[0]
    np.testing.assert_array_equal(item[Keys.TARGET], item[Keys.CLEAN])
    assert Keys.TARGET_MASK not in item and not np.array_equal(item[Keys.INPUT], item[Keys.CLEAN])


def test_dataset_rejects_empty_or_underspecified_input():
    with pytest.raises(ValueError, match="images is empty"):
        CorruptedImageDataset([], noise=RandBernoulliNoise(0.5))
    with pytest.raises(ValueError, match="give noise"):
        CorruptedImageDataset(_clean_images())
