"""Denoise a whole image with a trained network, in the image's own units.

Networks in medden are trained on images scaled to [0, 1]; :func:`denoise_image` scales each
image by its own percentile range, runs the inferer, and maps the result back to the input's
units, so denoised files stay in the units they came in (MR signal, HU, ...). Folders of
files are denoised by the applications (:mod:`medden.apps.folders`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type, convert_to_tensor

from medden.networks.zoo import network_device
from medden.core.intensity import intensity_range
from medden.core.validation import check_channel_first, check_finite
from medden.inference.progress import run_base_inferer

__all__ = ["denoise_image", "intensity_range", "to_unit_range"]


def denoise_image(image: NdarrayOrTensor, network: torch.nn.Module, inferer: Inferer | Callable,
                  percentiles: tuple[float, float] = (0.0, 100.0), device: torch.device | str | None = None,
                  smoothing: int = 0) -> NdarrayOrTensor:
    """Denoise one ``(C, H, W[, D])`` image in its own units.

    The values at ``percentiles`` map to [0, 1] (not clipped), ``inferer(batch, network)``
    runs on ``(1, C, ...)`` under ``torch.no_grad()``, and the output is mapped back.

    Args:
        image: numpy or torch; a ``MetaTensor`` keeps its meta (affine).
        network: the trained network, in eval mode.
        inferer: e.g. ``monai.inferers.SliceInferer`` to run a 2D network over a volume,
            wrapped in :class:`~medden.inference.RefinementInferer` for refinement.
        percentiles: intensity percentiles that define the [0, 1] range.
        device: where to run; default: the network's device.
        smoothing: measure the percentiles on an in-plane box-smoothed copy (see
            :func:`intensity_range`); 0 measures them on the image itself.

    Returns:
        The denoised image, same shape and container type as ``image``, float32.
    """
    unit, low, scale = to_unit_range(image, percentiles, smoothing)
    if device is None:
        device = network_device(network)
    with torch.no_grad():
        out = run_base_inferer(inferer, unit[None].to(device), network)[0].float().cpu() * scale + low
    return convert_to_dst_type(out, image, dtype=torch.float32)[0]


def to_unit_range(image: NdarrayOrTensor, percentiles: tuple[float, float] = (0.0, 100.0), smoothing: int = 0
                  ) -> tuple[torch.Tensor, float, float]:
    """Check ``image`` and scale it as a network sees it: its ``percentiles`` map to [0, 1].

    Args:
        image: ``(C, H, W[, D])`` numpy or torch (on the CPU), finite.
        percentiles: see :func:`intensity_range`.
        smoothing: see :func:`intensity_range`.

    Returns:
        ``(unit, low, scale)``: ``unit = (image - low) / scale``, a float32 CPU tensor of
        ``image``'s shape without meta, not clipped. A network output ``r`` in those units maps
        back to the image's units as ``r * scale + low``; a spread (a standard deviation) as
        ``r * scale``.

    Raises:
        ValueError: ``image`` is not channel-first or holds NaN/inf.
    """
    check_channel_first(image, "image")
    check_finite(image, "image")
    img_t = convert_to_tensor(image, track_meta=False, dtype=torch.float32)
    low, high = intensity_range(img_t.numpy(), percentiles, smoothing)
    return (img_t - low) / (high - low), low, high - low
