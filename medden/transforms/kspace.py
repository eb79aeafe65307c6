"""k-space undersampling: apply a sampling pattern and reconstruct, as separate small steps.

Layouts (see :mod:`medden`): a real image is ``(C, H, W[, D])``; complex data is real with a
trailing (real, imaginary) axis, ``(C, H, W[, D], 2)``; k-space is centred and orthonormal
(``monai.data.fft_utils.fftn_centered``), so ``ifft(fft(x)) == x`` and norms are preserved.

* :func:`apply_pattern` — keep the sampled frequencies (optionally divided by their density).
* :func:`reconstruct` — inverse FFT of (undersampled) k-space: complex, complex as channels,
  real part or magnitude.
* :class:`RandKspaceUndersample` — image in, :class:`Undersampled` (measured k-space, mask,
  zero-filled image) out; :class:`RandKspacePair` makes two independent undersamplings of
  one image for Noise2Noise (or a fully sampled target for clean-target training).
* :class:`RandKspaceNoise` — undersampling as an image-domain corruption (image in, zero-filled
  image out), so the corruption-generic pipelines (pairs, benchmarks) can use it by name.

The measured k-space holds the raw samples, as a scanner delivers them; density
compensation (dividing by the sampling probability, the Noise2Noise paper's unbiased
zero-filled estimate) is applied only to the zero-filled image.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import NamedTuple

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data.fft_utils import fftn_centered, ifftn_centered
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import convert_to_dst_type, convert_to_tensor

from medden.core.keys import Keys
from medden.core.protocols import N2N_MRI_EDGE_PROBABILITY
from medden.transforms.corruption import RandCorruption
from medden.transforms.twins import RandArrayTwin
from medden.transforms.kspace_masks import KspaceMaskFunc, RadialBernoulliMask, SamplingPattern, make_kspace_mask
from medden.core.validation import check_channel_first, check_finite

__all__ = [
    "RECON_OUTPUTS",
    "Undersampled",
    "image_to_kspace",
    "apply_pattern",
    "reconstruct",
    "RandKspaceUndersample",
    "RandKspacePair",
    "RandKspaceNoise",
    "RandKspaceUndersampled", "RandKspaceUndersampleD", "RandKspaceUndersampleDict",
    "RandKspacePaird", "RandKspacePairD", "RandKspacePairDict",
]

RECON_OUTPUTS = ("magnitude", "real", "complex", "channels")


class Undersampled(NamedTuple):
    """One undersampled acquisition.

    Attributes:
        kspace: ``(C, *spatial, 2)`` float32 centred k-space: the raw measured samples, zero
            where not sampled.
        mask: ``(1, *spatial)`` float32, 1 where sampled.
        image: zero-filled reconstruction of the density-compensated samples, ``(C, *spatial)``
            (magnitude or real), ``(C, *spatial, 2)`` (complex) or ``(2C, *spatial)``
            (channels: real parts then imaginary parts).
    """

    kspace: NdarrayOrTensor
    mask: NdarrayOrTensor
    image: NdarrayOrTensor


def _spatial_dims(img: torch.Tensor, is_complex: bool) -> int:
    if is_complex:
        if img.ndim not in (4, 5) or img.shape[-1] != 2:
            raise ValueError(
                "a complex image must be (C, H, W[, D], 2) with (real, imaginary) last, "
                f"got shape {tuple(img.shape)}; pass is_complex=False for a real image."
            )
        check_channel_first(img[..., 0], "img")
        return img.ndim - 2
    return check_channel_first(img, "img")


def image_to_kspace(img: NdarrayOrTensor, is_complex: bool = False) -> NdarrayOrTensor:
    """Centred orthonormal FFT of a ``(C, *spatial)`` real or ``(C, *spatial, 2)`` complex image.

    Returns:
        ``(C, *spatial, 2)`` k-space, same container type as ``img``.
    """
    img_t = convert_to_tensor(img, track_meta=False)
    spatial_dims = _spatial_dims(img_t, is_complex)
    check_finite(img_t)
    return fftn_centered(img, spatial_dims=spatial_dims, is_complex=is_complex)


def apply_pattern(kspace: torch.Tensor, pattern: SamplingPattern, compensate: bool = False) -> torch.Tensor:
    """Keep the sampled frequencies of ``(C, *spatial, 2)`` k-space.

    Args:
        compensate: divide each sample by its sampling probability (``pattern.density``), so
            the result is an unbiased estimate of the full k-space.

    Returns:
        ``(C, *spatial, 2)`` tensor, zero at unsampled frequencies.
    """
    weight = torch.as_tensor(pattern.mask, dtype=kspace.dtype, device=kspace.device)
    if compensate:
        density = torch.as_tensor(pattern.density, dtype=kspace.dtype, device=kspace.device)
        weight = torch.where(weight > 0, weight / density, torch.zeros_like(weight))
    return kspace * weight[None, ..., None]


def reconstruct(kspace: NdarrayOrTensor, output: str = "magnitude") -> NdarrayOrTensor:
    """Inverse centred FFT of ``(C, *spatial, 2)`` k-space (zero-filled if undersampled).

    Args:
        kspace: ``(C, H, W[, D], 2)`` centred k-space.
        output: ``"magnitude"`` (``(C, *spatial)``, >= 0), ``"real"`` (real part; exact for a
            real image under a Hermitian-symmetric mask), ``"complex"`` (``(C, *spatial, 2)``)
            or ``"channels"`` (``(2C, *spatial)``: real parts, then imaginary parts, the
            layout networks take, see :mod:`medden.core.fourier`).
    """
    if output not in RECON_OUTPUTS:
        raise ValueError(f"output must be one of {RECON_OUTPUTS}, got {output!r}.")
    spatial_dims = kspace.ndim - 2
    image = ifftn_centered(kspace, spatial_dims=spatial_dims, is_complex=True)
    if output == "complex":
        return image
    if output == "channels":
        image_t = convert_to_tensor(image, track_meta=False)
        return convert_to_dst_type(torch.cat([image_t[..., 0], image_t[..., 1]], dim=0), image)[0]
    if output == "real":
        return image[..., 0]
    return (image[..., 0] ** 2 + image[..., 1] ** 2) ** 0.5


class RandKspaceUndersample(Randomizable, Transform):
    """Simulate an undersampled acquisition of an image.

    Args:
        mask: a mask function, or its name in :data:`~medden.transforms.kspace_masks.KSPACE_MASKS`.
        mask_kwargs: keyword arguments for a mask given by name.
        is_complex: the input is ``(C, *spatial, 2)`` complex instead of ``(C, *spatial)`` real.
        output: zero-filled output, see :func:`reconstruct`. Noise2Noise on real magnitude
            images with the radial mask uses ``"real"``; complex data for a network uses
            ``"channels"``.

    ``__call__(img)`` returns :class:`Undersampled` in ``img``'s container type (a
    ``MetaTensor`` keeps its meta on every output).

    Example:
        >>> import numpy as np
        >>> undersample = RandKspaceUndersample("random_lines", {"acceleration": 4}).set_random_state(0)
        >>> kspace, mask, image = undersample(np.ones((1, 64, 64), np.float32))
        >>> kspace.shape, mask.shape, image.shape
        ((1, 64, 64, 2), (1, 64, 64), (1, 64, 64))
    """

    def __init__(self, mask: str | KspaceMaskFunc = "radial_bernoulli", mask_kwargs: dict | None = None,
                 is_complex: bool = False, output: str = "magnitude") -> None:
        if isinstance(mask, str):
            mask = make_kspace_mask(mask, **(mask_kwargs or {}))
        elif not isinstance(mask, KspaceMaskFunc):
            raise TypeError(f"mask must be a mask name or a KspaceMaskFunc, got {type(mask).__name__}.")
        if output not in RECON_OUTPUTS:
            raise ValueError(f"output must be one of {RECON_OUTPUTS}, got {output!r}.")
        self.mask_func = mask
        self.is_complex = is_complex
        self.output = output
        self.pattern: SamplingPattern | None = None

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        self.mask_func.set_random_state(seed, state)
        return self

    def randomize(self, spatial_shape) -> None:
        """Draw a new sampling pattern for ``spatial_shape``."""
        self.pattern = self.mask_func(spatial_shape)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> Undersampled:
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        spatial_dims = _spatial_dims(img_t, self.is_complex)
        spatial = tuple(img_t.shape[1:1 + spatial_dims])
        if randomize:
            self.randomize(spatial)
        if self.pattern is None:
            raise RuntimeError("RandKspaceUndersample needs a pattern: call randomize(spatial_shape) first.")
        img_t = img_t.to(torch.float64 if img_t.dtype == torch.float64 else torch.float32)
        full = image_to_kspace(img_t, self.is_complex)
        kspace = apply_pattern(full, self.pattern)
        image = reconstruct(apply_pattern(full, self.pattern, compensate=True), self.output)
        mask = torch.broadcast_to(torch.as_tensor(self.pattern.mask), spatial)[None].clone()
        return Undersampled(*(convert_to_dst_type(x, img, dtype=x.dtype)[0] for x in (kspace, mask, image)))


class RandKspaceNoise(RandCorruption):
    """Radial variable-density undersampling of a real image, as an image-domain corruption.

    ``y = Re(IFFT(M * FFT(x) / m))``: the zero-filled, density-compensated reconstruction of
    a :class:`~medden.transforms.kspace_masks.RadialBernoulliMask` acquisition (Hermitian
    symmetric, so the reconstruction of a real image is real; the "real" output of
    :func:`reconstruct`). The level is the mask's ``edge_probability``: 0.025 keeps about 10%
    of a 256 x 256 k-space (the Noise2Noise MRI protocol). Each draw makes a new pattern from
    the instance's own generator. The artefacts are aliasing, not independent pixel noise,
    and the output can be negative.

    Args:
        edge_probability_range: ``(low, high)`` keep probability at the k-space edge, in
            (0, 1], or one number.
        prob: probability of applying.

    Example:
        >>> import numpy as np
        >>> noise = RandKspaceNoise(0.025).set_random_state(0)
        >>> noise(np.ones((1, 64, 64), np.float32)).shape
        (1, 64, 64)
    """

    level_name = "edge_probability"
    level_bounds = (0.0, 1.0)

    def __init__(self, edge_probability_range: tuple[float, float] | float = N2N_MRI_EDGE_PROBABILITY,
                 prob: float = 1.0) -> None:
        super().__init__(edge_probability_range, prob)
        if self.level_range[0] <= 0:
            raise ValueError(f"edge_probability_range must be > 0, got {edge_probability_range!r}; "
                             "0.025 keeps about 10% of k-space.")

    def _draw_field(self, img: torch.Tensor, level: float) -> SamplingPattern:
        mask = RadialBernoulliMask(level, density_compensation=True)
        mask.set_random_state(state=self.R)
        return mask(tuple(img.shape[1:]))

    def _corrupt(self, img, level, field):
        return reconstruct(apply_pattern(image_to_kspace(img), field, compensate=True), "real"), None


class RandKspacePair(RandKspaceUndersample):
    """Two independent undersamplings of one image (Noise2Noise for MRI).

    Each realisation draws its own pattern from its own state: the draws are independent.

    Args:
        target_mask: mask function (or name) for the target; None uses ``mask`` (Noise2Noise),
            ``"full"`` gives a fully sampled target, i.e. the clean image (Noise2Clean with
            everything else unchanged).
        target_mask_kwargs: keyword arguments for a target mask given by name.
        Other arguments: see :class:`RandKspaceUndersample`.

    ``__call__(img)`` returns ``(input, target)``, both :class:`Undersampled`.
    """

    def __init__(self, mask: str | KspaceMaskFunc = "radial_bernoulli", mask_kwargs: dict | None = None,
                 is_complex: bool = False, output: str = "magnitude", target_mask: str | KspaceMaskFunc | None = None,
                 target_mask_kwargs: dict | None = None) -> None:
        super().__init__(mask, mask_kwargs, is_complex, output)
        self.target = None
        if target_mask is not None:
            self.target = RandKspaceUndersample(target_mask, target_mask_kwargs, is_complex, output)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        if self.target is not None:  # its own stream, derived from the input's generator
            self.target.set_random_state(int(self.mask_func.R.randint(0, 2**31 - 1)))
        return self

    def __call__(self, img: NdarrayOrTensor) -> tuple[Undersampled, Undersampled]:  # always draws twice
        second = super().__call__ if self.target is None else self.target
        return super().__call__(img), second(img)


class RandKspaceUndersampled(RandArrayTwin):
    """Dictionary twin of :class:`RandKspaceUndersample`: one source key to three output keys.

    Args:
        keys: the one key holding the image.
        kspace_key, mask_key, image_key: where the k-space, mask and zero-filled image go.
        Other arguments: see :class:`RandKspaceUndersample`.
    """

    def __init__(self, keys: KeysCollection, mask: str | KspaceMaskFunc = "radial_bernoulli",
                 mask_kwargs: dict | None = None, is_complex: bool = False, output: str = "magnitude",
                 kspace_key: str = Keys.KSPACE, mask_key: str = Keys.KSPACE_MASK,
                 image_key: str = Keys.ZERO_FILLED, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"keys must name exactly one source image, got {self.keys!r}.")
        self.array_transform = self._array_class(mask, mask_kwargs, is_complex, output)
        self.output_keys = (kspace_key, mask_key, image_key)

    _array_class = RandKspaceUndersample

    def store(self, data: dict[Hashable, object], key: Hashable, result: object) -> None:
        data.update(zip(self.output_keys, result))


class RandKspacePaird(RandKspaceUndersampled):
    """Dictionary twin of :class:`RandKspacePair`.

    Writes the input realisation under ``kspace_key``/``mask_key``/``image_key`` and the
    independent target realisation under ``target_kspace_key``/``target_mask_key``/
    ``target_image_key``. ``target_mask="full"`` makes the target the clean image.
    """

    _array_class = RandKspacePair

    def __init__(self, keys: KeysCollection, mask: str | KspaceMaskFunc = "radial_bernoulli",
                 mask_kwargs: dict | None = None, is_complex: bool = False, output: str = "magnitude",
                 target_mask: str | KspaceMaskFunc | None = None, target_mask_kwargs: dict | None = None,
                 kspace_key: str = Keys.KSPACE, mask_key: str = Keys.KSPACE_MASK,
                 image_key: str = Keys.ZERO_FILLED, target_kspace_key: str = Keys.TARGET_KSPACE,
                 target_mask_key: str = Keys.TARGET_KSPACE_MASK, target_image_key: str = Keys.TARGET_ZERO_FILLED,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, mask, mask_kwargs, is_complex, output, kspace_key, mask_key, image_key,
                         allow_missing_keys)
        self.array_transform = RandKspacePair(mask, mask_kwargs, is_complex, output, target_mask,
                                              target_mask_kwargs)
        self.target_keys = (target_kspace_key, target_mask_key, target_image_key)

    def store(self, data: dict[Hashable, object], key: Hashable, result: object) -> None:
        first, second = result
        data.update(zip(self.output_keys, first))
        data.update(zip(self.target_keys, second))


RandKspaceUndersampleD = RandKspaceUndersampleDict = RandKspaceUndersampled
RandKspacePairD = RandKspacePairDict = RandKspacePaird
