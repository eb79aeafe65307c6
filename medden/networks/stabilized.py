"""A denoiser run in the variance-stabilised (generalised Anscombe) domain, for Poisson noise."""

from __future__ import annotations

import torch
from torch import nn

from medden.core.validation import check_positive, check_range
from medden.core.variance_stabilization import generalized_anscombe, inverse_generalized_anscombe

__all__ = ["VarianceStabilized"]


class VarianceStabilized(nn.Module):
    """``y -> inverse_GAT(net(GAT(peak * y))) / peak``: the network sees roughly unit-variance
    Gaussian noise whatever the intensity, and its output returns to ``y``'s units with the
    exact unbiased inverse (see :mod:`medden.core.variance_stabilization`).

    Args:
        net: ``(B, C, H, W) -> (B, C, H, W)`` network, e.g. a residual U-Net.
        peak: counts per unit intensity (``y = Poisson(peak * x) / peak``), > 0.
        read_sigma: Gaussian read-noise sigma in ``y``'s units, >= 0.

    Shapes:
        ``(B, C, H, W)`` float, ``y >= 0`` nominally, to the same shape; outputs are >= 0.
    """

    def __init__(self, net: nn.Module, peak: float, read_sigma: float = 0.0) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}.")
        self.net = net
        self.peak = check_positive(peak, "peak")
        self.sigma = check_range(read_sigma, "read_sigma", 0.0)[0] * self.peak  # in counts

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        stabilised = generalized_anscombe(y * self.peak, sigma=self.sigma)
        return inverse_generalized_anscombe(self.net(stabilised), sigma=self.sigma) / self.peak
