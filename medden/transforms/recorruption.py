"""Recorruption of an already noisy image: Recorrupted-to-Recorrupted pairs and extra Poisson-Gaussian noise.

* :class:`R2RPair` turns one noisy image ``y`` into the pair of Recorrupted-to-Recorrupted
  (Pang et al. 2021), ``(y + alpha * sigma * z, y - sigma * z / alpha)``, the training pair of
  ``medden denoise --fit``.
* :class:`RandExtraPoissonGaussianNoise` is the corruption that makes ``y'`` from a
  Poisson-Gaussian ``y`` for Noisier2Noise-style recorruption (see
  :class:`~medden.transforms.pairs.Recorrupt`), where ``y`` may be negative.

Images follow the package convention ``(C, H, W[, D])`` (see :mod:`medden`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from medden.core.keys import Keys
from medden.core.noise_estimation import wavelet_noise_sigma
from medden.core.validation import check_channel_first, check_finite, check_positive, check_range
from medden.transforms.corruption import RandCorruption, RandPoissonGaussianNoise
from medden.transforms.corruption_dict import RandCorruptiond
from medden.transforms.pairs import CorruptedPair

__all__ = [
    "R2RPair",
    "R2RPaird", "R2RPairD", "R2RPairDict",
    "RandExtraPoissonGaussianNoise",
    "RandExtraPoissonGaussianNoised", "RandExtraPoissonGaussianNoiseD", "RandExtraPoissonGaussianNoiseDict",
]

#: upper bound of the torch seed drawn from a numpy ``RandomState`` passed to ``set_random_state``
_SEED_BOUND = 2**31


class R2RPair(Randomizable, Transform):
    """Recorrupted-to-Recorrupted pair from one noisy image (Pang et al. 2021).

    For a noisy ``y`` with Gaussian noise of std ``sigma`` and one draw ``z ~ N(0, 1)`` per
    pixel and channel::

        input = y + alpha * sigma * z,        target = y - sigma * z / alpha.

    **Input and target share one draw** ``z``: that is what makes their noises independent
    for Gaussian noise (the covariance ``sigma**2 - sigma**2`` cancels), so the mean squared
    error of ``f(input)`` against ``target`` has the same minimiser as against the clean
    image. Signal-dependent noise is approximated by its average level.

    The draw comes from the transform's own ``torch.Generator`` (seeded by
    :meth:`set_random_state`, never the global generator), so a seed gives the same ``z``
    as ``torch.manual_seed(seed); torch.randn(...)``, which is how ``--fit`` drew it before
    it was a transform. ``randomize(img)`` draws, :meth:`apply` is deterministic.

    Args:
        alpha: recorruption strength, > 0 (0.5 as in R2R).

    Returns (from ``__call__``):
        :class:`~medden.transforms.pairs.CorruptedPair` ``(input, target, None, None)``, both
        ``(C, H, W[, D])`` float in ``img``'s container type.

    Example:
        >>> import numpy as np
        >>> pair = R2RPair(alpha=0.5).set_random_state(0)
        >>> y = np.full((1, 4, 4), 0.5, np.float32)
        >>> inputs, target, _, _ = pair(y, sigma=0.1)
        >>> bool(np.allclose((inputs - y) * -4.0, target - y))  # one z: target noise = -input noise / alpha**2
        True
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, alpha: float = 0.5) -> None:
        self.alpha = check_positive(alpha, "alpha")
        self.generator = torch.Generator()
        self.z: torch.Tensor | None = None
        self.set_random_state()

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> R2RPair:
        """Seed the draws: ``seed`` seeds the generator directly; ``state`` draws a seed."""
        super().set_random_state(seed, state)
        self.generator.manual_seed(int(seed) if seed is not None else int(self.R.randint(_SEED_BOUND)))
        return self

    def randomize(self, img: NdarrayOrTensor) -> None:
        """Draw ``z ~ N(0, 1)`` (float32) with ``img``'s shape."""
        self.z = torch.randn(tuple(img.shape), generator=self.generator, dtype=torch.float32)

    def apply(self, img: NdarrayOrTensor, sigma: float) -> CorruptedPair:
        """The pair for the last draw and noise level ``sigma`` >= 0, in ``img``'s units."""
        if self.z is None or tuple(self.z.shape) != tuple(img.shape):
            raise RuntimeError(f"R2RPair.apply() needs a draw for shape {tuple(img.shape)}: call randomize(img) first.")
        img_t = convert_to_tensor(img, track_meta=get_track_meta() and isinstance(img, MetaTensor))  # meta only if any
        img_t = img_t.to(torch.float64 if img_t.dtype == torch.float64 else torch.float32)
        scaled = self.z.to(img_t.device) * torch.tensor(sigma, dtype=torch.float32, device=img_t.device)
        inputs, target = img_t + self.alpha * scaled, img_t - scaled / self.alpha
        return CorruptedPair(*(convert_to_dst_type(t, img, dtype=t.dtype)[0] for t in (inputs, target)), None, None)

    def __call__(self, img: NdarrayOrTensor, sigma: float | None = None, randomize: bool = True) -> CorruptedPair:
        """Draw (unless ``randomize=False``) and make the pair.

        Args:
            img: ``(C, H, W[, D])`` noisy image, numpy or torch.
            sigma: its noise std, >= 0; None estimates it from ``img``
                (:func:`~medden.core.noise_estimation.wavelet_noise_sigma`, 2D images).
            randomize: draw a new ``z`` first.
        """
        check_channel_first(img)
        check_finite(img)
        if sigma is None:
            sigma = float(wavelet_noise_sigma(convert_to_tensor(img, track_meta=False).float()[None])[0])
        sigma = check_range(sigma, "sigma", 0.0)[0]
        if randomize:
            self.randomize(img)
        return self.apply(img, sigma)


class R2RPaird(MapTransform, Randomizable):
    """Dictionary twin of :class:`R2RPair`: reads one noisy image, writes input and target.

    Args:
        keys: the one key of the noisy ``(C, H, W[, D])`` image.
        alpha: see :class:`R2RPair`.
        sigma_key: key of the image's noise std (a number); None or absent estimates it.
        input_key, target_key: where the pair goes.
    """

    backend = R2RPair.backend

    def __init__(self, keys: KeysCollection, alpha: float = 0.5, sigma_key: str | None = Keys.NOISE_SIGMA,
                 input_key: str = Keys.INPUT, target_key: str = Keys.TARGET, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"keys must name exactly one noisy image, got {self.keys!r}.")
        self.pair = R2RPair(alpha)
        self.sigma_key, self.input_key, self.target_key = sigma_key, input_key, target_key

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> R2RPaird:
        self.pair.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        sigma = d.get(self.sigma_key) if self.sigma_key is not None else None
        for key in self.key_iterator(d):
            d[self.input_key], d[self.target_key], _, _ = self.pair(d[key], None if sigma is None else float(sigma))
        return d


class RandExtraPoissonGaussianNoise(RandPoissonGaussianNoise):
    """Extra Poisson-Gaussian noise on a noisy image: ``y' = y + [Poisson(peak y+) / peak - y+] + s n'``.

    ``y+ = max(y, 0)``: read noise makes ``y`` negative in dark regions, where Poisson counts
    do not exist, so negative values are allowed. Where ``y >= 0`` this is
    :class:`~medden.transforms.corruption.RandPoissonGaussianNoise` applied to ``y``; the extra
    noise is zero-mean with variance ``y+ / peak + s**2``, about that of the acquisition
    noise, so the Noisier2Noise ratio is alpha = 1. Arguments as for the parent class.
    Inputs and outputs: ``(C, H, W[, D])`` float.
    """

    def _check(self, img: torch.Tensor) -> None:
        RandCorruption._check(self, img)  # shape and finiteness only: negative values are allowed

    def _draw_field(self, img: torch.Tensor, level: float):
        return super()._draw_field(img.clamp_min(0), level)

    def _corrupt(self, img, level, field):
        positive = img.clamp_min(0)
        noisy, _ = super()._corrupt(positive, level, field)
        return img + (noisy - positive), None


class RandExtraPoissonGaussianNoised(RandCorruptiond):
    """Dictionary twin of :class:`RandExtraPoissonGaussianNoise` (an independent draw per key)."""

    def __init__(self, keys: KeysCollection, peak_range, read_sigma_range=(0.0, 0.0), prob: float = 1.0,
                 allow_missing_keys: bool = False):
        inner = RandExtraPoissonGaussianNoise(peak_range, read_sigma_range, prob)
        super().__init__(keys, inner, allow_missing_keys=allow_missing_keys)


R2RPairD = R2RPairDict = R2RPaird
RandExtraPoissonGaussianNoiseD = RandExtraPoissonGaussianNoiseDict = RandExtraPoissonGaussianNoised
