"""The classical anchor for undersampled single-coil MRI: L1-wavelet compressed sensing."""

from __future__ import annotations

import numpy as np

from medden.core.validation import check_finite, check_int, check_positive

__all__ = ["l1_wavelet_recon"]

#: default lamda in units of the zero-filled image's maximum (measured, see :func:`l1_wavelet_recon`)
L1_LAMDA_PER_PEAK = 0.004


def _check_kspace(kspace: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kspace = np.asarray(kspace)
    if kspace.ndim != 2 or not np.iscomplexobj(kspace):
        raise ValueError(f"kspace must be a complex (H, W) array, got {kspace.dtype} of shape {kspace.shape}; "
                         "convert medden's (1, H, W, 2) layout with k[0, ..., 0] + 1j * k[0, ..., 1].")
    check_finite(kspace, "kspace")
    mask = np.asarray(mask)
    if mask.shape != kspace.shape or not np.isin(mask, (0, 1)).all():
        raise ValueError(f"mask must be an array of 0/1 shaped like kspace {kspace.shape}, got shape {mask.shape}"
                         f" with values {np.unique(mask)[:4]}...; squeeze a (1, H, W) mask with mask[0].")
    return kspace.astype(np.complex128), mask.astype(np.float64)


def l1_wavelet_recon(kspace: np.ndarray, mask: np.ndarray, lamda: float | None = None,
                     max_iter: int = 100) -> np.ndarray:
    """Compressed-sensing reconstruction of undersampled single-coil k-space (sigpy, on CPU).

    Solves ``min_x 1/2 ||M (F x - y)||^2 + lamda ||Psi x||_1`` with ``F`` the centred
    orthonormal FFT of :func:`medden.transforms.kspace.image_to_kspace`, ``M`` the mask and
    ``Psi`` a db4 wavelet transform, by sigpy's ``L1WaveletRecon`` (sensitivity map of ones,
    FISTA with step 1 since ``||M F|| = 1``). ``|ifft(kspace * mask)|`` is the zero-filled image.

    The default ``lamda`` is 0.004 times the zero-filled image's maximum, so the result scales
    with the data. On three 256x256 MNI brain slices (zero-padded, in [0, 1]) under a 10%
    :class:`~medden.transforms.kspace_masks.RadialBernoulliMask`, lamda 0.001 to 0.01 in image
    units peaked at 0.002-0.003; the default (about 0.0035 there) gives 36.5-37.1 dB against
    22.7-26.9 dB zero-filled, converged after 100 iterations (about 2 s a slice, one core).
    Noisy k-space wants a larger ``lamda``. sigpy's wavelet pads the image with zeros, so the
    penalty favours a dark border: right for an object in air (MRI), wrong for an image that
    fills the field of view (a bright smooth 64x64 ramp came out below its zero-filling).

    Args:
        kspace: complex ``(H, W)`` centred k-space; entries where ``mask`` is 0 are ignored.
        mask: ``(H, W)`` array of 0/1, 1 where sampled.
        lamda: L1 weight in the image's units, > 0; None for the default above.
        max_iter: FISTA iterations, >= 1.

    Returns:
        ``(1, H, W)`` float32 magnitude image in the k-space's units.

    Raises:
        ValueError: ``kspace`` not complex ``(H, W)`` or not finite, ``mask`` not 0/1 of its
            shape, ``lamda`` not > 0 or ``max_iter`` < 1.
        TypeError: ``max_iter`` not an int.
    """
    import sigpy as sp
    from sigpy.mri.app import L1WaveletRecon

    kspace, mask = _check_kspace(kspace, mask)
    max_iter = check_int(max_iter, "max_iter", 1, "use 100 or more for a converged result")
    measured = kspace * mask
    peak = float(np.abs(sp.ifft(measured, center=True, norm="ortho")).max())
    lamda = L1_LAMDA_PER_PEAK * peak if lamda is None else check_positive(lamda, "lamda")
    if peak == 0:
        return np.zeros((1, *kspace.shape), np.float32)
    app = L1WaveletRecon(measured[None], np.ones((1, *kspace.shape), np.complex128), lamda, weights=mask,
                         device=sp.cpu_device, show_pbar=False, max_iter=int(max_iter), alpha=1.0)
    return np.abs(app.run()).astype(np.float32)[None]
