"""Real Noise2Noise pairs: discovery (folders, CSV), joint scaling, sample splits and swapping."""

import nibabel as nib
import numpy as np
import pytest
from monai.data import Dataset
from PIL import Image

from medden.data.paired import NAME_KEY, find_pairs, load_pair, paired_slices, scale_pair
from medden.data.slices import split_subjects
from medden.core.keys import Keys
from medden.transforms import RandSwapPair, RandSwapPairD, RandSwapPaird

from helpers import as_numpy, to_backend

GAIN, OFFSET = 100.0, 20.0  # raw "scanner units" of the written files


def _phantom(shape):
    """Smooth phantom in [0, 1]: a Gaussian blob; for 3-D the first and last slices are empty."""
    grids = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape[:2]), indexing="ij")
    blob = np.exp(-2 * (grids[0] ** 2 + grids[1] ** 2))
    if len(shape) == 2:
        return blob.astype(np.float32)
    profile = np.ones(shape[2])
    profile[[0, -1]] = 0.0
    return (blob[..., None] * profile).astype(np.float32)


def _noisy_pair(clean, seed, sigma, offset=OFFSET):
    """Two independent Gaussian noise realisations of ``GAIN * clean + offset``."""
    rng = np.random.default_rng(seed)
    return [(GAIN * clean + offset + rng.normal(0, sigma, clean.shape)).astype(np.float32) for _ in range(2)]


def _write(path, array):
    if path.suffix == ".npy":
        np.save(path, array)
    else:
        nib.save(nib.Nifti1Image(array, np.eye(4)), path)
    return path


def _folders(root, n=5, suffix=".nii.gz", shape=(16, 16, 6), sigma=10.0, offset=OFFSET):
    """``root/sample<i>/{rep1,rep2}<suffix>`` (made in reverse order) plus an ignored text file."""
    for i in reversed(range(n)):
        folder = root / f"sample{i:02d}"
        folder.mkdir(parents=True)
        first, second = _noisy_pair(_phantom(shape), i, sigma, offset)
        _write(folder / f"rep2{suffix}", second)
        _write(folder / f"rep1{suffix}", first)
        (folder / "notes.txt").write_text("not an image")
    return root


def _pair_files(tmp_path, first, second, suffix=".npy"):
    return {Keys.INPUT: str(_write(tmp_path / f"a{suffix}", first)),
            Keys.TARGET: str(_write(tmp_path / f"b{suffix}", second)), NAME_KEY: "s"}


# ---------------------------------------------------------------- discovery


@pytest.mark.parametrize("suffix, shape", [(".nii.gz", (16, 16, 6)), (".npy", (16, 12))])
def test_folder_layout_pairs_sorted_files_by_sample_name(tmp_path, suffix, shape):
    pairs = find_pairs(_folders(tmp_path, suffix=suffix, shape=shape))
    assert [p[NAME_KEY] for p in pairs] == [f"sample{i:02d}" for i in range(5)]
    assert all(p[Keys.INPUT].endswith("rep1" + suffix) and p[Keys.TARGET].endswith("rep2" + suffix) for p in pairs)
    first, second = load_pair(pairs[0])
    assert first.shape == second.shape == (1, *shape)
    assert first.dtype == second.dtype == np.float32


@pytest.mark.parametrize("suffix, dtype", [(".png", np.uint8), (".tif", np.float32)])
def test_folder_layout_reads_png_and_tif(tmp_path, suffix, dtype):
    folder = tmp_path / "slice01"
    folder.mkdir()
    for name, seed in (("a", 0), ("b", 1)):
        pixels = np.random.default_rng(seed).integers(0, 256, (10, 7)).astype(dtype)
        Image.fromarray(pixels).save(folder / f"{name}{suffix}")
    first, second = load_pair(find_pairs(tmp_path)[0])
    assert first.shape == second.shape == (1, 7, 10)  # MONAI's PIL reader puts width first


def test_csv_layout_with_relative_and_absolute_paths_wins_over_folders(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    clean = _phantom((8, 8))
    for i in range(2):
        for rep, image in zip("ab", _noisy_pair(clean, i, 5.0)):
            _write(data / f"s{i}_{rep}.npy", image)
    (tmp_path / "junk").mkdir()  # a folder with no images: an error if the CSV were ignored
    rows = ["input,target", "data/s1_a.npy,data/s1_b.npy", f"{data / 's0_a.npy'}, {data / 's0_b.npy'}"]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    pairs = find_pairs(tmp_path)
    assert [p[NAME_KEY] for p in pairs] == ["s0_a", "s1_a"]  # default name: the input's stem
    assert pairs[1][Keys.INPUT] == str((data / "s1_a.npy").resolve())
    assert pairs[0][Keys.TARGET] == str((data / "s0_b.npy").resolve())
    (tmp_path / "pairs.csv").write_text("name,target,input\nzeta,data/s0_b.npy,data/s0_a.npy\n")
    assert find_pairs(tmp_path) == [{NAME_KEY: "zeta", Keys.INPUT: str((data / "s0_a.npy").resolve()),
                                     Keys.TARGET: str((data / "s0_b.npy").resolve())}]


# ---------------------------------------------------------------- joint scaling


def test_load_pair_scales_both_images_with_one_reference_map(tmp_path):
    rng = np.random.default_rng(0)
    first = rng.uniform(0, 50, (6, 7, 3)).astype(np.float32)
    second = 2 * first + 5  # a different gain: separate maps would make the two look alike
    scaled = load_pair(_pair_files(tmp_path, first, second), percentiles=(1, 99))
    low, high = np.percentile((first.astype(np.float64) + second) / 2, [1, 99])
    for raw, out in zip((first, second), scaled):
        np.testing.assert_allclose(out[0], (raw - low) / (high - low), rtol=1e-5, atol=1e-6)


def test_scaling_is_invariant_to_a_known_affine_map_of_the_pair(tmp_path):
    first, second = _noisy_pair(_phantom((12, 12)), 3, 8.0)
    reference = scale_pair(first, second)
    mapped = scale_pair(3 * first - 40, 3 * second - 40)
    for ref, out in zip(reference, mapped):
        np.testing.assert_allclose(out, ref, atol=1e-5)


def test_joint_scaling_keeps_zero_mean_noise_difference_and_does_not_clip(tmp_path):
    sigma = 10.0
    pair = find_pairs(_folders(tmp_path, n=1, shape=(32, 32, 8), sigma=sigma, offset=0.0))[0]
    first, second = load_pair(pair)
    diff = (second - first).ravel()
    scale = diff.std() / (np.sqrt(2) * sigma)  # 1 / (high - low) of the joint map
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(diff.size)  # E[target - input] = 0
    assert 0.8 < scale * GAIN < 1.2  # the map spans about the phantom's range
    assert first.min() < 0 and second.min() < 0  # noise below the low percentile is kept


# ---------------------------------------------------------------- slices and splits


def test_paired_slices_split_disjointly_and_deterministically_by_sample(tmp_path):
    root = _folders(tmp_path, n=10, shape=(16, 16, 6), sigma=1.0, offset=0.0)
    splits = {name: paired_slices(root, name) for name in ("train", "val", "test")}
    assert {k: len(v) for k, v in splits.items()} == {"train": 8 * 4, "val": 4, "test": 4}  # 2 empty slices dropped
    expected = split_subjects([f"sample{i:02d}" for i in range(10)])["test"]
    assert expected == ["sample09"]
    first, second = load_pair(find_pairs(root)[9])
    for k, item in enumerate(splits["test"]):
        assert set(item) == {Keys.INPUT, Keys.TARGET} and item[Keys.INPUT].shape == (1, 16, 16)
        np.testing.assert_array_equal(item[Keys.INPUT], first[..., k + 1])
        np.testing.assert_array_equal(item[Keys.TARGET], second[..., k + 1])
    again = paired_slices(root, "test")
    assert all(np.array_equal(a[Keys.INPUT], b[Keys.INPUT]) for a, b in zip(again, splits["test"]))
    train_inputs = {item[Keys.INPUT].tobytes() for item in splits["train"]}
    assert not train_inputs & {item[Keys.INPUT].tobytes() for item in splits["test"]}


def test_paired_slices_keep_2d_images_and_feed_a_monai_dataset(tmp_path):
    root = _folders(tmp_path, n=3, suffix=".npy", shape=(16, 12))
    items = paired_slices(root, "train")
    assert len(items) == 1 and items[0][Keys.INPUT].shape == (1, 16, 12)
    sample = Dataset(items, transform=RandSwapPaird(prob=1.0))[0]
    np.testing.assert_array_equal(sample[Keys.INPUT], items[0][Keys.TARGET])


# ---------------------------------------------------------------- swapping


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_swap_pair_swaps_about_half_the_time_with_its_own_rng(backend):
    a, b = to_backend(np.zeros((1, 4, 4), np.float32), backend), to_backend(np.ones((1, 4, 4), np.float32), backend)
    global_state = np.random.get_state()[1].copy()
    swap = RandSwapPair(prob=0.5).set_random_state(0)
    outputs = [swap((a, b)) for _ in range(2000)]
    swapped = [first is b and second is a for first, second in outputs]
    assert all(swap_ or (first is a and second is b) for swap_, (first, second) in zip(swapped, outputs))
    assert abs(np.mean(swapped) - 0.5) < 0.04
    again = RandSwapPair(prob=0.5).set_random_state(0)
    assert [again((a, b))[0] is b for _ in range(2000)] == swapped  # same seed, same draws
    np.testing.assert_array_equal(np.random.get_state()[1], global_state)  # global RNG untouched
    assert as_numpy(RandSwapPair(prob=1.0)((a, b))[0]).max() == 1


def test_swap_pair_reuses_the_last_draw_without_randomize():
    swap = RandSwapPair(prob=0.5).set_random_state(1)
    for _ in range(20):
        decision = swap((0, 1))
        assert swap((0, 1), randomize=False) == decision
    assert RandSwapPair(prob=0.0)((0, 1)) == (0, 1)


def test_dict_twin_swaps_masks_with_images_and_follows_the_array_draws():
    data = {Keys.INPUT: "a", Keys.TARGET: "b", Keys.INPUT_MASK: "ma", Keys.TARGET_MASK: "mb", "other": "x"}
    out = RandSwapPaird(prob=1.0)(data)
    assert out == {Keys.INPUT: "b", Keys.TARGET: "a", Keys.INPUT_MASK: "mb", Keys.TARGET_MASK: "ma", "other": "x"}
    assert data[Keys.INPUT] == "a"  # the input dictionary is not modified
    one_mask = RandSwapPairD(prob=1.0)({Keys.INPUT: "a", Keys.TARGET: "b", Keys.INPUT_MASK: "ma"})
    assert one_mask == {Keys.INPUT: "b", Keys.TARGET: "a", Keys.TARGET_MASK: "ma"}
    twin, array = RandSwapPaird(prob=0.5).set_random_state(7), RandSwapPair(prob=0.5).set_random_state(7)
    for _ in range(200):
        d = twin(data)
        assert (d[Keys.INPUT] == "b") == (array(("a", "b"))[0] == "b")
        assert (d[Keys.INPUT] == "b") == (d[Keys.INPUT_MASK] == "mb")


def test_swap_pair_rejects_a_non_sequence():
    with pytest.raises(TypeError, match="pair must be a tuple"):
        RandSwapPair()(np.zeros((2, 4, 4)))


# ---------------------------------------------------------------- errors


def _csv(tmp_path, text, files=()):
    for name in files:
        np.save(tmp_path / name, np.ones((4, 4)))
    (tmp_path / "pairs.csv").write_text(text)
    return lambda: find_pairs(tmp_path)


def _sample_folder(tmp_path, n_images):
    _folders(tmp_path, n=2, suffix=".npy", shape=(6, 6))
    folder = tmp_path / "s1"
    folder.mkdir()
    for i in range(n_images):
        np.save(folder / f"img{i}.npy", np.ones((4, 4)))
    return lambda: find_pairs(tmp_path)


def _bad_pair(tmp_path, first, second):
    return lambda: load_pair(_pair_files(tmp_path, first, second))


ERRORS = {
    "not a folder": (lambda p: (p / "f.txt").write_text("x") and (lambda: find_pairs(p / "f.txt")),
                     "'.*f.txt' is not a folder"),
    "missing folder": (lambda p: lambda: find_pairs(p / "nope"), "'.*nope' is not a folder"),
    "nothing found": (lambda p: lambda: find_pairs(p), "no sample pairs found in"),
    "csv missing file": (lambda p: _csv(p, "input,target\na.npy,gone.npy\n", ["a.npy"]),
                         r"pairs.csv' line 2: file '.*gone.npy' is missing"),
    "csv without columns": (lambda p: _csv(p, "first,second\na.npy,b.npy\n", ["a.npy", "b.npy"]),
                            r"must have a header with columns 'input' and 'target'.*\['first', 'second'\]"),
    "csv repeated name": (lambda p: _csv(p, "input,target,name\na.npy,b.npy,x\nb.npy,a.npy,x\n", ["a.npy", "b.npy"]),
                          "line 3: sample name 'x' is used twice"),
    "csv with no rows": (lambda p: _csv(p, "input,target\n"), "no sample pairs found"),
    "folder with three images": (lambda p: _sample_folder(p, 3), r"sample folder '.*s1' holds 3 image file\(s\)"),
    "folder with one image": (lambda p: _sample_folder(p, 1), r"sample folder '.*s1' holds 1 image file\(s\)"),
    "shape mismatch": (lambda p: _bad_pair(p, np.ones((8, 8)), np.ones((8, 9))),
                       r"input '.*a.npy' has shape \(1, 8, 8\) but target '.*b.npy' has shape \(1, 8, 9\)"),
    "non-finite": (lambda p: _bad_pair(p, np.full((4, 4), np.nan), np.ones((4, 4))), "a.npy' contains 16 non-finite"),
    "constant pair": (lambda p: _bad_pair(p, np.ones((4, 4)), np.ones((4, 4))), "pair 's' is constant"),
    "wrong rank": (lambda p: _bad_pair(p, np.ones((2, 2, 2, 2)), np.ones((2, 2, 2, 2))), "must be channel-first"),
    "unknown split": (lambda p: lambda: paired_slices(_folders(p, n=3), "dev"), "split must be one of"),
    "too few samples": (lambda p: lambda: paired_slices(_folders(p, n=2), "train"), "need at least 3 subjects"),
    "swap with three keys": (lambda p: lambda: RandSwapPaird(keys=("a", "b", "c")), "exactly two images"),
    "swap of three images": (lambda p: lambda: RandSwapPair()((1, 2, 3)), "exactly two images"),
    "swap probability": (lambda p: lambda: RandSwapPair(prob=1.5), "probability in"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_name_the_problem(tmp_path, case):
    build, message = ERRORS[case]
    action = build(tmp_path)
    with pytest.raises(ValueError, match=message):
        action()
