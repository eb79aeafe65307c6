"""Random image corruptions (array transforms): Gaussian, Poisson, Poisson-Gaussian, Rician,
Bernoulli, impulse.

Every class here follows one pattern: ``randomize(img, level=None)`` draws the corruption
level (sigma, peak, keep probability, ...) from the configured range and the random field
from the instance's own ``self.R``; ``apply(img)`` is deterministic given that draw;
``corrupt(img)`` returns ``(corrupted, mask)`` and ``__call__`` returns the corrupted image
alone. Images follow the package convention ``(C, H, W[, D])`` (see :mod:`medden`); masks are
``(1, H, W[, D])`` float32, 1 where the pixel still holds its original value.

The text overlay corruption lives in :mod:`medden.transforms.text_overlay`.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from medden.core.validation import (
    check_channel_first,
    check_finite,
    check_non_negative,
    check_probability,
    check_range,
)

__all__ = [
    "RandCorruption",
    "RandGaussianSigmaNoise",
    "RandPoissonNoise",
    "RandBernoulliNoise",
    "RandImpulseNoise",
    "RandRicianSigmaNoise",
    "RandPoissonGaussianNoise",
]


def _float_dtype(img: torch.Tensor) -> torch.dtype:
    return torch.float64 if img.dtype == torch.float64 else torch.float32


class RandCorruption(RandomizableTransform):
    """Base class of medden's random corruptions.

    Subclasses set ``level_name`` and override two hooks: ``_draw_field`` (random numbers for
    one realisation, from ``self.R``) and ``_corrupt`` (deterministic maths given the level
    and field). The drawn level is ``self.level`` and can be fixed by passing ``level`` to
    :meth:`randomize`, which is how :class:`~medden.transforms.pairs.NoisyPair` makes two
    realisations at the same noise level.

    Args:
        level_range: ``(low, high)`` range the level is drawn uniformly from, or one number.
        prob: probability of applying the corruption at all (MONAI convention). When it is
            not applied the image is returned as float and the mask is all ones.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]
    #: what the level means, used in error messages
    level_name: ClassVar[str] = "level"
    #: bounds a level must respect
    level_bounds: ClassVar[tuple[float, float]] = (0.0, np.inf)
    #: True when the corruption leaves pixels that no longer hold their original value
    produces_mask: ClassVar[bool] = False

    def __init__(self, level_range: tuple[float, float] | float, prob: float = 1.0) -> None:
        RandomizableTransform.__init__(self, check_probability(prob, "prob"))
        self.R = np.random.RandomState()  # own generator, never MONAI's shared class default
        self.level_range = check_range(level_range, f"{self.level_name}_range", *self.level_bounds)
        self.level: float | None = None
        self.field: Any = None

    def randomize(self, img: torch.Tensor, level: float | None = None) -> None:
        """Draw whether to apply, the level (unless given) and the random field for ``img``."""
        super().randomize(None)
        self.level, self.field = None, None
        if not self._do_transform:
            return
        low, high = self.level_range
        self.level = float(self.R.uniform(low, high)) if level is None else float(level)
        self.field = self._draw_field(img, self.level)

    @abstractmethod
    def _draw_field(self, img: torch.Tensor, level: float) -> Any:
        """Draw the random numbers for one realisation at ``level`` (uses ``self.R`` only)."""

    @abstractmethod
    def _corrupt(self, img: torch.Tensor, level: float, field: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Deterministic corruption: ``(C, *spatial)`` float in, ``(corrupted, mask or None)`` out."""

    def _check(self, img: torch.Tensor) -> None:
        check_channel_first(img)
        check_finite(img)

    def apply(self, img: NdarrayOrTensor) -> tuple[NdarrayOrTensor, NdarrayOrTensor | None]:
        """Apply the last draw to ``img`` without drawing anything new.

        Returns:
            ``(corrupted, mask)``: the corrupted image with ``img``'s container type and a
            float dtype, and for mask-producing corruptions a ``(1, *spatial)`` float32 mask
            (else None).
        """
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        img_t = img_t.to(_float_dtype(img_t))
        if not self._do_transform:
            ones = torch.ones((1, *img_t.shape[1:]), dtype=torch.float32) if self.produces_mask else None
            return self._to_input_type(img_t, img, ones)
        if self.field is None:
            raise RuntimeError(f"{type(self).__name__}.apply() needs a draw: call randomize(img) first.")
        out, mask = self._corrupt(img_t, self.level, self.field)
        return self._to_input_type(out, img, mask)

    @staticmethod
    def _to_input_type(out: torch.Tensor, img: NdarrayOrTensor, mask: torch.Tensor | None):
        out_c, *_ = convert_to_dst_type(out, img, dtype=out.dtype)
        if mask is None:
            return out_c, None
        mask_c, *_ = convert_to_dst_type(mask, img, dtype=torch.float32)
        return out_c, mask_c

    def corrupt(
        self, img: NdarrayOrTensor, randomize: bool = True, level: float | None = None
    ) -> tuple[NdarrayOrTensor, NdarrayOrTensor | None]:
        """Draw (unless ``randomize=False``) and apply one corruption.

        Args:
            img: ``(C, H, W[, D])`` real image, numpy or torch.
            randomize: draw a new level and field first.
            level: fix the level instead of drawing it from ``level_range``.

        Returns:
            ``(corrupted, mask)`` as described in :meth:`apply`.
        """
        img_t = convert_to_tensor(img, track_meta=False)
        self._check(img_t)
        if randomize:
            self.randomize(img_t.to(_float_dtype(img_t)), level=level)
        return self.apply(img)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Return the corrupted ``img`` (same container type, float dtype, same shape)."""
        return self.corrupt(img, randomize=randomize)[0]


class RandGaussianSigmaNoise(RandCorruption):
    """Additive white Gaussian noise with sigma drawn uniformly from a range.

    ``y = x + sigma * n``, ``n ~ N(0, 1)`` i.i.d. per pixel and channel. Unlike
    ``monai.transforms.RandGaussianNoise`` (sigma drawn from ``[0, std]``) the range has a
    lower bound, as the Noise2Noise and recorruption protocols need (e.g. ``(3/255, 50/255)``).

    Args:
        sigma_range: ``(low, high)`` standard deviation in image units, or one number.
        prob: probability of applying.

    Example:
        >>> import numpy as np
        >>> t = RandGaussianSigmaNoise(sigma_range=(0.1, 0.1)).set_random_state(0)
        >>> t(np.zeros((1, 4, 4), np.float32)).shape
        (1, 4, 4)
    """

    level_name = "sigma"

    def __init__(self, sigma_range: tuple[float, float] | float, prob: float = 1.0) -> None:
        super().__init__(sigma_range, prob)

    def _draw_field(self, img: torch.Tensor, level: float) -> np.ndarray:
        return self.R.standard_normal(tuple(img.shape)).astype(np.float32)

    def _corrupt(self, img, level, field):
        return img + level * torch.as_tensor(field, dtype=img.dtype, device=img.device), None


class RandPoissonNoise(RandCorruption):
    """Poisson (shot) noise: ``y = Poisson(peak * x) / peak`` with ``peak`` drawn from a range.

    ``x`` must be non-negative (nominally in [0, 1], where ``peak`` is the expected photon
    count of a pixel of value 1). The result is unbiased, ``E[y] = x``, with variance
    ``x / peak``: smaller peaks are noisier. The Noise2Noise protocol uses peaks in
    ``[0.001, 50]`` for training and 30 for testing.

    Args:
        peak_range: ``(low, high)`` peak photon count, > 0, or one number.
        prob: probability of applying.
    """

    level_name = "peak"

    def __init__(self, peak_range: tuple[float, float] | float, prob: float = 1.0) -> None:
        super().__init__(peak_range, prob)
        if self.level_range[0] <= 0:
            raise ValueError(f"peak_range must be > 0, got {peak_range!r}.")

    def _check(self, img: torch.Tensor) -> None:
        super()._check(img)
        check_non_negative(img)

    def _draw_field(self, img: torch.Tensor, level: float) -> np.ndarray:
        # Poisson counts depend on the intensities, so the realisation is drawn here.
        return self.R.poisson(img.cpu().numpy().astype(np.float64) * level).astype(np.float32)

    def _corrupt(self, img, level, field):
        counts = torch.as_tensor(field, dtype=img.dtype, device=img.device)
        if counts.shape != img.shape:
            raise ValueError(f"the Poisson draw was made for shape {tuple(counts.shape)}, got {tuple(img.shape)}.")
        return counts / level, None


class RandPoissonGaussianNoise(RandPoissonNoise):
    """Poisson-Gaussian noise, the X-ray/CT detector model: shot noise plus read-out noise.

    ``y = Poisson(peak * x) / peak + s * n``, ``n ~ N(0, 1)``, with ``peak`` drawn from
    ``peak_range`` (the level, shared by Noise2Noise pairs) and the read-out standard deviation
    ``s`` from ``read_sigma_range`` with every realisation. Variance ``x / peak + s**2``.

    Args:
        peak_range: ``(low, high)`` expected photon count of a pixel of value 1, > 0.
        read_sigma_range: ``(low, high)`` read-out noise standard deviation, image units.
        prob: probability of applying.
    """

    def __init__(self, peak_range: tuple[float, float] | float,
                 read_sigma_range: tuple[float, float] | float = (0.0, 0.0), prob: float = 1.0) -> None:
        super().__init__(peak_range, prob)
        self.read_sigma_range = check_range(read_sigma_range, "read_sigma_range", 0.0, np.inf)

    def _draw_field(self, img: torch.Tensor, level: float) -> tuple[np.ndarray, np.ndarray, float]:
        counts = super()._draw_field(img, level)
        read_sigma = float(self.R.uniform(*self.read_sigma_range))
        return counts, self.R.standard_normal(tuple(img.shape)).astype(np.float32), read_sigma

    def _corrupt(self, img, level, field):
        counts, read_noise, read_sigma = field
        shot, _ = super()._corrupt(img, level, counts)
        return shot + read_sigma * torch.as_tensor(read_noise, dtype=img.dtype, device=img.device), None


class RandRicianSigmaNoise(RandCorruption):
    """Rician noise of magnitude MR: ``y = |x + sigma * (n1 + i n2)|``, ``n1, n2 ~ N(0, 1)``.

    The same model as ``monai.transforms.RandRicianNoise(std=sigma, sample_std=False,
    relative=False)``, with sigma drawn from a range that has a lower bound and the draw
    exposed as a level so that Noise2Noise pairs share it. Non-negative output; where
    ``x = 0`` (air) it follows the Rayleigh law with mean ``sigma * sqrt(pi / 2)``.

    Args:
        sigma_range: ``(low, high)`` standard deviation of each Gaussian channel, image units.
        prob: probability of applying.
    """

    level_name = "sigma"

    def __init__(self, sigma_range: tuple[float, float] | float, prob: float = 1.0) -> None:
        super().__init__(sigma_range, prob)

    def _draw_field(self, img: torch.Tensor, level: float) -> np.ndarray:
        return self.R.standard_normal((2, *img.shape)).astype(np.float32)

    def _corrupt(self, img, level, field):
        real, imag = torch.as_tensor(field, dtype=img.dtype, device=img.device) * level
        return torch.sqrt((img + real) ** 2 + imag**2), None


class RandBernoulliNoise(RandCorruption):
    """Multiplicative Bernoulli noise: each pixel is kept with probability ``p``, else zeroed.

    ``y = x * m``, ``m ~ Bernoulli(p)`` per pixel, shared by all channels (a pixel is missing in
    every channel at once), with ``p`` drawn from ``keep_prob_range``. The mask ``m`` is
    returned by :meth:`corrupt` so a masked loss can ignore missing pixels. Noise2Noise quotes
    the *drop* probability ``1 - p`` (train ``[0, 0.95]``, test 0.5).

    Args:
        keep_prob_range: ``(low, high)`` keep probability in [0, 1], or one number.
        prob: probability of applying.
    """

    level_name = "keep_prob"
    level_bounds = (0.0, 1.0)
    produces_mask = True
    #: missing pixels are exactly zero, so an observed mask can be recovered from ``y != 0``
    missing_is_zero: ClassVar[bool] = True

    def __init__(self, keep_prob_range: tuple[float, float] | float, prob: float = 1.0) -> None:
        super().__init__(keep_prob_range, prob)

    def _draw_field(self, img: torch.Tensor, level: float) -> np.ndarray:
        return self.R.random_sample((1, *img.shape[1:])) < level

    def _corrupt(self, img, level, field):
        mask = torch.as_tensor(field, device=img.device).to(torch.float32)
        return img * mask.to(img.dtype), mask


class RandImpulseNoise(RandCorruption):
    """Random-valued impulse noise: each pixel is replaced, with probability ``p``, by a
    value drawn uniformly from ``value_range``.

    A replaced pixel gets a new random value in every channel (random colours for RGB, as in
    Noise2Noise's impulse experiment, which trains with the annealed L0 loss). ``p`` is drawn
    from ``replace_prob_range``. The mask returned by :meth:`corrupt` is 1 where the pixel was
    kept.

    Args:
        replace_prob_range: ``(low, high)`` replacement probability in [0, 1], or one number.
        value_range: ``(low, high)`` range of the impulse values, in image units.
        prob: probability of applying.
    """

    level_name = "replace_prob"
    level_bounds = (0.0, 1.0)
    produces_mask = True

    def __init__(
        self,
        replace_prob_range: tuple[float, float] | float,
        value_range: tuple[float, float] = (0.0, 1.0),
        prob: float = 1.0,
    ) -> None:
        super().__init__(replace_prob_range, prob)
        self.value_range = check_range(value_range, "value_range")

    def _draw_field(self, img: torch.Tensor, level: float) -> tuple[np.ndarray, np.ndarray]:
        replaced = self.R.random_sample((1, *img.shape[1:])) < level
        values = self.R.uniform(*self.value_range, size=tuple(img.shape)).astype(np.float32)
        return replaced, values

    def _corrupt(self, img, level, field):
        replaced, values = (torch.as_tensor(f, device=img.device) for f in field)
        out = torch.where(replaced, values.to(img.dtype), img)
        return out, (~replaced).to(torch.float32)
