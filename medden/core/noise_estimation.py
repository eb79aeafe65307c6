"""Noise and quality figures that need no clean reference.

* :func:`wavelet_noise_sigma`: Gaussian noise std per image of a ``(B, C, H, W)`` torch batch
  from the finest Haar diagonal detail; pure torch, so it can run inside a network's
  ``forward`` on CPU or CUDA (and under ``torch.jit.script``).
* :func:`estimate_noise_sigma`: the same idea for a report, on a ``(C, H, W[, D])`` volume,
  with scikit-image's wavelet estimator over at most ``max_slices`` slices.
* :func:`rician_background_sigma` (with :func:`find_background`): the noise sigma of a
  magnitude MR image from the air around the object, corrected for the Rayleigh law that
  magnitude noise follows where there is no signal.
* :func:`residual_whiteness` and :func:`edge_preservation`: what a denoiser removed and what
  it kept, judged from the noisy input and the output alone.

Volumes follow the package convention (see :mod:`medden`): channel first, ``(C, H, W)`` or
``(C, H, W, D)`` with ``H, W`` in-plane and ``D`` slices; numpy arrays or torch tensors, any
real dtype, in the image's own units. Every sigma is returned in those units. This module
depends only on :mod:`medden.core.validation`, so every layer may use it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from medden.core.validation import check_channel_first, check_finite, check_int, check_number

__all__ = [
    "AIR_THRESHOLD_IN_SIGMAS",
    "MAX_ZERO_FRACTION",
    "MIN_AIR_VARIATION",
    "MIN_BACKGROUND_VOXELS",
    "edge_preservation",
    "estimate_noise_sigma",
    "flat_region_sigma",
    "flat_region_noise_kernel",
    "evenly_spaced",
    "find_background",
    "residual_whiteness",
    "rician_background_sigma",
    "wavelet_noise_sigma",
]

#: fewest air voxels :func:`rician_background_sigma` accepts
MIN_BACKGROUND_VOXELS = 100
#: a background with more exact zeros than this fraction was zero-filled, not measured
MAX_ZERO_FRACTION = 0.1
#: automatic air: magnitude below this many air sigmas (Rayleigh CDF 0.99966 there)
AIR_THRESHOLD_IN_SIGMAS = 4.0
#: E[M^2 | M < c sigma] / E[M^2] for Rayleigh M and c = AIR_THRESHOLD_IN_SIGMAS
_TRUNCATED_SECOND_MOMENT = (1 - (1 + AIR_THRESHOLD_IN_SIGMAS**2 / 2) * math.exp(-(AIR_THRESHOLD_IN_SIGMAS**2) / 2)) / (
    1 - math.exp(-(AIR_THRESHOLD_IN_SIGMAS**2) / 2)
)
#: std / mean of Rayleigh air is sqrt(4 / pi - 1) ~ 0.523; automatic air below this is refused
MIN_AIR_VARIATION = 0.4
#: most threshold refinements :func:`find_background` makes
_MAX_REFINEMENTS = 20


def wavelet_noise_sigma(images: torch.Tensor) -> torch.Tensor:
    """Robust Gaussian noise std of each image from its finest diagonal Haar detail.

    ``sigma = median(|HH|) / 0.6745`` with ``HH = (a - b - c + d) / 2`` over every 2 x 2 block
    ``[[a, b], [c, d]]`` (the orthonormal Haar diagonal detail, so white noise of std sigma
    gives HH of std sigma), pooled over all channels of an image (torch's median: the lower of
    the two middle values for an even count). An odd ``H`` or ``W`` loses its last row or
    column. No gradient flows (the input is detached); works on any device and
    under ``torch.jit.script``. The finiteness check costs one device synchronisation.

    Caveats: HH holds texture as well as noise, so strongly textured images read high. With
    signal-dependent noise (Poisson, Rician) it measures a median-weighted average over the
    image; on magnitude MR with much air it reads low, since Rayleigh noise in air fluctuates
    with only ``sqrt(2 - pi / 2) ~ 0.655`` times the Gaussian sigma (use
    :func:`rician_background_sigma` there).

    Args:
        images: ``(B, C, H, W)`` floating tensor, ``H, W >= 2``, in any units.

    Returns:
        ``(B,)`` tensor, the input's dtype and device, >= 0, in the input's units.

    Raises:
        ValueError: not 4-D, ``H`` or ``W`` below 2, or non-finite values.
        TypeError: an integer or complex tensor.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> noisy = 0.5 + torch.tensor([0.1, 0.2]).view(2, 1, 1, 1) * torch.randn(2, 1, 64, 64, generator=g)
        >>> [round(s, 1) for s in wavelet_noise_sigma(noisy).tolist()]
        [0.1, 0.2]
    """
    if images.dim() != 4:
        raise ValueError(
            "images must be a (B, C, H, W) batch, got shape " + str(list(images.shape))
            + "; add a batch axis with images[None] or a channel axis with images[:, None]."
        )
    if not images.is_floating_point():
        raise TypeError("images must be a floating tensor, got " + str(images.dtype) + "; call images.float().")
    height, width = images.shape[2], images.shape[3]
    if height < 2 or width < 2:
        raise ValueError("images need H, W >= 2 for a Haar detail, got shape " + str(list(images.shape)) + ".")
    if not bool(torch.isfinite(images).all()):
        bad = int((~torch.isfinite(images)).sum())
        raise ValueError("images contains " + str(bad) + " non-finite value(s) (NaN or inf); replace them first.")
    x = images.detach()[:, :, : height - height % 2, : width - width % 2]
    detail = (x[:, :, 0::2, 0::2] - x[:, :, 0::2, 1::2] - x[:, :, 1::2, 0::2] + x[:, :, 1::2, 1::2]) * 0.5
    # median(|N(0, 1)|) = 0.6745 (a literal: TorchScript cannot read a module-level float)
    return detail.abs().flatten(1).median(dim=1).values / 0.6745


def _as_float_array(img: Any, name: str) -> np.ndarray:
    """A checked ``(C, H, W[, D])`` finite image as a float64 numpy array (a copy if needed)."""
    check_channel_first(img, name)
    check_finite(img, name)
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu().numpy()
    if np.iscomplexobj(img):
        raise TypeError(f"{name} must be real, got dtype {img.dtype}; pass the magnitude with abs().")
    return np.asarray(img, dtype=np.float64)


def _as_pair(noisy: Any, denoised: Any) -> tuple[np.ndarray, np.ndarray]:
    noisy_a, denoised_a = _as_float_array(noisy, "noisy"), _as_float_array(denoised, "denoised")
    if noisy_a.shape != denoised_a.shape:
        raise ValueError(f"noisy and denoised shapes differ: {noisy_a.shape} vs {denoised_a.shape}.")
    return noisy_a, denoised_a



def evenly_spaced(count: int, at_most: int) -> np.ndarray:
    """At most ``at_most`` distinct indices in ``range(count)``, evenly spaced, first and last included.

    Example:
        >>> evenly_spaced(10, 4).tolist()
        [0, 3, 6, 9]
    """
    return np.unique(np.linspace(0, count - 1, min(at_most, count)).round().astype(int))


def estimate_noise_sigma(volume: Any, max_slices: int = 16) -> float:
    """Robust Gaussian noise std of a volume for reports (wavelet-detail MAD, scikit-image).

    ``skimage.restoration.estimate_sigma`` (median absolute finest diagonal Daubechies detail
    / 0.6745) on each of at most ``max_slices`` evenly spaced slices along the last axis, each
    channel separately, averaged; constant slices (empty air) are skipped, and a volume with
    only constant slices reads 0. A few slices give a stable figure and keep a report cheaper
    than the denoising. The caveats of :func:`wavelet_noise_sigma` apply (texture reads as
    noise; magnitude MR air reads about 0.66 sigma, so an image that is mostly air reads low).

    Args:
        volume: ``(C, H, W)`` (one slice) or ``(C, H, W, D)``, numpy or torch, finite.
        max_slices: most slices used, >= 1.

    Returns:
        The mean estimate, >= 0, in ``volume``'s units.

    Raises:
        ValueError: wrong rank, an empty axis, non-finite values or ``max_slices < 1``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> round(estimate_noise_sigma(rng.normal(0.0, 0.1, (1, 64, 64, 8))), 2)
        0.1
    """
    from skimage.restoration import estimate_sigma

    arr = _as_float_array(volume, "volume")
    max_slices = check_int(max_slices, "max_slices", 1)
    if arr.ndim == 3:
        arr = arr[..., None]
    picks = evenly_spaced(arr.shape[-1], max_slices)
    # a constant slice (e.g. empty air at the end of a volume) has no detail to measure: skip it
    values = [float(estimate_sigma(plane)) for channel in arr for k in picks
              if (plane := channel[..., k]).max() > plane.min()]
    return float(np.mean(values)) if values else 0.0


def flat_region_sigma(volume: Any, max_slices: int = 16, block: int = 8, quantile: float = 0.2) -> float:
    """Noise std of a volume from its flattest blocks, for noise that is correlated between pixels.

    :func:`estimate_noise_sigma` sees only the finest detail, so noise smoothed by a
    reconstruction kernel or a detector (CT after FBP, radiographs) reads far below its real
    spread: on pydicom-data's ``693_UNCR`` head CT it reads 0.6 HU where flat brain varies by
    3.7 HU. Here every ``block`` x ``block`` block of at most ``max_slices`` evenly spaced slices
    (each channel alone) gives its standard deviation about its own mean; constant blocks
    (padding, empty air) are skipped; the ``quantile`` of those values, divided by the same
    quantile of the sample std of pure white Gaussian noise (chi law with ``block**2 - 1``
    degrees of freedom), is the estimate. Anatomy only raises a block's spread, so as long as
    about ``quantile`` of the blocks lie in flat regions it reads the noise, at every spatial
    frequency above ``1 / block`` cycles per pixel.

    Args:
        volume: ``(C, H, W)`` or ``(C, H, W, D)``, numpy or torch, finite, H and W >= ``block``.
        max_slices: most slices used, >= 1.
        block: block side in pixels, >= 2.
        quantile: in (0, 1).

    Returns:
        The estimate in ``volume``'s units, >= 0 (0 when every block is constant).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> round(flat_region_sigma(rng.normal(0.0, 0.1, (1, 64, 64))), 2)
        0.1
    """
    from scipy.stats import chi2

    arr = _as_float_array(volume, "volume")
    max_slices = check_int(max_slices, "max_slices", 1)
    block = check_int(block, "block", 2)
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile!r}.")
    if arr.ndim == 3:
        arr = arr[..., None]
    height, width = (n // block * block for n in arr.shape[1:3])
    if height == 0 or width == 0:
        raise ValueError(f"volume must be at least {block} x {block} in-plane, got shape {arr.shape}.")
    picks = evenly_spaced(arr.shape[-1], max_slices)
    planes = arr[:, :height, :width][..., picks].astype(np.float64)
    blocks = planes.reshape(arr.shape[0], height // block, block, width // block, block, len(picks))
    spreads = blocks.std(axis=(2, 4), ddof=1).ravel()
    scale = max(float(np.abs(planes).max()), 1.0e-30)
    spreads = spreads[spreads > 1e-9 * scale]
    if spreads.size == 0:
        return 0.0
    dof = block * block - 1
    white = float(np.sqrt(chi2.ppf(quantile, dof) / dof))
    return float(np.quantile(spreads, quantile) / white)


def flat_region_noise_kernel(image: Any, block: int = 16, size: int = 9, quantile: float = 0.2) -> np.ndarray:
    """A kernel that turns white noise into noise like ``image``'s, correlated as it is (CT kernels, detectors).

    The flattest ``quantile`` of the ``block`` x ``block`` blocks of ``image`` (smallest std about
    their own mean; constant blocks skipped) give the noise power spectrum, the mean of their
    Hann-windowed periodograms. Its square root, back in the pixel domain and cut to ``size`` x
    ``size`` about its centre, is the kernel ``k``; it is scaled so that white noise of unit
    variance convolved with ``k`` has the variance :func:`flat_region_sigma` reads (``sum(k**2)
    = sigma**2``). White noise gives (nearly) a centred delta.

    Args:
        image: ``(C, H, W)`` (channels pooled) or ``(H, W)``, numpy or torch, finite, sides >= ``block``.
        block: block side, even, >= 4.
        size: kernel side, odd, >= 1, < ``block``.
        quantile: share of the flattest blocks used, in (0, 1) (as :func:`flat_region_sigma`).

    Returns:
        ``(size, size)`` float64 kernel, all zero when the image has no non-constant block.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> kernel = flat_region_noise_kernel(rng.normal(0.0, 0.1, (1, 128, 128)), size=3)
        >>> round(float(np.sqrt((kernel ** 2).sum())), 2), bool(kernel[1, 1] > 5 * abs(kernel[0, 1]))
        (0.1, True)
    """
    arr = _as_float_array(image[None] if getattr(image, "ndim", 0) == 2 else image, "image")
    block, size = check_int(block, "block", 4), check_int(size, "size", 1)
    if block % 2 or size % 2 == 0 or size > block:
        raise ValueError(f"block must be even and size odd and at most block, got block={block}, size={size}.")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile!r}.")
    height, width = (n // block * block for n in arr.shape[1:3])
    if height == 0 or width == 0:
        raise ValueError(f"image must be at least {block} x {block}, got shape {arr.shape}.")
    blocks = arr[:, :height, :width].reshape(arr.shape[0], height // block, block, width // block, block)
    blocks = blocks.transpose(0, 1, 3, 2, 4).reshape(-1, block, block).astype(np.float64)
    blocks = blocks - blocks.mean(axis=(1, 2), keepdims=True)
    spreads = blocks.std(axis=(1, 2))
    keep = spreads > 1e-9 * max(float(np.abs(arr).max()), 1e-30)
    if not keep.any():
        return np.zeros((size, size))
    blocks, spreads = blocks[keep], spreads[keep]
    flattest = blocks[spreads <= np.quantile(spreads, quantile)]
    window = np.outer(np.hanning(block + 2)[1:-1], np.hanning(block + 2)[1:-1])
    power = (np.abs(np.fft.fft2(flattest * window)) ** 2).mean(axis=0) / (window**2).sum()
    kernel = np.fft.fftshift(np.real(np.fft.ifft2(np.sqrt(power))))
    centre, half = block // 2, size // 2
    kernel = kernel[centre - half : centre + half + 1, centre - half : centre + half + 1]
    sigma = flat_region_sigma(arr, block=block, quantile=quantile)
    return kernel * sigma / max(float(np.sqrt((kernel**2).sum())), 1e-30)


def _magnitude(magnitude: Any) -> np.ndarray:
    arr = _as_float_array(magnitude, "magnitude")
    low = arr.min()
    if low < 0:
        raise ValueError(
            f"magnitude must be a non-negative magnitude image, got a minimum of {low:g}; "
            "pass abs() of the complex image, not a real or phase image."
        )
    return arr


def _border_connected(below: np.ndarray) -> np.ndarray:
    """The parts of a 2-D mask that touch the image border (air around the object)."""
    from scipy import ndimage

    labels, _ = ndimage.label(below)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge_labels[edge_labels > 0])


def _air_below(image: np.ndarray, arr: np.ndarray, threshold: float, erode: int) -> tuple[np.ndarray, float]:
    """Air mask below ``threshold`` (border-connected, eroded) and its Rayleigh sigma."""
    from scipy import ndimage

    below = image < threshold
    stack = below if below.ndim == 3 else below[..., None]
    air = np.stack([_border_connected(stack[..., k]) for k in range(stack.shape[-1])], axis=-1)
    if erode:
        structure = ndimage.generate_binary_structure(3, 1)
        structure[:, :, 0] = structure[:, :, 2] = False  # in-plane only
        air = ndimage.binary_erosion(air, structure, iterations=erode, border_value=1)
    air = air if below.ndim == 3 else air[..., 0]
    sigma = math.sqrt(float(np.mean(arr[:, air] ** 2)) / 2.0) if air.any() else 0.0
    return air, sigma


def find_background(magnitude: Any, erode: int = 2) -> np.ndarray:
    """Find the air around the object in a magnitude image, without a model of the object.

    Works on the channel-mean image, slice by slice (thick or few slices are fine):

    1. A first threshold splits dark from bright: Otsu's threshold on the log of the non-zero
       intensities (the log keeps a few very bright voxels from pulling it up into tissue).
    2. Air is what lies below the threshold and touches the image border in its slice (dark
       tissue enclosed by the object is not air), eroded in-plane by ``erode`` pixels away
       from everything above the threshold (partial-volume voxels at the object's edge).
    3. The threshold becomes 4 x the air's Rayleigh sigma (:func:`rician_background_sigma`'s
       formula) and step 2 is repeated until it stops moving. Below 4 sigma lies 99.97% of
       Rayleigh air, and an object clearly brighter than that stays out, whatever the first
       threshold was.

    Air that holds signal (ghosts, aliasing) and objects with an SNR below about 4 are not
    separated; pass your own mask to :func:`rician_background_sigma` for those.

    Args:
        magnitude: ``(C, H, W)`` or ``(C, H, W, D)`` non-negative magnitude image, finite.
        erode: in-plane erosion of the air mask, pixels, >= 0.

    Returns:
        Boolean mask of shape ``(H, W[, D])``, True in air. It may be empty (check its sum).

    Raises:
        ValueError: a bad image, or one without two distinct non-zero intensities.
    """
    from skimage.filters import threshold_otsu

    arr = _magnitude(magnitude)
    erode = check_int(erode, "erode", 0)
    image = arr.mean(axis=0)
    positive = image[image > 0]
    if positive.size == 0 or positive.min() == positive.max():
        raise ValueError("magnitude has fewer than two distinct non-zero intensities: no air/object contrast.")
    threshold = math.exp(float(threshold_otsu(np.log(positive))))
    air, sigma = _air_below(image, arr, threshold, erode)
    for _ in range(_MAX_REFINEMENTS):
        refined = AIR_THRESHOLD_IN_SIGMAS * math.sqrt(sigma**2 / _TRUNCATED_SECOND_MOMENT)
        if refined <= 0.0 or abs(refined - threshold) <= 1e-3 * threshold:
            break
        threshold = refined
        air, sigma = _air_below(image, arr, threshold, erode)
    return air


def _background_mask(background: Any, spatial: tuple[int, ...]) -> np.ndarray:
    mask = background.detach().cpu().numpy() if isinstance(background, torch.Tensor) else np.asarray(background)
    if mask.shape[1:] == spatial and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != spatial:
        raise ValueError(
            f"background must have the image's spatial shape {spatial} (or (1, *spatial)), "
            f"got {mask.shape}."
        )
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("background must hold only 0/1 (or False/True), 1 in air; threshold it first.")
    return mask.astype(bool)


def _check_rayleigh(values: np.ndarray) -> None:
    """Refuse automatic air whose spread is too small for Rayleigh noise (std/mean ~ 0.523)."""
    variation = float(values.std() / values.mean())
    if variation < MIN_AIR_VARIATION:
        raise ValueError(
            f"the automatically found air does not look like Rayleigh noise: std/mean {variation:.2f}, "
            f"Rayleigh {math.sqrt(4 / math.pi - 1):.2f}. It holds signal (the object fills the field "
            "of view, ghosts), or the image is a multi-coil sum of squares (non-central chi noise, "
            "where this correction does not hold). Pass a background mask if you are sure it is air."
        )


def rician_background_sigma(magnitude: Any, background: Any | None = None) -> float:
    """Noise sigma of a magnitude MR image, measured in the air and corrected for Rayleigh.

    Magnitude noise is Rician: ``M = |A + sigma (n1 + i n2)|``. In air ``A = 0``, so ``M``
    follows the Rayleigh law with ``E[M^2] = 2 sigma^2``, mean ``sigma sqrt(pi / 2)`` and std
    ``sigma sqrt(2 - pi / 2) ~ 0.655 sigma``; the plain std of the air therefore reads
    about 35% low. This returns the maximum-likelihood Rayleigh estimate
    ``sigma = sqrt(mean(M^2) / 2)`` over the air voxels of every channel, which needs no
    assumption beyond zero signal there. It reads high where the air holds signal (ghosts,
    motion or aliasing artefacts, object voxels in the mask), which a careful mask avoids.
    Single-coil and adaptively combined (SENSE-like) magnitude images have Rayleigh air; a
    sum of squares over ``L`` coils has non-central chi air and reads ``sqrt(L)`` too high.
    Automatic air is checked for that: its std/mean must be at least 0.4 (Rayleigh: 0.523;
    a two-coil sum of squares: 0.36; air holding signal: lower still).

    Args:
        magnitude: ``(C, H, W)`` or ``(C, H, W, D)`` non-negative magnitude image, finite.
        background: air mask of shape ``(H, W[, D])`` or ``(1, H, W[, D])``, 1/True in air,
            shared by all channels. If None, :func:`find_background` finds it (air below
            4 sigma; the 0.3% that truncation removes from ``mean(M^2)`` is put back).

    Returns:
        sigma of each Gaussian channel (real and imaginary) of the complex noise, in
        ``magnitude``'s units.

    Raises:
        ValueError: bad image (rank, negative or non-finite values), a mask of the wrong shape
            or values, fewer than :data:`MIN_BACKGROUND_VOXELS` air voxels, a zero-filled air
            (more than 10% exact zeros: the scanner masked it, nothing left to measure),
            automatic air that does not look like Rayleigh noise, or an image without contrast.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> air = np.hypot(*rng.normal(0.0, 0.05, (2, 1, 64, 64)))  # Rayleigh, sigma 0.05
        >>> round(rician_background_sigma(air, background=np.ones((64, 64))), 3)
        0.05
    """
    arr = _magnitude(magnitude)
    spatial = arr.shape[1:]
    automatic = background is None
    mask = find_background(arr) if automatic else _background_mask(background, spatial)
    count = int(mask.sum())
    if count < MIN_BACKGROUND_VOXELS:
        how = "found" if automatic else "in the background mask"
        raise ValueError(
            f"only {count} background (air) voxel(s) {how}, need at least {MIN_BACKGROUND_VOXELS}; "
            "the object may fill the field of view. Pass a background mask of air voxels."
        )
    values = arr[:, mask]
    zeros = float((values == 0).mean())
    if zeros > MAX_ZERO_FRACTION:
        raise ValueError(
            f"{zeros:.0%} of the background voxels are exactly 0: the air was zero-filled "
            "(masked by the scanner or a preprocessing step), so its noise cannot be measured."
        )
    if automatic:
        _check_rayleigh(values)
    second_moment = float(np.mean(values**2))
    if automatic:  # find_background's air is Rayleigh truncated at 4 sigma: undo that bias
        second_moment /= _TRUNCATED_SECOND_MOMENT
    return math.sqrt(second_moment / 2.0)


def residual_whiteness(noisy: Any, denoised: Any, max_lag: int = 3) -> float:
    """How much structure the removed residual ``noisy - denoised`` holds, from 0 (white) to 1.

    The residual, minus its mean in each channel and slice, is correlated with itself shifted
    by ``1 .. max_lag`` pixels along ``X`` and along ``Y``; each normalised autocorrelation
    ``sum(r_i r_(i+lag)) / sum(r_i^2)`` (pooled over channels and slices; at most 1 in
    magnitude) is taken in absolute value and the ``2 * max_lag`` values are averaged. White
    noise gives about ``1 / sqrt(pixels)``; a residual holding anatomy (blurred edges, lost
    texture) gives values towards 1. Lower is better, but real MR noise is not always white
    (k-space filtering, zero-filled interpolation, parallel imaging), which raises the floor.

    Args:
        noisy: ``(C, H, W)`` or ``(C, H, W, D)`` input, finite.
        denoised: the denoiser's output, same shape.
        max_lag: largest shift in pixels, >= 1 and below ``X`` and ``Y``.

    Returns:
        A float in [0, 1].

    Raises:
        ValueError: bad shapes or values, ``max_lag`` too large, or a residual that is zero
            everywhere (nothing was removed, so there is nothing to judge).
    """
    noisy_a, denoised_a = _as_pair(noisy, denoised)
    max_lag = check_int(max_lag, "max_lag", 1)
    if max_lag >= min(noisy_a.shape[1:3]):
        raise ValueError(f"max_lag must be below the in-plane size {noisy_a.shape[1:3]}, got {max_lag}.")
    residual = noisy_a - denoised_a
    residual -= residual.mean(axis=(1, 2), keepdims=True)
    energy = float(np.sum(residual**2))
    if energy == 0.0:
        raise ValueError("the residual noisy - denoised is constant in every slice, so its whiteness is undefined.")
    values = []
    for axis in (1, 2):
        length = residual.shape[axis]
        for lag in range(1, max_lag + 1):
            head = np.take(residual, np.arange(length - lag), axis=axis)
            tail = np.take(residual, np.arange(lag, length), axis=axis)
            values.append(abs(float(np.sum(head * tail))) / energy)
    return float(np.mean(values))


def _gradient_magnitude(arr: np.ndarray, smoothing: float) -> np.ndarray:
    """In-plane gradient magnitude of ``(C, H, W[, D])`` after a Gaussian of ``smoothing`` px."""
    from scipy.ndimage import gaussian_filter

    sigma = [0.0, smoothing, smoothing] + [0.0] * (arr.ndim - 3)
    smooth = gaussian_filter(arr, sigma=sigma, mode="nearest") if smoothing > 0 else arr
    return np.hypot(np.gradient(smooth, axis=1), np.gradient(smooth, axis=2))


def edge_preservation(noisy: Any, denoised: Any, smoothing: float = 1.0, edge_fraction: float = 0.1) -> float:
    """How strong the denoised image's edges are where the noisy image has its strongest edges.

    Both images get the same light in-plane Gaussian smoothing (``smoothing`` pixels; it
    mostly removes the noise from the noisy image's gradients). The strong-edge pixels are the
    ``edge_fraction`` of pixels with the largest in-plane gradient magnitude of the smoothed
    noisy image, i.e. the anatomy's boundaries. The figure is the denoised image's mean
    gradient magnitude there divided by the noisy image's.

    1 means edges as strong as in the (lightly smoothed) input, as for the identity; below 1
    the denoiser blurred them (a heavy blur reads well below); above 1 it sharpened them or
    added artefacts along them. Good denoisers stay close to 1. Selecting the pixels on the
    noisy image favours pixels where noise adds to the gradient, so a perfect denoiser of a
    very noisy image reads slightly below 1.

    Args:
        noisy: ``(C, H, W)`` or ``(C, H, W, D)`` input, finite.
        denoised: the denoiser's output, same shape.
        smoothing: Gaussian sigma in pixels, >= 0 (0: no smoothing).
        edge_fraction: share of pixels counted as strong edges, in (0, 1].

    Returns:
        A float >= 0, typically in [0, 1.2].

    Raises:
        ValueError: bad shapes, values or parameters, or a noisy image without any edge.
    """
    noisy_a, denoised_a = _as_pair(noisy, denoised)
    smoothing = check_number(smoothing, "smoothing", 0.0, hint="it is a Gaussian sigma in pixels, 0 for none")
    edge_fraction = check_number(edge_fraction, "edge_fraction", 0.0, 1.0, open_minimum=True)
    noisy_grad = _gradient_magnitude(noisy_a, smoothing)
    denoised_grad = _gradient_magnitude(denoised_a, smoothing)
    edges = noisy_grad >= np.quantile(noisy_grad, 1.0 - edge_fraction)
    reference = float(noisy_grad[edges].mean())
    if reference <= 0.0:
        raise ValueError("noisy has no edges (its smoothed gradient is zero), so edge preservation is undefined.")
    return float(denoised_grad[edges].mean()) / reference
