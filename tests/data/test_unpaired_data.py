"""Disjoint clean / noisy sets for unpaired denoising (medden.data.unpaired)."""

import nibabel as nib
import numpy as np
import pytest

from medden.data.slices import mni_slices
from medden.data.unpaired import alternating_blocks, tile_patches, unpaired_slices


def test_alternating_blocks_are_disjoint_and_never_adjacent():
    first, second = alternating_blocks(100, block=8, gap=2)
    assert not set(first) & set(second)
    assert min(abs(a - b) for a in first for b in second) == 3  # the gap of 2 lies between
    assert first[:8] == list(range(8)) and second[:8] == list(range(10, 18))
    assert len(first) + len(second) == 80  # ten blocks of 8, a step of 10
    with pytest.raises(ValueError, match="no second block"):
        alternating_blocks(5, block=8)


def test_default_clean_and_noisy_sets_are_different_slices_of_the_training_slab():
    clean, noisy = unpaired_slices("clean"), unpaired_slices("noisy")
    train = mni_slices("train")
    assert len(clean) >= 30 and len(noisy) >= 30
    index = {slice_.tobytes(): i for i, slice_ in enumerate(train)}
    clean_idx = [index[s.tobytes()] for s in clean]  # every image comes from the training slab ...
    noisy_idx = [index[s.tobytes()] for s in noisy]
    assert not set(clean_idx) & set(noisy_idx)  # ... and none is in both sets, nor next to one
    assert min(abs(a - b) for a in clean_idx for b in noisy_idx) > 1
    # both sets span the slab's anatomy (interleaved, not one half each)
    assert min(clean_idx) < min(noisy_idx) < max(clean_idx) < max(noisy_idx)
    test = unpaired_slices("test")
    assert not {s.tobytes() for s in test} & {s.tobytes() for s in clean + noisy}


def _write_volumes(folder, count, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        nib.save(nib.Nifti1Image(rng.random((16, 16, 4)).astype(np.float32) + 0.1, np.eye(4)),
                 folder / f"subject{i}.nii.gz")


def test_a_dataset_folder_gives_clean_and_noisy_subjects(tmp_path):
    _write_volumes(tmp_path / "clean", 3, 0)
    _write_volumes(tmp_path / "noisy", 3, 1)
    clean, noisy = unpaired_slices("clean", tmp_path), unpaired_slices("noisy", tmp_path)
    val = unpaired_slices("val", tmp_path)
    assert clean and noisy and val
    assert clean[0].shape == (1, 16, 16) and clean[0].dtype == np.float32
    assert not {s.tobytes() for s in clean} & {s.tobytes() for s in noisy + val}


def test_a_dataset_folder_without_the_sub_folders_is_refused(tmp_path):
    _write_volumes(tmp_path / "clean", 3, 0)
    with pytest.raises(ValueError, match="needs a noisy/ folder"):
        unpaired_slices("noisy", tmp_path)
    with pytest.raises(ValueError, match="role must be one of"):
        unpaired_slices("train")


def test_tile_patches_cover_the_image_without_overlap():
    image = np.arange(2 * 5 * 9, dtype=np.float32).reshape(2, 5, 9)
    tiles = tile_patches([image], (2, 4))
    assert len(tiles) == 4 and all(t.shape == (2, 2, 4) for t in tiles)
    assert np.array_equal(tiles[1], image[:, 0:2, 4:8]) and np.array_equal(tiles[2], image[:, 2:4, 0:4])
    with pytest.raises(ValueError, match="lower the patch size"):
        tile_patches([image], (8, 8))
