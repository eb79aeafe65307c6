"""The test images of ``medden benchmark`` lie outside every shipped bundle's default training data."""

import numpy as np
import pytest

from medden.data import get_sample

pytestmark = pytest.mark.skipif(not all(get_sample(name).installed for name in ("RG1_UNCR", "immunohistochemistry")),
                                reason="needs the samples extra")


@pytest.fixture(scope="module")
def images():
    from medden.data.modalities import benchmark_images

    return {item.modality: item.image for item in benchmark_images(1)}


def test_chest_xray_is_the_jsrt_test_region_and_shares_no_pixel_with_its_training_region(images):
    from medden.data.jsrt import DEFAULT_CHEST, DEFAULT_DOWNSAMPLE, chest_images, chest_regions
    from medden.data.modalities import sample_plane

    chest = images["chest X-ray"]
    np.testing.assert_array_equal(chest, chest_images("test")[0])
    plane = sample_plane(DEFAULT_CHEST, DEFAULT_DOWNSAMPLE)
    regions = chest_regions(plane.shape[1:])
    np.testing.assert_array_equal(chest, plane[(slice(None), *regions["test"])])
    trained = np.zeros(plane.shape[1:], bool)
    for split in ("train", "val"):  # val picks the checkpoint: not a test image either
        trained[regions[split]] = True
    assert not trained[regions["test"]].any()


def test_the_general_test_window_would_be_half_in_the_jsrt_training_region():
    """Why the benchmark does not use general_test_images' radiograph window: half of it is the
    JSRT bundle's training region, a quarter each its validation and test regions."""
    from medden.data.jsrt import DEFAULT_CHEST, DEFAULT_DOWNSAMPLE, chest_regions
    from medden.data.modalities import centre_window, general_test_images, sample_plane

    plane = sample_plane(DEFAULT_CHEST, DEFAULT_DOWNSAMPLE)
    radiograph = next(item.image for item in general_test_images(1) if item.modality == "radiograph")
    np.testing.assert_array_equal(radiograph, centre_window(plane))
    h0, w0 = (plane.shape[1] - radiograph.shape[1]) // 2, (plane.shape[2] - radiograph.shape[2]) // 2
    window = np.zeros(plane.shape[1:], bool)
    window[h0:h0 + radiograph.shape[1], w0:w0 + radiograph.shape[2]] = True
    shares = {}
    for split, region in chest_regions(plane.shape[1:]).items():
        inside = np.zeros_like(window)
        inside[region] = True
        shares[split] = (window & inside).sum() / window.sum()
    assert shares == pytest.approx({"train": 0.5, "val": 0.25, "test": 0.25}, abs=0.02)


def test_histology_window_lies_in_the_half_no_bundle_trains_on(images):
    from medden.data.camelyon import histology_regions
    from medden.data.modalities import histology_rgb

    window = images["histology"]
    rgb = histology_rgb()  # (3, X, Y): X along image columns
    x0, y0 = rgb.shape[1] // 2, (rgb.shape[2] - window.shape[2]) // 2
    np.testing.assert_array_equal(window, rgb[:, x0:x0 + window.shape[1], y0:y0 + window.shape[2]])
    train_rows, train_columns = histology_regions()["train"]
    assert x0 >= train_columns.stop  # every column of the window is right of the training half
