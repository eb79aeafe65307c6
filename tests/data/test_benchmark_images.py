"""Where the test images of ``medden benchmark`` lie against the shipped bundles' default training data."""

import numpy as np
import pytest

from medden.data import get_sample

pytestmark = pytest.mark.skipif(not all(get_sample(name).installed for name in ("RG1_UNCR", "immunohistochemistry")),
                                reason="needs the samples extra")


@pytest.fixture(scope="module")
def images():
    from medden.data.modalities import benchmark_images

    return {item.modality: item.image for item in benchmark_images(1)}


def test_chest_xray_window_is_half_in_the_jsrt_training_region_as_documented(images):
    """The benchmark's chest X-ray window is not held out from the JSRT bundle: half of it is
    that bundle's training region, a quarter its validation and a quarter its test region (what
    the benchmark_images docstring and the bundle's README state)."""
    from medden.data.jsrt import DEFAULT_CHEST, DEFAULT_DOWNSAMPLE, chest_regions
    from medden.data.modalities import centre_window, sample_plane

    plane = sample_plane(DEFAULT_CHEST, DEFAULT_DOWNSAMPLE)
    chest = images["chest X-ray"]
    np.testing.assert_array_equal(chest, centre_window(plane))
    h0, w0 = (plane.shape[1] - chest.shape[1]) // 2, (plane.shape[2] - chest.shape[2]) // 2
    window = np.zeros(plane.shape[1:], bool)
    window[h0:h0 + chest.shape[1], w0:w0 + chest.shape[2]] = True
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
