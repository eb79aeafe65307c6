"""Training pairs and a held-out loss made from the noisy input alone: what ``--fit`` learns from.

No clean image exists for a user's series, so ``--fit`` picks a self-supervised scheme by what
the input offers (:func:`choose_fit_pairs`):

* **Volumes whose neighbouring slices nearly agree**: :class:`NeighbourSlicePairs`, Noise2Noise
  across slices. The target of slice ``k`` is the mean of slices ``k - 1`` and ``k + 1``, whose
  noise is independent of slice ``k``'s (also noise correlated in-plane, as after CT
  reconstruction) and whose signal differs from slice ``k``'s by half the second difference
  along the slice axis (a straight change cancels). A 2.5D network's input stack then takes
  every other slice (``k, k +- 2, ...``), so no target slice is in its input. No noise model is
  needed, but the target is biased by that second difference: :func:`slice_signal_bias`
  measures it against the noise on the input itself, and the scheme is used only when it is
  below :data:`NEIGHBOUR_BIAS_LIMIT` of the noise variance. (Measured on the 1 mm MNI slab at
  20/255 it is about 0.1: a fit on these pairs lowered their loss by a quarter while the
  output lost 3 dB against the clean volume, because it learnt the smoother target.)
* **Everything else** (single images, 2-slice series, volumes whose slices differ more):
  :class:`RecorruptionPairs`, Recorrupted-to-Recorrupted with noise shaped like the input's
  own (:func:`~medden.core.noise_estimation.flat_region_noise_kernel`): ``input = y + alpha z``,
  ``target = y - z / alpha`` with ``z`` correlated as the noise is, so input and target noises
  stay independent for correlated Gaussian noise too (white noise: plain R2R); a 2.5D network
  sees the stack of recorrupted slices.

Both hold out the same pixels: a seeded random fifth of a grid of ``32 x 32`` tiles in every
slice (:func:`held_out_tiles`). Training targets are masked there (``Keys.TARGET_MASK`` is 0),
and the held-out loss (:func:`held_out_loss`, on :meth:`FitPairs.held_out_items`) is the
recorruption loss of whole-slice outputs on those tiles only, per tile, for either scheme: its
expectation is the mean squared error against the clean image plus a constant, so it ranks
models without a clean image and without the neighbour-slice bias, as long as the noise is
zero-mean Gaussian of the measured spectrum. Where it is not, :func:`untrusted_noise` says why
(noise correlated between pixels, a Rician floor), and ``--fit`` keeps the base model: on
low-dose CT and magnitude MR the loss was measured to prefer weights that were worse.

Arrays: volumes are ``(D, H, W)`` float32 in the network's [0, 1] units; batches are torch
tensors, inputs ``(B, C, P, P)`` (``C = 2n + 1`` for a network of ``n`` neighbours), targets
and masks ``(B, 1, P, P)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from medden.core.keys import Keys
from medden.core.noise_estimation import evenly_spaced, flat_region_noise_kernel, flat_region_sigma
from medden.core.validation import check_int
from medden.transforms.stacks import stack_indices

__all__ = [
    "HELD_OUT_FRACTION", "HELD_OUT_TILE", "NEIGHBOUR_BIAS_LIMIT", "WHITE_NOISE_CENTRE_ENERGY", "FitPairs",
    "HeldOutItem", "NeighbourSlicePairs", "RecorruptionPairs", "choose_fit_pairs", "has_magnitude_floor",
    "held_out_loss", "held_out_tiles", "slice_signal_bias", "untrusted_noise",
]

#: side of the held-out tiles, pixels, and the share of tiles held out
HELD_OUT_TILE, HELD_OUT_FRACTION = 32, 0.2
#: slices of the held-out loss at most (whole slices, so it stays cheap next to training)
_HELD_OUT_SLICES = 4


def held_out_tiles(height: int, width: int, tile: int = HELD_OUT_TILE, fraction: float = HELD_OUT_FRACTION,
                   seed: int = 0) -> np.ndarray:
    """Held-out tile ids of an ``(height, width)`` slice: ``-1`` where pixels train, else the tile's id.

    The slice is cut into a grid of ``tile`` x ``tile`` tiles (edge tiles may be smaller); a
    seeded random ``fraction`` of them (at least one, never all when there are two or more) is
    held out. :class:`FitPairs` shrinks ``tile`` for images under ``4 * tile`` pixels a side, so
    that they too keep most of their pixels for training.

    Returns:
        ``(height, width)`` int64.
    """
    rows, cols = -(-height // tile), -(-width // tile)
    count = rows * cols
    chosen = max(1, min(count - 1, round(fraction * count))) if count > 1 else 1
    picked = np.random.default_rng(seed).permutation(count)[:chosen]
    grid = np.full(count, -1, np.int64)
    grid[picked] = np.arange(chosen)
    ids = grid.reshape(rows, cols)
    return np.ascontiguousarray(np.repeat(np.repeat(ids, tile, 0), tile, 1)[:height, :width])


@dataclass(frozen=True)
class HeldOutItem:
    """One slice of the held-out loss: network input ``(1, C, H, W)``, target ``(1, 1, H, W)``, tile ids ``(H, W)``."""

    input: torch.Tensor
    target: torch.Tensor
    tiles: np.ndarray


def held_out_loss(network: torch.nn.Module, items: Sequence[HeldOutItem], device: torch.device | str = "cpu"
                  ) -> np.ndarray:
    """The mean squared error of ``network``'s output against the target on each held-out tile.

    Returns:
        float64 array, one value per held-out tile of every item (same order every call).
    """
    losses = []
    was_training = network.training
    network.eval()
    with torch.no_grad():
        for item in items:
            error = ((network(item.input.to(device)) - item.target.to(device)) ** 2)[0, 0].cpu().numpy()
            ids = item.tiles.ravel()
            held = ids >= 0
            sums = np.bincount(ids[held], weights=error.ravel()[held].astype(np.float64))
            losses.append(sums / np.bincount(ids[held]))
    network.train(was_training)
    return np.concatenate(losses)


def _centre_energy(kernel: torch.Tensor) -> float:
    """The share of a ``(1, 1, k, k)`` noise kernel's energy at its centre (1: white noise)."""
    half = kernel.shape[-1] // 2
    return kernel[0, 0, half, half].item() ** 2 / max(float((kernel**2).sum()), 1e-30)


def _crop_flip(arrays: Sequence[np.ndarray], x0: int, y0: int, patch: int, flips: tuple[bool, bool]) -> list:
    out = []
    for arr in arrays:
        crop = arr[..., x0 : x0 + patch, y0 : y0 + patch]
        if flips[0]:
            crop = crop[..., ::-1, :]
        if flips[1]:
            crop = crop[..., ::-1]
        out.append(np.ascontiguousarray(crop, np.float32))
    return out


def _pad_to(arr: np.ndarray, patch: int) -> np.ndarray:
    pad = [(0, 0)] * (arr.ndim - 2) + [(0, max(patch - n, 0)) for n in arr.shape[-2:]]
    return np.pad(arr, pad, mode="reflect") if any(p[1] for p in pad) else arr


class FitPairs(ABC):
    """A self-supervised scheme on ``(D, H, W)`` volumes: endless training batches and the held-out slices.

    The held-out loss is the same for every scheme, recorruption on the held-out tiles at the
    inference geometry: for held-out slice ``k`` the input is its stack (every slice ``j`` as
    ``y[j] + alpha z[j]``, ``z`` drawn once with the volume's noise kernel) and the target
    ``y[k] - z[k] / alpha``. Their noises are independent (Gaussian noise of that covariance),
    so its expectation is the network's mean squared error against the clean slice (at a noise
    ``sqrt(1 + alpha**2)`` times the input's) plus a constant, whatever scheme trained it: a
    scheme with a biased target cannot pass its bias into the choice.

    Args:
        volumes: ``(D, H, W)`` float32 arrays, slices in acquisition order, sides >= 16.
        neighbours: the network's ``n`` (0: a 2D network); inputs have ``2n + 1`` channels.
        alpha: recorruption strength (0.5 as in R2R).
        seed: seeds the held-out tiles and draws.

    Attributes:
        name: the scheme, for the fit report.
        kernels: per volume, the ``(1, 1, k, k)`` noise kernel
            (:func:`~medden.core.noise_estimation.flat_region_noise_kernel`).
    """

    name: str

    def __init__(self, volumes: Sequence[np.ndarray], neighbours: int = 0, alpha: float = 0.5, seed: int = 0) -> None:
        self.volumes = [np.asarray(v, np.float32) for v in volumes]
        if not self.volumes or any(v.ndim != 3 or min(v.shape[1:]) < 16 for v in self.volumes):
            raise ValueError("fit pairs need volumes (D, H, W) with slices of at least 16 x 16 pixels.")
        self.neighbours = check_int(neighbours, "neighbours", 0)
        self.alpha, self.seed = float(alpha), seed
        self.kernels = [torch.from_numpy(flat_region_noise_kernel(v[evenly_spaced(v.shape[0], 16)])).float()[None, None]
                        for v in self.volumes]
        # tiles small enough that even a small image has a dozen or more (16 px images: 4 x 4 px tiles)
        self.tiles = [held_out_tiles(*v.shape[1:], tile=min(HELD_OUT_TILE, max(4, min(v.shape[1:]) // 4)),
                                     seed=seed + i) for i, v in enumerate(self.volumes)]

    @abstractmethod
    def _sample(self, rng: np.random.Generator, patch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One ``(input (C, P, P), target (1, P, P), train mask (1, P, P))`` sample."""

    def _details(self) -> dict:
        """What the subclass adds to :meth:`describe`."""
        return {}

    def describe(self) -> dict:
        """What the report records about the scheme (no pixel data): its name, the slices, the
        recorruption strength of the held-out loss, the share of the noise kernel's energy at its
        centre (1 for white noise) and, for volumes of 3 slices or more, the neighbour-slice bias
        (:func:`slice_signal_bias`)."""
        deep = [v for v in self.volumes if v.shape[0] >= 3]
        return {"scheme": self.name, "slices": [int(v.shape[0]) for v in self.volumes], "alpha": self.alpha,
                "noise_kernel_centre_energy": round(float(np.median([_centre_energy(k) for k in self.kernels])), 3),
                "neighbour_bias": slice_signal_bias(deep) if deep else None, **self._details()}

    def batches(self, patch: int, batch_size: int, rng: np.random.Generator):
        """Endless ``{"input", "target", "target_mask"}`` batches of random patches (random flips)."""
        while True:
            samples = [self._sample(rng, patch) for _ in range(batch_size)]
            yield {key: torch.from_numpy(np.stack([s[i] for s in samples]))
                   for i, key in enumerate((Keys.INPUT, Keys.TARGET, Keys.TARGET_MASK))}

    def held_out_items(self) -> list[HeldOutItem]:
        """Up to 4 whole slices, evenly spaced over all volumes, recorrupted once (fixed for the fit)."""
        generator = torch.Generator().manual_seed(self.seed + 7919)
        slices = [(i, k) for i, v in enumerate(self.volumes) for k in range(v.shape[0])]
        items = []
        for j in evenly_spaced(len(slices), _HELD_OUT_SLICES):
            i, k = slices[j]
            volume = self.volumes[i]
            picks = self._indices(volume.shape[0], k, 1)
            z = self._draw(self.kernels[i], (len(set(picks)), *volume.shape[1:]), generator)
            source, target = self._recorrupted(volume, picks, k, z)
            items.append(HeldOutItem(torch.from_numpy(source)[None], torch.from_numpy(target)[None], self.tiles[i]))
        return items

    def _indices(self, depth: int, index: int, step: int) -> list[int]:
        """Slices of the network input for slice ``index``: its stack, or itself for a 2D network."""
        return stack_indices(depth, self.neighbours, index, step) if self.neighbours else [index]

    @staticmethod
    def _draw(kernel: torch.Tensor, shape: tuple[int, int, int], generator: torch.Generator) -> np.ndarray:
        """``(S, H, W)`` noise: white noise of unit variance convolved with ``kernel``."""
        half = kernel.shape[-1] // 2
        white = torch.randn((shape[0], 1, shape[1] + 2 * half, shape[2] + 2 * half), generator=generator)
        return torch.nn.functional.conv2d(white, kernel)[:, 0].numpy()

    def _recorrupted(self, volume: np.ndarray, picks: list[int], index: int, z: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """``(input (C, H, W), target (1, H, W))``: the picked slices plus ``alpha z`` (one draw per distinct
        slice, ``z[r]`` for the r-th distinct slice in ``picks`` order), and slice ``index`` minus ``z / alpha``."""
        rows = {k: r for r, k in enumerate(dict.fromkeys(picks))}
        source = np.stack([volume[k] + self.alpha * z[rows[k]] for k in picks])
        target = volume[index][None] - z[rows[index]][None] / self.alpha
        return np.ascontiguousarray(source, np.float32), np.ascontiguousarray(target, np.float32)

    @staticmethod
    def _position(rng: np.random.Generator, shape: tuple[int, int], patch: int) -> tuple[int, int, tuple[bool, bool]]:
        x0, y0 = (int(rng.integers(0, n - patch + 1)) for n in shape)
        return x0, y0, (bool(rng.random() < 0.5), bool(rng.random() < 0.5))


class NeighbourSlicePairs(FitPairs):
    """Noise2Noise across slices: slice ``k`` (with every other slice as context) against the mean of ``k +- 1``.

    Needs volumes of 3 slices or more; no noise model (any zero-mean noise independent between
    slices), but the target's signal is that of the mean of the two neighbours, which differs
    from slice ``k``'s by half the second difference along the slice axis
    (:func:`slice_signal_bias` measures it against the noise).
    """

    name = "neighbour-slice Noise2Noise"

    def __init__(self, volumes: Sequence[np.ndarray], neighbours: int = 0, alpha: float = 0.5, seed: int = 0) -> None:
        super().__init__(volumes, neighbours, alpha, seed)
        if any(v.shape[0] < 3 for v in self.volumes):
            raise ValueError("neighbour-slice pairs need volumes of at least 3 slices.")
        self.centres = [(i, k) for i, v in enumerate(self.volumes) for k in range(1, v.shape[0] - 1)]

    def _sample(self, rng, patch):
        i, k = self.centres[int(rng.integers(len(self.centres)))]
        volume, train = _pad_to(self.volumes[i], patch), _pad_to((self.tiles[i] < 0).astype(np.float32), patch)
        x0, y0, flips = self._position(rng, volume.shape[1:], patch)
        source = volume[self._indices(volume.shape[0], k, 2)]
        target = 0.5 * (volume[k - 1 : k] + volume[k + 1 : k + 2])
        return tuple(_crop_flip([source, target, train[None]], x0, y0, patch, flips))

    def _details(self) -> dict:
        return {"target": "mean of slices k-1 and k+1", "input_slice_step": 2 if self.neighbours else 1}


class RecorruptionPairs(FitPairs):
    """Recorrupted-to-Recorrupted with noise correlated like the input's own, on stacks or single images.

    For slice ``k`` and a draw ``z`` per slice (white noise convolved with the volume's noise
    kernel), ``input`` is the stack of ``y + alpha z`` and ``target = y[k] - z[k] / alpha``: input
    and target noises stay independent for Gaussian noise of that covariance, white or
    correlated (CT kernels, detector blur), so the target is unbiased. A single image's stack
    repeats it (one draw).
    """

    name = "recorruption (R2R) with the flat-region noise spectrum"

    def _sample(self, rng, patch):
        i = int(rng.integers(len(self.volumes)))
        volume, train = _pad_to(self.volumes[i], patch), _pad_to((self.tiles[i] < 0).astype(np.float32), patch)
        k = int(rng.integers(volume.shape[0]))
        x0, y0, flips = self._position(rng, volume.shape[1:], patch)
        picks = self._indices(volume.shape[0], k, 1)
        crop = volume[:, x0 : x0 + patch, y0 : y0 + patch]
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        z = self._draw(self.kernels[i], (len(set(picks)), patch, patch), generator)
        source, target = self._recorrupted(crop, picks, k, z)
        return tuple(_crop_flip([source, target, train[None, x0 : x0 + patch, y0 : y0 + patch]], 0, 0, patch, flips))

    def _details(self) -> dict:
        return {"target": "slice minus its recorruption / alpha"}


def slice_signal_bias(volumes: Sequence[np.ndarray]) -> dict:
    """How far the neighbour-slice targets' signal is from the centre slice's, against the noise.

    With noise variance ``s2`` per slice (:func:`~medden.core.noise_estimation.flat_region_sigma`),
    (16-pixel blocks: noise correlated in-plane still reads somewhat low, which overstates the bias and
    so errs towards the unbiased recorruption scheme),
    ``E|(y[k-1] + y[k+1]) / 2 - y[k]|^2 = |(x[k-1] + x[k+1]) / 2 - x[k]|^2 + 1.5 s2`` and
    ``E|y[k+1] - y[k]|^2 = |x[k+1] - x[k]|^2 + 2 s2``. Returns both signal terms divided by ``s2``:
    ``target_bias_to_noise`` (what the symmetric target leaves) and ``step_change_to_noise``
    (what a one-sided target would carry); 0 means the bias is below what the noise lets one see.
    """
    sym, step, noise = [], [], []
    for v in volumes:
        s2 = flat_region_sigma(v.transpose(1, 2, 0)[None], block=16) ** 2
        sym.append(float(np.mean((0.5 * (v[:-2] + v[2:]) - v[1:-1]) ** 2)) - 1.5 * s2)
        step.append(float(np.mean((v[1:] - v[:-1]) ** 2)) - 2 * s2)
        noise.append(s2)
    s2 = max(float(np.mean(noise)), 1e-30)
    return {"noise_sigma": round(float(np.sqrt(np.mean(noise))), 5),
            "target_bias_to_noise": round(max(float(np.mean(sym)), 0.0) / s2, 4),
            "step_change_to_noise": round(max(float(np.mean(step)), 0.0) / s2, 4)}


#: the neighbour-slice scheme is used only when its target's signal bias is below this share of the noise variance
NEIGHBOUR_BIAS_LIMIT = 0.02
#: noise kernels whose centre holds less of their energy than this are "correlated" (white noise: about 1;
#: low-dose CT after FBP measured 0.90-0.93 in docs/results/volumes_and_fit.md)
WHITE_NOISE_CENTRE_ENERGY = 0.97


def untrusted_noise(pairs: FitPairs, magnitude_floor: bool) -> str | None:
    """Why the held-out recorruption loss cannot be trusted on this input, or None when it can.

    The loss is unbiased for zero-mean Gaussian noise of the measured spectrum. Measured where
    that fails (``docs/results/volumes_and_fit.md``, the previous benchmark run): on low-dose CT
    (noise correlated by FBP and far stronger in tissue than in the flattest blocks) it chose
    fitted weights that ended 0.7-1.3 dB below the base after 3-10 minutes; on magnitude MR
    (a Rician floor where the signal is low, noise not zero-mean) 0.2 dB below. So ``--fit``
    keeps the base model, without training, when the noise kernel is not white
    (:data:`WHITE_NOISE_CENTRE_ENERGY`) or the input is magnitude data with a Rician floor.

    Args:
        pairs: the scheme (its kernels are the input's noise kernels).
        magnitude_floor: whether the raw input has Rayleigh-distributed air
            (:func:`has_magnitude_floor`).
    """
    centre = float(np.median([_centre_energy(k) for k in pairs.kernels]))
    if centre < WHITE_NOISE_CENTRE_ENERGY:
        return (f"the noise is correlated between pixels (noise kernel centre energy {centre:.3f} < "
                f"{WHITE_NOISE_CENTRE_ENERGY}), where the held-out recorruption loss was measured to favour weights "
                "that pass noise through")
    if magnitude_floor:
        return ("the input is magnitude data with a Rician noise floor (Rayleigh-distributed air), whose noise is not "
                "zero-mean, where the held-out recorruption loss was measured to favour worse weights")
    return None


def has_magnitude_floor(volumes: Sequence[np.ndarray]) -> bool:
    """Whether any raw ``(C, H, W[, D])`` volume is non-negative with Rayleigh-distributed air
    (:func:`~medden.core.noise_estimation.rician_background_sigma` finds and accepts its air)."""
    from medden.core.noise_estimation import rician_background_sigma

    for volume in volumes:
        try:
            rician_background_sigma(volume)
            return True
        except ValueError:  # negative values, no air, or air that is not Rayleigh
            continue
    return False


def choose_fit_pairs(volumes: Sequence[np.ndarray], neighbours: int = 0, seed: int = 0) -> FitPairs:
    """The scheme the input offers.

    Volumes of 3 slices or more whose neighbour-slice target bias (:func:`slice_signal_bias`) is
    below :data:`NEIGHBOUR_BIAS_LIMIT` of the noise variance get :class:`NeighbourSlicePairs`
    (no noise model needed); everything else, single images, 2-slice series and volumes whose
    slices differ more than that, gets :class:`RecorruptionPairs` (unbiased for Gaussian noise of
    the measured spectrum). Either way the held-out loss is the unbiased recorruption one.

    Args:
        volumes: ``(D, H, W)`` float32 arrays (``D = 1`` for a single image), scaled as the
            network sees them.
        neighbours: the network's ``n``.
    """
    if not volumes:
        raise ValueError("no images to fit on.")
    deep = [np.asarray(v, np.float32) for v in volumes if v.shape[0] >= 3]
    if deep and len(deep) == len(volumes) and slice_signal_bias(deep)["target_bias_to_noise"] < NEIGHBOUR_BIAS_LIMIT:
        return NeighbourSlicePairs(deep, neighbours, seed=seed)
    return RecorruptionPairs(volumes, neighbours, seed=seed)
