"""k-space sampling patterns: *making* a mask, apart from applying it (see ``kspace.py``).

A mask function is a small object with its own seeded generator ``self.R``. Calling it with a
spatial shape returns a :class:`SamplingPattern`. Subclasses override one hook, ``_sample``.
Coordinates follow the centred layout of ``monai.data.fft_utils.fftn_centered``: DC sits at
index ``n // 2`` of every spatial axis. Cartesian line masks select columns (the last spatial
axis is the phase-encode direction, as in fastMRI) and are returned with size-1 axes
elsewhere, broadcastable to the spatial shape.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from monai.transforms import Randomizable

from medden.core.protocols import N2N_MRI_EDGE_PROBABILITY
from medden.core.validation import check_number, check_positive, check_probability, lookup_by_name

__all__ = [
    "SamplingPattern",
    "KspaceMaskFunc",
    "FullMask",
    "RadialBernoulliMask",
    "CartesianLineMask",
    "RandomLineMask",
    "EquispacedLineMask",
    "PoissonDiscMask",
    "KSPACE_MASKS",
    "make_kspace_mask",
]


@dataclass(frozen=True)
class SamplingPattern:
    """Where k-space was sampled and with what probability.

    Attributes:
        mask: float32 array of 0/1, the spatial shape or broadcastable to it; 1 = sampled.
        density: float32 array, same shape: the probability each location is sampled, used
            to divide sampled values (density compensation); all ones means no compensation.
    """

    mask: np.ndarray
    density: np.ndarray

    def sampled_fraction(self, spatial_shape: Sequence[int]) -> float:
        """Fraction of the ``spatial_shape`` grid that is sampled (1 / acceleration)."""
        return float(np.broadcast_to(self.mask, tuple(spatial_shape)).mean())


def _mirror_indices(n: int) -> np.ndarray:
    """Index of frequency ``-k`` for every index of a centred axis of length ``n``."""
    return (2 * (n // 2) - np.arange(n)) % n


def _centred_radius(shape: tuple[int, ...]) -> np.ndarray:
    axes = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    return np.sqrt(sum(a.astype(np.float64) ** 2 for a in axes))


class KspaceMaskFunc(Randomizable, ABC):
    """Base of the mask functions: validates the shape and packs the hook's result.

    Args:
        density_compensation: if True the pattern's ``density`` is the true sampling
            probability, so applying the mask divides sampled values by it (an unbiased
            zero-filled estimate); if False it is all ones.
    """

    #: number of trailing spatial axes the pattern covers (None: all of them)
    mask_axes: int | None = None

    def __init__(self, density_compensation: bool = False) -> None:
        self.R = np.random.RandomState()
        self.density_compensation = bool(density_compensation)

    def randomize(self, data=None) -> None:  # every call draws a new pattern from self.R
        return None

    def __call__(self, spatial_shape: Sequence[int]) -> SamplingPattern:
        """Draw a pattern for a ``spatial_shape`` of 2 or 3 positive ints."""
        shape = tuple(int(s) for s in spatial_shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ValueError(f"spatial_shape must be 2 or 3 positive sizes, got {tuple(spatial_shape)!r}.")
        axes = len(shape) if self.mask_axes is None else self.mask_axes
        mask, density = self._sample(shape[-axes:])
        full = (1,) * (len(shape) - axes) + mask.shape
        density = density if self.density_compensation else np.ones_like(density)
        return SamplingPattern(mask.reshape(full).astype(np.float32), density.reshape(full).astype(np.float32))

    @abstractmethod
    def _sample(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(mask, probability)`` arrays for the axes this function covers."""


class FullMask(KspaceMaskFunc):
    """Every frequency sampled (acceleration 1): for clean-target baselines and tests."""

    def _sample(self, shape):
        return np.ones(shape, bool), np.ones(shape)


class RadialBernoulliMask(KspaceMaskFunc):
    """Noise2Noise's radial variable-density Bernoulli mask, Hermitian-symmetric.

    Frequency pairs ``(k, -k)`` are kept together with probability
    ``m(r) = edge_probability ** (r / edge_radius)`` (``r`` the distance from DC in pixels),
    so the zero-filled reconstruction of a real image stays real. With the paper's values
    (0.025 at radius 127 of a 256^2 image) about 10% of k-space is kept. Density
    compensation (dividing by ``m``) is on by default, as in the paper.

    Args:
        edge_probability: keep probability at ``r = edge_radius``, in (0, 1].
        edge_radius: radius in pixels where ``m = edge_probability``; default
            ``min(shape) // 2 - 1``.
        density_compensation: divide sampled values by their keep probability.
    """

    def __init__(self, edge_probability: float = N2N_MRI_EDGE_PROBABILITY, edge_radius: float | None = None,
                 density_compensation: bool = True) -> None:
        super().__init__(density_compensation)
        self.edge_probability = check_number(edge_probability, "edge_probability", 0.0, 1.0, open_minimum=True,
                                             what="a probability")
        self.edge_radius = None if edge_radius is None else check_positive(edge_radius, "edge_radius")

    def _sample(self, shape):
        radius = self.edge_radius or max(min(shape) // 2 - 1, 1)
        pair_prob = np.minimum(self.edge_probability ** (_centred_radius(shape) / radius), 1.0)
        mirror = np.ix_(*[_mirror_indices(n) for n in shape])
        u = self.R.random_sample(shape)
        u_pair = np.maximum(u, u[mirror])  # symmetric; P(u_pair < sqrt(m)) = m off the self-pairs
        keep = u_pair < np.sqrt(pair_prob)
        self_paired = np.ones(shape, bool)
        for axis, n in enumerate(shape):
            fixed = _mirror_indices(n) == np.arange(n)
            self_paired &= fixed.reshape([-1 if a == axis else 1 for a in range(len(shape))])
        density = np.where(self_paired, np.sqrt(pair_prob), pair_prob)
        return keep, density


class CartesianLineMask(KspaceMaskFunc):
    """fastMRI-style 1-D Cartesian masks: a fully sampled centre plus outer lines (columns).

    Subclasses override ``_sample_outer`` to choose the outer lines. The centre holds
    ``round(n * center_fraction)`` lines; the outer lines are chosen so that the expected
    sampled fraction is ``1 / acceleration``.

    Args:
        center_fraction: fraction of lines in the fully sampled centre, in (0, 1].
        acceleration: overall acceleration, >= 1.
        density_compensation: divide outer lines by their sampling probability.
    """

    mask_axes = 1

    def __init__(self, center_fraction: float = 0.08, acceleration: float = 4.0,
                 density_compensation: bool = False) -> None:
        super().__init__(density_compensation)
        self.center_fraction = check_probability(center_fraction, "center_fraction")
        self.acceleration = check_number(acceleration, "acceleration", 1.0)
        if self.center_fraction * self.acceleration > 1:
            raise ValueError(
                f"center_fraction={center_fraction} holds more than 1/acceleration "
                f"(acceleration={acceleration}) of the lines; lower one of them."
            )

    def _sample(self, shape):
        (n,) = shape
        n_center = max(1, int(round(n * self.center_fraction)))
        center = np.zeros(n, bool)
        start = (n - n_center + 1) // 2
        center[start:start + n_center] = True
        outer, outer_prob = self._sample_outer(n, n_center)
        keep = center | outer
        return keep, np.where(center, 1.0, outer_prob)

    @abstractmethod
    def _sample_outer(self, n: int, n_center: int) -> tuple[np.ndarray, float]:
        """Return the outer lines (bool ``(n,)``) and each outer line's sampling probability."""


class RandomLineMask(CartesianLineMask):
    """Outer lines sampled independently (fastMRI ``RandomMaskFunc``)."""

    def _sample_outer(self, n, n_center):
        prob = min(1.0, max(0.0, (n / self.acceleration - n_center) / max(n - n_center, 1)))
        return self.R.random_sample(n) < prob, prob


class EquispacedLineMask(CartesianLineMask):
    """Outer lines equally spaced from a random offset, spacing set so the overall sampled
    fraction is ``1 / acceleration`` (fastMRI's ``EquispacedMaskFractionFunc``)."""

    def _sample_outer(self, n, n_center):
        wanted = n / self.acceleration - n_center
        if wanted <= 0:
            return np.zeros(n, bool), 0.0
        spacing = max((n - n_center) / wanted, 1.0)
        offset = self.R.uniform(0, spacing)
        lines = np.round(np.arange(offset, n, spacing)).astype(int)
        outer = np.zeros(n, bool)
        outer[lines[lines < n]] = True
        return outer, 1.0 / spacing


class PoissonDiscMask(KspaceMaskFunc):
    """Variable-density Poisson-disc pattern from ``sigpy.mri.poisson``.

    Covers the last two spatial axes (the phase-encode plane of a 3D acquisition; the whole
    plane of a 2D image); a 3D volume is fully sampled along its first spatial axis (readout).
    sigpy searches its density slope until the acceleration is within ``tolerance``. It gives
    no sampling probability, so no density compensation is offered.

    Args:
        acceleration: target acceleration, > 1.
        calibration: fully sampled centre region, in pixels, ``(ky, kz)``.
        crop_corner: leave the k-space corners out, as sigpy does by default.
        tolerance: allowed deviation of the achieved acceleration.
    """

    mask_axes = 2

    def __init__(self, acceleration: float = 4.0, calibration: tuple[int, int] = (0, 0),
                 crop_corner: bool = True, tolerance: float = 0.1) -> None:
        super().__init__(density_compensation=False)
        self.acceleration = check_number(acceleration, "acceleration", 1.0, open_minimum=True,
                                         hint="a Poisson-disc mask must leave some frequencies out")
        self.calibration = tuple(int(c) for c in calibration)
        self.crop_corner = crop_corner
        self.tolerance = check_positive(tolerance, "tolerance")

    def _sample(self, shape):
        import sigpy.mri  # optional heavy import (numba): only when this mask is used

        seed = int(self.R.randint(0, 2**31 - 1))
        try:
            mask = sigpy.mri.poisson(shape, self.acceleration, calib=self.calibration, dtype=np.float32,
                                     crop_corner=self.crop_corner, seed=seed, tol=self.tolerance)
        except ValueError as err:
            raise ValueError(
                f"sigpy could not make a Poisson-disc mask of shape {shape} at acceleration "
                f"{self.acceleration}: {err} Try a larger tolerance or a lower acceleration."
            ) from err
        return mask > 0, np.ones(shape)


KSPACE_MASKS: dict[str, type[KspaceMaskFunc]] = {
    "full": FullMask,
    "radial_bernoulli": RadialBernoulliMask,
    "random_lines": RandomLineMask,
    "equispaced_lines": EquispacedLineMask,
    "poisson_disc": PoissonDiscMask,
}


def make_kspace_mask(name: str, **kwargs) -> KspaceMaskFunc:
    """Build a mask function by name (see :data:`KSPACE_MASKS`), e.g. from a bundle config."""
    return lookup_by_name(KSPACE_MASKS, name, "k-space mask")(**kwargs)
