"""Noise-level conditioning (FFDNet/DRUNet style) with the noise level estimated from the input."""

from __future__ import annotations

import torch

from medden.networks.residual import ResidualDenoiser
from medden.core.noise_estimation import wavelet_noise_sigma

__all__ = ["NoiseConditionedDenoiser"]


class NoiseConditionedDenoiser(ResidualDenoiser):
    """``y -> y + net(cat(y, sigma(y)))``: a residual denoiser told the input's noise level.

    FFDNet and DRUNet feed a noise-level map as an extra input channel so one network covers
    many noise levels. Clinical images come without a known level, so here it is estimated
    from each input by :func:`~medden.core.noise_estimation.wavelet_noise_sigma` (finest Haar
    diagonal detail, median absolute deviation) and broadcast to a constant map. Training and
    inference use the same estimate, so nothing but the noisy image is needed (no clean data,
    no user-supplied sigma), and a sliding-window inferer gives each window its own level.

    Args:
        net: maps ``(B, C + 1, H, W)`` to ``(B, C, H, W)``, e.g. a MONAI ``UNet`` with
            ``in_channels=C + 1``.

    Shapes:
        input ``(B, C, H, W)`` float (nominally in [0, 1]); output the same shape and dtype.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sigma = wavelet_noise_sigma(x).to(x.dtype)
        level_map = sigma.view(-1, 1, 1, 1).expand(x.shape[0], 1, x.shape[2], x.shape[3])
        correction = self.net(torch.cat([x, level_map], dim=1))
        if correction.shape != x.shape:
            raise ValueError(
                "the inner network must map C + 1 channels to C at the input size " + str(x.shape) + ", got "
                + str(correction.shape) + "."
            )
        return x + correction
