"""PSNR and SSIM with an explicit data range, computed by ``monai.metrics``.

The data range is never guessed from the images: a denoised image's own range differs from
the reference's, which makes PSNR values incomparable. Pass the range of the reference
intensities (1.0 for images in [0, 1], 255 for 8-bit, ``max - min`` of the clean image for
modality units).
"""

from __future__ import annotations

import torch
from monai.config import NdarrayOrTensor
from monai.metrics import PSNRMetric, SSIMMetric
from monai.utils import convert_to_tensor

from medden.validation import check_channel_first, check_finite, check_positive

__all__ = ["psnr", "ssim"]


def _batched(pred: NdarrayOrTensor, target: NdarrayOrTensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    pred_t = convert_to_tensor(pred, track_meta=False, dtype=torch.float64)
    target_t = convert_to_tensor(target, track_meta=False, dtype=torch.float64)
    if pred_t.shape != target_t.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred_t.shape)} vs {tuple(target_t.shape)}.")
    if pred_t.ndim in (3, 4):  # (C, *spatial): one image
        pred_t, target_t = pred_t[None], target_t[None]
    spatial_dims = check_channel_first(pred_t[0], "pred")
    check_finite(pred_t, "pred")
    check_finite(target_t, "target")
    return pred_t, target_t, spatial_dims


def psnr(pred: NdarrayOrTensor, target: NdarrayOrTensor, data_range: float) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``.

    Args:
        pred: ``(C, *spatial)`` or ``(B, C, *spatial)`` image(s), numpy or torch.
        target: reference of the same shape.
        data_range: peak-to-peak range of the reference intensities, > 0.

    Returns:
        float64 tensor of shape ``(B,)`` (``(1,)`` for one image); inf where identical.
    """
    pred_t, target_t, _ = _batched(pred, target)
    metric = PSNRMetric(max_val=check_positive(data_range, "data_range"), reduction="none")
    return metric(pred_t, target_t).reshape(-1)


def ssim(pred: NdarrayOrTensor, target: NdarrayOrTensor, data_range: float,
         win_size: int = 7, kernel_type: str = "gaussian") -> torch.Tensor:
    """Structural similarity (Wang et al. 2004), mean over channels and pixels.

    Args:
        pred: ``(C, *spatial)`` or ``(B, C, *spatial)``, 2D or 3D, each spatial side >= ``win_size``.
        target: reference of the same shape.
        data_range: peak-to-peak range of the reference intensities, > 0.
        win_size: window side length (odd).
        kernel_type: ``"gaussian"`` (sigma 1.5) or ``"uniform"``.

    Returns:
        float64 tensor of shape ``(B,)``, values in [-1, 1].
    """
    pred_t, target_t, spatial_dims = _batched(pred, target)
    if min(pred_t.shape[2:]) < win_size:
        raise ValueError(f"every spatial side must be >= win_size={win_size}, got {tuple(pred_t.shape[2:])}.")
    metric = SSIMMetric(spatial_dims=spatial_dims, data_range=check_positive(data_range, "data_range"),
                        kernel_type=kernel_type, win_size=win_size, reduction="none")
    return metric(pred_t, target_t).reshape(-1)
