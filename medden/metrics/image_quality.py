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

from medden.core.validation import check_channel_first, check_finite, check_positive

__all__ = ["mean_residual_statistics", "psnr", "residual_statistics", "ssim"]


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


def residual_statistics(noisy: NdarrayOrTensor, denoised: NdarrayOrTensor, noise_model=None) -> dict[str, float]:
    """What can be measured of a denoiser without ground truth, from ``r = noisy - denoised``.

    Args:
        noisy: ``(B, C, H, W)`` or ``(C, H, W)`` input images, data units.
        denoised: the denoiser's output, same shape.
        noise_model: optional module with ``log_likelihood(observed, signal)``
            (:mod:`medden.networks.noise_models`), for the mean negative log-likelihood of the
            input given the output.

    Returns:
        floats: ``residual_mean`` (bias; about 0 for an unbiased denoiser), ``residual_std``
        (about the noise std when the denoiser removes only noise), ``residual_lag1_correlation``
        (mean correlation of horizontally and vertically adjacent residual pixels: about 0
        for white noise; positive when structure leaks into the residual),
        ``input_noise_sigma`` / ``output_noise_sigma`` (median wavelet estimate of the noise
        left in each) and, with ``noise_model``, ``noise_model_nll`` in nats per pixel.
    """
    from medden.core.noise_estimation import wavelet_noise_sigma

    denoised_t, noisy_t = _batched(denoised, noisy, 2)  # errors name the output "pred"
    residual = (noisy_t - denoised_t).double()
    centred = residual - residual.mean(dim=(-2, -1), keepdim=True)

    def lag1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).mean() / (a.pow(2).mean().sqrt() * b.pow(2).mean().sqrt()).clamp_min(1e-30)

    stats = {
        "residual_mean": float(residual.mean()),
        "residual_std": float(residual.std()),
        "residual_lag1_correlation": float(0.5 * (lag1(centred[..., 1:, :], centred[..., :-1, :])
                                                  + lag1(centred[..., :, 1:], centred[..., :, :-1]))),
        "input_noise_sigma": float(wavelet_noise_sigma(noisy_t).median()),
        "output_noise_sigma": float(wavelet_noise_sigma(denoised_t).median()),
    }
    if noise_model is not None:
        with torch.no_grad():
            stats["noise_model_nll"] = float(-noise_model.log_likelihood(noisy_t, denoised_t).mean())
    return stats


def mean_residual_statistics(loader, network: torch.nn.Module, inferer=None, noise_model=None,
                             input_key: str = "input") -> dict[str, float]:
    """:func:`residual_statistics` averaged over the images of ``loader`` (no ground truth).

    Args:
        loader: iterable of dicts holding ``(B, C, H, W)`` noisy images under ``input_key``.
        network: the denoiser (run in eval mode, on ``loader``'s tensors' device as given).
        inferer: ``inferer(inputs, network)`` (a MONAI inferer); None calls ``network``.
        noise_model: passed to :func:`residual_statistics`.

    Returns:
        the mean of each statistic over batches, plus ``images`` (how many were scored).
    """
    network.eval()
    totals: dict[str, float] = {}
    count = 0
    with torch.no_grad():
        for batch in loader:
            noisy = torch.as_tensor(batch[input_key])
            denoised = inferer(noisy, network) if inferer is not None else network(noisy)
            for key, value in residual_statistics(noisy, denoised, noise_model).items():
                totals[key] = totals.get(key, 0.0) + value * noisy.shape[0]
            count += noisy.shape[0]
    if count == 0:
        raise ValueError("loader yielded no images to score.")
    return {**{key: value / count for key, value in totals.items()}, "images": count}
