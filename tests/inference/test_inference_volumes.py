"""Whole-image denoising: the image's own units kept, clear errors."""

import numpy as np
import pytest
import torch
from monai.inferers import SimpleInferer, SliceInferer

from helpers import Halve

from medden.inference import denoise_image


def test_denoise_image_works_in_the_images_own_units():
    image = np.linspace(100, 300, 2 * 8 * 6, dtype=np.float32).reshape(1, 8, 6, 2)
    out = denoise_image(image, Halve(), SliceInferer(roi_size=(8, 8), spatial_dim=2))
    # scaled to [0, 1] by min/max (100, 300), halved, mapped back: 100 + (x - 100) / 2
    np.testing.assert_allclose(out, 100 + (image - 100) / 2, rtol=1e-5)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32


def test_denoise_image_rejects_non_finite_input():
    bad = np.ones((1, 4, 4), np.float32)
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        denoise_image(bad, Halve(), SimpleInferer())
