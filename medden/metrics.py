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


def _batched(pred: NdarrayOrTensor, target: NdarrayOrTensor, spatial_dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    pred_t = convert_to_tensor(pred, track_meta=False, dtype=torch.float64)
    target_t = convert_to_tensor(target, track_meta=False, dtype=torch.float64)
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    if pred_t.shape != target_t.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred_t.shape)} vs {tuple(target_t.shape)}.")
    if pred_t.ndim == spatial_dims + 1:  # (C, *spatial): one image
        pred_t, target_t = pred_t[None], target_t[None]
    if pred_t.ndim != spatial_dims + 2:
        raise ValueError(
            f"pred must be (C, *spatial) or (B, C, *spatial) with {spatial_dims} spatial dims, "
            f"got shape {tuple(pred_t.shape)}; set spatial_dims to match."
        )
    check_channel_first(pred_t[0], "pred", spatial_dims=(spatial_dims,))
    check_finite(pred_t, "pred")
    check_finite(target_t, "target")
    return pred_t, target_t


def psnr(pred: NdarrayOrTensor, target: NdarrayOrTensor, data_range: float, spatial_dims: int = 2) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``.

    Args:
        pred: ``(C, *spatial)`` or ``(B, C, *spatial)`` image(s), numpy or torch.
        target: reference of the same shape.
        data_range: peak-to-peak range of the reference intensities, > 0.
        spatial_dims: 2 for ``(C, H, W)`` images, 3 for ``(C, H, W, D)`` volumes.

    Returns:
        float64 tensor of shape ``(B,)`` (``(1,)`` for one image); inf where identical.
    """
    pred_t, target_t = _batched(pred, target, spatial_dims)
    metric = PSNRMetric(max_val=check_positive(data_range, "data_range"), reduction="none")
    return metric(pred_t, target_t).reshape(-1)


def ssim(pred: NdarrayOrTensor, target: NdarrayOrTensor, data_range: float, spatial_dims: int = 2,
         win_size: int = 7, kernel_type: str = "gaussian") -> torch.Tensor:
    """Structural similarity (Wang et al. 2004), mean over channels and pixels.

    Args:
        pred: ``(C, *spatial)`` or ``(B, C, *spatial)``, each spatial side >= ``win_size``.
        target: reference of the same shape.
        data_range: peak-to-peak range of the reference intensities, > 0.
        spatial_dims: 2 for ``(C, H, W)`` images, 3 for ``(C, H, W, D)`` volumes.
        win_size: window side length (odd).
        kernel_type: ``"gaussian"`` (sigma 1.5) or ``"uniform"``.

    Returns:
        float64 tensor of shape ``(B,)``, values in [-1, 1].
    """
    pred_t, target_t = _batched(pred, target, spatial_dims)
    if min(pred_t.shape[2:]) < win_size:
        raise ValueError(f"every spatial side must be >= win_size={win_size}, got {tuple(pred_t.shape[2:])}.")
    metric = SSIMMetric(spatial_dims=spatial_dims, data_range=check_positive(data_range, "data_range"),
                        kernel_type=kernel_type, win_size=win_size, reduction="none")
    return metric(pred_t, target_t).reshape(-1)
