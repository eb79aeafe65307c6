"""Self-ensemble: the mean over the eight dihedral views, each turned back."""

import pytest
import torch
from monai.inferers import SliceInferer

from medden.bundle.bundle import runs_on_volumes
from medden.inference import SelfEnsembleInferer


def test_an_equivariant_network_gives_the_plain_pass_and_a_fixed_pattern_is_averaged_over_views():
    x = torch.rand(2, 1, 6, 6)
    assert torch.allclose(SelfEnsembleInferer(8)(x, lambda t: 3 * t), 3 * x)
    pattern = torch.zeros(6, 6)
    pattern[0, 0] = 8.0  # a network that always adds a bright top-left pixel
    out = SelfEnsembleInferer(8)(x, lambda t: t + pattern)
    corners = (out - x)[0, 0]
    # eight views put it into each corner twice (turns and flips), turned back: 2 in every corner
    assert torch.allclose(corners[[0, 0, -1, -1], [0, -1, 0, -1]], torch.full((4,), 2.0))
    assert torch.allclose(corners.sum(), torch.tensor(8.0))


def test_volumes_run_through_the_slice_inferer_and_views_are_checked():
    volume = torch.rand(1, 1, 5, 7, 3)
    inferer = SelfEnsembleInferer(4, SliceInferer(spatial_dim=2, roi_size=(-1, -1), progress=False))
    assert torch.allclose(inferer(volume, lambda t: t + 1), volume + 1)
    assert runs_on_volumes(inferer)
    for views in (0, 9):
        with pytest.raises(ValueError, match="views"):
            SelfEnsembleInferer(views)
