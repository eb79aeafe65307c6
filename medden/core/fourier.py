"""Batched k-space operators shared by transforms, losses, networks and inference.

This module imports nothing else from medden except :mod:`medden.core.validation`, so every layer
may use it. Layouts follow the package convention (see :mod:`medden`): k-space is centred and
orthonormal (``monai.data.fft_utils``), complex values are a trailing (real, imaginary) axis.

Networks see complex images with real and imaginary parts as channels: a batch of ``C``
complex channels is ``(B, 2C, H, W)``, the layout of MONAI's
``reshape_complex_to_channel_dim`` (all real parts first, then all imaginary parts).

* :func:`to_kspace` / :func:`to_image`: image (real, or complex as channels) <-> k-space.
* :func:`data_consistency`: replace the frequencies that were measured by their measured
  values (the "R" of Noise2Noise's MRI experiment, and the final step of inference).
* :func:`check_kspace`: the checks every entry point applies to measured k-space.
"""

from __future__ import annotations

import torch
from monai.apps.reconstruction.networks.nets.utils import (
    reshape_channel_complex_to_last_dim,
    reshape_complex_to_channel_dim,
)
from monai.data.fft_utils import fftn_centered, ifftn_centered

__all__ = ["check_kspace", "data_consistency", "to_image", "to_kspace"]


def to_kspace(image: torch.Tensor, is_complex: bool = False) -> torch.Tensor:
    """Centred orthonormal 2D FFT of a batch of images.

    Args:
        image: ``(B, C, H, W)`` real images, or ``(B, 2C, H, W)`` complex images with real
            and imaginary parts as channels (``is_complex=True``); float.
        is_complex: how to read the channels.

    Returns:
        ``(B, C, H, W, 2)`` centred k-space, ``image``'s dtype.
    """
    if is_complex:
        if image.shape[1] % 2:
            raise ValueError(
                f"complex images as channels need an even channel count (real parts, then imaginary parts), "
                f"got shape {tuple(image.shape)}; pass is_complex=False for real images."
            )
        return fftn_centered(reshape_channel_complex_to_last_dim(image), spatial_dims=2, is_complex=True)
    return fftn_centered(image, spatial_dims=2, is_complex=False)


def to_image(kspace: torch.Tensor, is_complex: bool = False) -> torch.Tensor:
    """Inverse of :func:`to_kspace`: ``(B, C, H, W, 2)`` k-space to images.

    Returns:
        ``(B, 2C, H, W)`` complex-as-channels images (``is_complex=True``) or the ``(B, C, H, W)``
        real part (``is_complex=False``; exact when the k-space is Hermitian-symmetric, as that
        of a real image under a Hermitian-symmetric mask is).
    """
    image = ifftn_centered(kspace, spatial_dims=2, is_complex=True)
    return reshape_complex_to_channel_dim(image) if is_complex else image[..., 0]


def data_consistency(image: torch.Tensor, kspace: torch.Tensor, mask: torch.Tensor,
                     is_complex: bool = False) -> torch.Tensor:
    """Keep the network's estimate only where k-space was not measured.

    ``image -> FFT -> measured frequencies replaced by their measured values -> IFFT``.
    Differentiable; the gradient with respect to ``image`` is zero at measured frequencies.

    Args:
        image: ``(B, C, H, W)`` real or ``(B, 2C, H, W)`` complex-as-channels estimate, float.
        kspace: ``(B, C, H, W, 2)`` measured centred k-space, the raw samples (not divided by
            a sampling density); values at unmeasured frequencies are ignored.
        mask: ``(B, 1, H, W)`` (or ``(B, C, H, W)``) 0/1 float, 1 where measured.
        is_complex: how to read ``image``'s channels.

    Returns:
        The corrected image, ``image``'s shape and dtype. For complex data the measured
        samples are kept exactly; for real data the real part is returned, which keeps them
        exactly when the mask is Hermitian-symmetric (e.g. the radial Bernoulli mask) and the
        measurements come from a real image.
    """
    estimate = to_kspace(image, is_complex)
    measured = (mask > 0).unsqueeze(-1)
    return to_image(torch.where(measured, kspace.to(estimate.dtype), estimate), is_complex)


def check_kspace(kspace: torch.Tensor, mask: torch.Tensor | None = None, name: str = "kspace") -> None:
    """Check measured k-space (and its mask) before they are used; raise a clear error.

    Args:
        kspace: ``(..., H, W, 2)``: any leading axes, then the spatial axes, then (real, imag).
        mask: None, or 0/1 broadcastable to ``kspace.shape[:-1]`` with the same last two axes.

    Raises:
        ValueError: real-only data (no trailing axis of 2), non-finite values, a mask whose
            spatial shape differs from the k-space's, or a mask that samples nothing.
    """
    if kspace.ndim < 3 or kspace.shape[-1] != 2:
        raise ValueError(
            f"{name} must be complex with a trailing (real, imaginary) axis, shape (..., H, W, 2); got shape "
            f"{tuple(kspace.shape)}. Real-only data cannot be k-space: convert complex arrays with "
            "torch.view_as_real, or pass images instead of k-space."
        )
    if not bool(torch.isfinite(kspace).all()):
        raise ValueError(f"{name} holds NaN or infinite values; measured k-space must be finite.")
    if mask is None:
        return
    spatial = tuple(kspace.shape[-3:-1])
    if tuple(mask.shape[-2:]) != spatial:
        raise ValueError(
            f"the sampling mask's spatial shape {tuple(mask.shape[-2:])} does not match the k-space's {spatial} "
            f"(mask shape {tuple(mask.shape)}, {name} shape {tuple(kspace.shape)})."
        )
    if not bool((mask > 0).any()):
        raise ValueError(f"the sampling mask of {name} is all zero: nothing was measured.")
