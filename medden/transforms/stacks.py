"""Slice stacks for 2.5D denoising: a slice and its neighbours along the slice axis, as channels.

A volumetric denoiser sees slice ``k`` with its ``n`` neighbours on each side, ``(2n + 1, H, W)``,
channel ``n`` being slice ``k`` itself. Neighbouring slices carry nearly the same anatomy and
independent noise, which is what BM4D exploits and a 2D denoiser throws away.

* :class:`RandVolumeStack` cuts a stack out of a real ``(1, H, W, D)`` volume around a random
  slice, at a random slice step (1 mm slices read at step 3 look like 3 mm slices), reflected
  at the volume's ends as :func:`stack_indices` does at inference.
* :class:`RandPseudoStack` makes a stack from one 2D image: each neighbour is the image under a
  smooth random deformation (and intensity drift) that grows with its distance from the centre,
  a stand-in for anatomy that changes from slice to slice, for images that come without volumes.
* :class:`NoisyStackPair` noises every slice of a clean stack independently at one level and
  gives the centre slice with another independent realisation as the Noise2Noise target (or the
  clean centre); a share of "lone" stacks repeat one noisy slice, which is what a single image
  becomes at inference, so one network serves both.

Each has a dictionary twin that routes keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_numpy

from medden.core.keys import Keys
from medden.core.validation import check_int, check_probability
from medden.transforms.corruption import RandCorruption
from medden.transforms.twins import RandArrayTwin
from medden.transforms.pairs import CorruptedPair, NoisyPaird, OwnsCorruption, PairToKeys

__all__ = [
    "NoisyStackPair", "RandPseudoStack", "RandVolumeStack", "stack_indices",
    "NoisyStackPaird", "NoisyStackPairD", "NoisyStackPairDict",
    "RandPseudoStackd", "RandPseudoStackD", "RandPseudoStackDict",
    "RandVolumeStackd", "RandVolumeStackD", "RandVolumeStackDict",
]


def stack_indices(depth: int, neighbours: int, centre: int, step: int = 1) -> list[int]:
    """Slice indices of the stack around ``centre``: ``centre + j * step`` for ``j = -n..n``,
    reflected into ``[0, depth)`` at both ends (the edge slice is not repeated, so slice 0's
    neighbour -1 is slice 1); a volume of one slice gives that slice ``2n + 1`` times.

    Example:
        >>> stack_indices(5, 2, 0)
        [2, 1, 0, 1, 2]
        >>> stack_indices(2, 2, 1)
        [1, 0, 1, 0, 1]
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}.")
    if depth == 1:
        return [0] * (2 * neighbours + 1)
    period = 2 * (depth - 1)
    out = []
    for j in range(-neighbours, neighbours + 1):
        index = (centre + j * step) % period
        out.append(index if index < depth else period - index)
    return out


class RandVolumeStack(RandomizableTransform):
    """A ``(2n + 1, H, W)`` stack of a ``(1, H, W, D)`` volume around a random slice.

    The centre slice is uniform over the volume, the slice step uniform over ``steps`` (a step
    of 2 on 1 mm slices mimics 2 mm slices), the order reversed with probability 1/2.

    Args:
        neighbours: ``n``, slices on each side.
        steps: slice steps to draw from, uniformly (repeat a step to weight it; the default draws
            step 1 half the time).
    """

    def __init__(self, neighbours: int = 2, steps: Sequence[int] = (1, 1, 2, 3)) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        self.neighbours = check_int(neighbours, "neighbours", 0)
        self.steps = tuple(check_int(s, "steps[...]") for s in steps)
        self.R = np.random.RandomState()
        self._picks: list[int] = []

    def randomize(self, depth: int) -> None:
        """Draw the centre, the step and the order for a volume of ``depth`` slices."""
        centre, step = int(self.R.randint(depth)), self.steps[self.R.randint(len(self.steps))]
        picks = stack_indices(depth, self.neighbours, centre, step)
        self._picks = picks[::-1] if self.R.rand() < 0.5 else picks

    def __call__(self, volume, randomize: bool = True) -> np.ndarray:
        """``(1, H, W, D)`` in, ``(2n + 1, H, W)`` float32 numpy out."""
        arr = convert_to_numpy(volume, dtype=np.float32)
        if arr.ndim != 4 or arr.shape[0] != 1:
            raise ValueError(f"volume must be (1, H, W, D), got shape {arr.shape}.")
        if randomize:
            self.randomize(arr.shape[-1])
        return np.ascontiguousarray(arr[0][..., self._picks].transpose(2, 0, 1))


class RandPseudoStack(RandomizableTransform):
    """A ``(2n + 1, H, W)`` stack made from one ``(1, H, W)`` image by smooth random deformations.

    Neighbour ``j`` (``j = -n..n``, ``0`` the image itself) is the image resampled at
    ``p + j * a * u(p) + j**2 * b * v(p)`` and multiplied by ``1 + j * c * w(p)``, where ``u``,
    ``v`` are smooth random displacement fields (a 4 x 4 grid of normal vectors, bicubically
    upsampled, largest length 1), ``w`` a smooth field in [-1, 1], and the amplitudes are drawn
    per stack: ``a`` from ``shift_range`` pixels per slice, ``b = a / 4`` at most, ``c`` up to
    ``drift`` per slice. Large ``a`` gives neighbours that share little, like thick slices.

    Args:
        neighbours: ``n``.
        shift_range: ``(low, high)`` pixels of displacement per slice step.
        drift: largest relative intensity change per slice step.
    """

    def __init__(self, neighbours: int = 2, shift_range: tuple[float, float] = (0.0, 1.5), drift: float = 0.03) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        self.neighbours = check_int(neighbours, "neighbours", 0)
        low, high = (float(v) for v in shift_range)
        if not 0 <= low <= high:
            raise ValueError(f"shift_range must be 0 <= low <= high, got {shift_range}.")
        self.shift_range, self.drift = (low, high), float(drift)
        self.R = np.random.RandomState()
        self._fields: tuple[np.ndarray, ...] = ()
        self._amplitudes = (0.0, 0.0, 0.0)

    def randomize(self, data=None) -> None:
        """Draw the two displacement fields, the intensity field and their amplitudes."""
        self._fields = tuple(self.R.standard_normal(shape) for shape in ((2, 4, 4), (2, 4, 4), (1, 4, 4)))
        a = self.R.uniform(*self.shift_range)
        self._amplitudes = (a, self.R.uniform(0, a / 4), self.R.uniform(0, self.drift))

    @staticmethod
    def _smooth(field: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        up = torch.nn.functional.interpolate(torch.from_numpy(field[None]).float(), size=size, mode="bicubic",
                                             align_corners=True)[0]
        return up / up.norm(dim=0).amax().clamp_min(1e-6) if up.shape[0] == 2 else up / up.abs().amax().clamp_min(1e-6)

    def __call__(self, img, randomize: bool = True) -> np.ndarray:
        """``(1, H, W)`` in, ``(2n + 1, H, W)`` float32 numpy out; channel ``n`` equals ``img``."""
        arr = convert_to_numpy(img, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[0] != 1:
            raise ValueError(f"img must be (1, H, W), got shape {arr.shape}.")
        if randomize:
            self.randomize()
        height, width = arr.shape[1:]
        u, v, w = (self._smooth(f, (height, width)) for f in self._fields)
        a, b, c = self._amplitudes
        ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                                indexing="ij")
        image = torch.from_numpy(arr)[None]
        slices = []
        for j in range(-self.neighbours, self.neighbours + 1):
            if j == 0:
                slices.append(image[0, 0])
                continue
            dy, dx = j * a * u + j * j * b * v
            grid = torch.stack(((xs + dx) / max(width - 1, 1) * 2 - 1, (ys + dy) / max(height - 1, 1) * 2 - 1), -1)
            warped = torch.nn.functional.grid_sample(image, grid[None], mode="bilinear", padding_mode="reflection",
                                                     align_corners=True)[0, 0]
            slices.append(warped * (1 + j * c * w[0]))
        return torch.stack(slices).numpy()


class NoisyStackPair(OwnsCorruption):
    """Noise a clean ``(S, H, W)`` stack slice by slice; the target is the centre slice.

    Every slice gets an independent realisation of ``corruption`` at one level (drawn for the
    centre slice); the target is another independent realisation of the centre slice
    (``"n2n"``) or the clean centre (``"n2c"``). With probability ``lone_prob`` the stack is
    replaced by the noisy centre slice repeated ``S`` times (identical noise), as a single image
    is stacked at inference.

    Returns (from ``__call__``):
        :class:`~medden.transforms.pairs.CorruptedPair`: input ``(S, H, W)``, target
        ``(1, H, W)``, float32 numpy, no masks.
    """

    def __init__(self, corruption: RandCorruption, mode: str = "n2n", lone_prob: float = 0.1) -> None:
        super().__init__(corruption)
        if mode not in ("n2n", "n2c"):
            raise ValueError(f"mode must be 'n2n' or 'n2c', got {mode!r}.")
        self.mode, self.lone_prob = mode, check_probability(lone_prob, "lone_prob")

    def __call__(self, stack) -> CorruptedPair:
        arr = convert_to_numpy(stack, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[0] % 2 != 1:
            raise ValueError(f"stack must be (2n + 1, H, W), got shape {arr.shape}.")
        centre = arr.shape[0] // 2
        noisy_centre = np.asarray(self.corruption.corrupt(arr[centre : centre + 1])[0], np.float32)
        level = self.corruption.level
        lone = self.corruption.R.rand() < self.lone_prob
        slices = [noisy_centre if k == centre or lone else
                  np.asarray(self.corruption.corrupt(arr[k : k + 1], level=level)[0], np.float32)
                  for k in range(arr.shape[0])]
        if self.mode == "n2c":
            target = arr[centre : centre + 1].copy()
        else:
            target = np.asarray(self.corruption.corrupt(arr[centre : centre + 1], level=level)[0], np.float32)
        return CorruptedPair(np.concatenate(slices), target, None, None)


class RandVolumeStackd(RandArrayTwin):
    """Dictionary twin of :class:`RandVolumeStack`."""

    def __init__(self, keys: KeysCollection, neighbours: int = 2, steps: Sequence[int] = (1, 1, 2, 3),
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.array_transform = RandVolumeStack(neighbours, steps)


class RandPseudoStackd(RandArrayTwin):
    """Dictionary twin of :class:`RandPseudoStack`."""

    def __init__(self, keys: KeysCollection, neighbours: int = 2, shift_range: tuple[float, float] = (0.0, 1.5),
                 drift: float = 0.03, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.array_transform = RandPseudoStack(neighbours, shift_range, drift)


class NoisyStackPaird(NoisyPaird):
    """Dictionary twin of :class:`NoisyStackPair`: reads one stack key, writes input and target
    (routing as :class:`~medden.transforms.pairs.NoisyPaird`)."""

    def __init__(self, keys: KeysCollection, corruption: RandCorruption, mode: str = "n2n", lone_prob: float = 0.1,
                 input_key: str = Keys.INPUT, target_key: str = Keys.TARGET, allow_missing_keys: bool = False) -> None:
        PairToKeys.__init__(self, keys, input_key, target_key, Keys.INPUT_MASK, Keys.TARGET_MASK, allow_missing_keys)
        self.pair = NoisyStackPair(corruption, mode, lone_prob)


NoisyStackPairD = NoisyStackPairDict = NoisyStackPaird
RandPseudoStackD = RandPseudoStackDict = RandPseudoStackd
RandVolumeStackD = RandVolumeStackDict = RandVolumeStackd
