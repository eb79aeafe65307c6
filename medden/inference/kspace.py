"""Reconstruction of undersampled single-coil MRI: zero-filled image -> network -> data consistency.

* :func:`zero_filled_input`: the network's input from measured k-space, density-compensated
  the way the training pairs were (the Noise2Noise paper divides by the sampling density).
* :func:`reconstruct_kspace`: a stack of slices through a trained network, measured samples
  kept exactly (:func:`medden.core.fourier.data_consistency`).
* A folder of fastMRI-layout ``.h5`` files (k-space with a ``mask``) is reconstructed into
  NIfTI volumes by :func:`medden.apps.folders.reconstruct_h5_folder`.

A real-valued model (trained on magnitude images) cannot reconstruct k-space that carries
phase, as scanner data does: the imaginary part of its zero-filled image would be discarded.
:func:`zero_filled_input` refuses such data with a clear message (use a complex model).
"""

from __future__ import annotations

import numpy as np
import torch

from medden.core.fourier import check_kspace, data_consistency, to_image
from medden.networks.kspace import KspaceDenoiser
from medden.transforms.kspace_masks import make_kspace_mask

__all__ = ["density_weights", "reconstruct_kspace", "zero_filled_input"]

#: largest share of the zero-filled image's energy a real-valued model may see in the imaginary part
MAX_IMAGINARY_ENERGY = 0.01


def density_weights(mask: np.ndarray, mask_name: str | None = None, mask_kwargs: dict | None = None) -> np.ndarray:
    """``mask / density`` for ``(1, H, W)`` 0/1 ``mask``: the compensation used in training.

    Args:
        mask_name, mask_kwargs: the mask function the model was trained with (its sampling
            density is deterministic); None means no compensation (weights = mask).

    Returns:
        ``(1, H, W)`` float32, zero where not sampled.
    """
    mask = np.asarray(mask, np.float32)
    if mask_name is None:
        return mask
    density = np.broadcast_to(make_kspace_mask(mask_name, **(mask_kwargs or {}))(mask.shape[1:]).density,
                              mask.shape[1:])[None]
    return np.where(mask > 0, mask / np.maximum(density, 1e-12), 0.0).astype(np.float32)


def zero_filled_input(kspace: torch.Tensor, weights: torch.Tensor, is_complex: bool = False) -> torch.Tensor:
    """The network input: inverse FFT of the weighted measured samples.

    Args:
        kspace: ``(S, C, H, W, 2)`` measured k-space.
        weights: ``(1, H, W)`` or ``(S, 1, H, W)`` sampling weights (see :func:`density_weights`).
        is_complex: return complex images as channels ``(S, 2C, H, W)``; else the real part
            ``(S, C, H, W)``, after checking the data has (almost) no imaginary part.

    Raises:
        ValueError: real-valued output asked of k-space whose zero-filled image has more than
            1% of its energy in the imaginary part (phase).
    """
    weighted = kspace * weights.reshape(-1, 1, *kspace.shape[2:4], 1).to(kspace.dtype)
    if is_complex:
        return to_image(weighted, is_complex=True)
    complex_image = to_image(weighted, is_complex=True)
    real, imaginary = complex_image.chunk(2, dim=1)
    share = float(imaginary.square().sum() / complex_image.square().sum().clamp_min(1e-30))
    if share > MAX_IMAGINARY_ENERGY:
        raise ValueError(
            f"this k-space has phase ({share:.1%} of the zero-filled image's energy is imaginary), but the model is "
            "real-valued (trained on magnitude images); use a model trained with is_complex=True on complex data."
        )
    return real


def _size_multiple(network: torch.nn.Module) -> int:
    """The multiple of height and width ``network`` needs (``divisor`` of medden's U-Nets), else 1."""
    return max((int(getattr(module, "divisor", 1)) for module in network.modules()), default=1)


def _padded_forward(network: torch.nn.Module, image: torch.Tensor, multiple: int) -> torch.Tensor:
    """``network(image)`` with H and W zero-padded up to ``multiple`` (a wider field of view of
    empty space), cropped back to ``image``'s size."""
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return network(image)
    padded = torch.nn.functional.pad(image, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    return network(padded)[..., pad_h // 2:pad_h // 2 + height, pad_w // 2:pad_w // 2 + width]


@torch.no_grad()
def reconstruct_kspace(network: torch.nn.Module, kspace: np.ndarray, mask: np.ndarray, weights: np.ndarray,
                       is_complex: bool = False, batch_size: int = 8, device: str | torch.device = "cpu") -> np.ndarray:
    """Reconstruct a stack of undersampled slices.

    Args:
        network: the trained image network, or a :class:`~medden.networks.KspaceDenoiser`
            wrapping it; data consistency is applied here, after padding is cropped away.
        kspace: ``(S, C, H, W, 2)`` float32 raw measured samples.
        mask: ``(1, H, W)`` 0/1 sampling mask, shared by the slices.
        weights: ``(1, H, W)`` density weights for the network input (:func:`density_weights`).
        is_complex: the network takes complex images as channels.

    Returns:
        ``(S, C, H, W)`` float32 magnitude (complex) or real-part (real) images in the
        k-space's units, with the measured samples kept. Any H and W work: the image is
        zero-padded to the size the network needs and cropped back before data consistency.
    """
    kspace_t, mask_t = torch.as_tensor(kspace, dtype=torch.float32), torch.as_tensor(mask, dtype=torch.float32)
    check_kspace(kspace_t, mask_t)
    net = (network.net if isinstance(network, KspaceDenoiser) else network).eval().to(device)
    weights_t = torch.as_tensor(weights, dtype=torch.float32)
    multiple = _size_multiple(net)
    outputs = []
    for start in range(0, kspace_t.shape[0], batch_size):
        batch = kspace_t[start:start + batch_size].to(device)
        image = zero_filled_input(batch, weights_t.to(device), is_complex)
        batch_mask = mask_t.to(device).expand(batch.shape[0], 1, *mask_t.shape[-2:])
        out = data_consistency(_padded_forward(net, image, multiple), batch, batch_mask, is_complex)
        if is_complex:
            real, imaginary = out.chunk(2, dim=1)
            out = torch.sqrt(real.square() + imaginary.square())
        outputs.append(out.cpu())
    return torch.cat(outputs).numpy()
