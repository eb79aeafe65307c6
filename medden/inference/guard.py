"""Do no harm: keep a denoiser's change to what noise can explain.

A denoiser's change ``r = f(y) - y`` should be the noise with its sign flipped: zero on
average over any large region, and about as large as the noise. Two faults break that on real
images, and :class:`ResidualGuardInferer` removes both after the network has run:

* **a drift**: a network trained on crops can shift the brightness of a whole region (a trial
  run of the default model, whose pairs were scaled by each crop's own range, shifted the
  held-out head CT ``693_UNCR`` by +22 HU in air and +26 HU in the brain, with no noise added). The guard subtracts the change's local mean over ``highpass`` x ``highpass`` pixels
  (a box filter), so no region is brightened or darkened, while noise, which has next to no
  power at such low spatial frequencies, is still removed;
* **a change where there is no noise at all**: a 3 x 3 neighbourhood of one exact value is
  padding outside a CT's field of view or a zeroed MR border, never an acquired signal; it is
  left exactly as it is;
* **a change far larger than the noise**: halos along strong edges (skull, a head holder)
  where the network took detail for noise. The guard clips the change to ``clip_sigmas`` times
  the input's noise, measured on each slice by
  :func:`~medden.core.noise_estimation.flat_region_sigma` (the spread of the flattest blocks,
  which also reads noise correlated by a CT kernel or a detector). Noise removal needs changes
  of a few sigma at most; a clean image (a few HU of noise) cannot be changed by more than a few
  HU anywhere.

Both are measured in ``docs/results/ablation.md`` (the model with and without the guard).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import Inferer

from medden.core.noise_estimation import flat_region_sigma
from medden.core.validation import check_int, check_number
from medden.inference.checks import resolve_inferer
from medden.inference.progress import run_base_inferer

__all__ = ["ResidualGuardInferer", "guard_residual"]


def _box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """``size`` x ``size`` box mean (``size + 1`` when even) over the last two axes of ``(N, H, W)``,
    reflecting at the borders; by running sums, so its cost does not grow with ``size``."""
    odd = size if size % 2 else size + 1
    pad = odd // 2
    out = x[:, None]
    for axis, pads in ((3, (pad, pad, 0, 0)), (2, (0, 0, pad, pad))):
        padded = F.pad(out, pads, mode="reflect" if out.shape[axis] > pad else "replicate").double()
        sums = torch.cumsum(padded, dim=axis)
        sums = F.pad(sums, (1, 0, 0, 0) if axis == 3 else (0, 0, 1, 0))  # a leading zero
        length = out.shape[axis]
        out = ((sums.narrow(axis, odd, length) - sums.narrow(axis, 0, length)) / odd).to(x.dtype)
    return out[:, 0]


def _constant_neighbourhood(y: torch.Tensor) -> torch.Tensor:
    """Pixels of ``(N, C, H, W)`` whose 3 x 3 neighbourhood holds one value in every channel (padding,
    masks): all eight neighbours equal the pixel (edges replicated)."""
    padded = F.pad(y, (1, 1, 1, 1), mode="replicate")
    height, width = y.shape[-2:]
    same = torch.ones_like(y, dtype=torch.bool)
    for dy in range(3):
        for dx in range(3):
            if dy != 1 or dx != 1:
                same &= padded[..., dy:dy + height, dx:dx + width] == y
    return same.all(dim=1, keepdim=True).expand_as(y)


def guard_residual(noisy: torch.Tensor, denoised: torch.Tensor, highpass: int = 32, clip_sigmas: float = 3.0
                   ) -> torch.Tensor:
    """``noisy + clip(r - box_mean(r), +-clip_sigmas * sigma)`` with ``r = denoised - noisy``, per slice,
    and no change where the input is constant over 3 x 3 pixels.

    Args:
        noisy: the network input, ``(B, C, H, W)`` or ``(B, C, H, W, D)`` float.
        denoised: the network output, same shape.
        highpass: box side in pixels over which the change must average to zero; 0 turns the
            drift removal off.
        clip_sigmas: the largest change, in units of each slice's noise (all channels of a slice
            together); 0 turns the clipping off.

    Returns:
        The guarded output, ``noisy``'s shape and dtype.
    """
    if noisy.shape != denoised.shape or noisy.ndim not in (4, 5):
        raise ValueError(f"noisy and denoised must both be (B, C, H, W[, D]), got {tuple(noisy.shape)} and "
                         f"{tuple(denoised.shape)}.")
    volume = noisy.ndim == 5
    # slices as (N, C, H, W): one noise level per slice of each batch item
    to_slices = (lambda t: t.permute(0, 4, 1, 2, 3).reshape(-1, *t.shape[1:4])) if volume else (lambda t: t)
    y, r = to_slices(noisy), to_slices(denoised - noisy)
    if highpass > 1:
        r = r - _box_mean(r.reshape(-1, *r.shape[-2:]), highpass).reshape(r.shape)
    if clip_sigmas > 0:
        sigmas = [flat_region_sigma(np.asarray(s.detach().cpu(), np.float64)) if min(s.shape[-2:]) >= 8 else np.inf
                  for s in y]
        bound = torch.as_tensor(sigmas, dtype=r.dtype, device=r.device).view(-1, 1, 1, 1) * clip_sigmas
        r = torch.maximum(torch.minimum(r, bound), -bound)
    r = torch.where(_constant_neighbourhood(y), torch.zeros_like(r), r)
    out = y + r
    if volume:
        batch, channels, height, width, depth = noisy.shape
        out = out.reshape(batch, depth, channels, height, width).permute(0, 2, 3, 4, 1)
    return out.to(noisy.dtype)


class ResidualGuardInferer(Inferer):
    """Run ``base_inferer``, then :func:`guard_residual` its output against the input.

    Args:
        base_inferer: e.g. ``monai.inferers.SliceInferer`` over volumes; None: one call.
        highpass, clip_sigmas: see :func:`guard_residual`.

    Example:
        >>> import torch
        >>> x = torch.zeros(1, 1, 16, 16)
        >>> float(ResidualGuardInferer()(x, lambda t: t + 5.0).abs().max())  # a pure drift is removed
        0.0
    """

    def __init__(self, base_inferer: Inferer | Callable | None = None, highpass: int = 32,
                 clip_sigmas: float = 3.0) -> None:
        self.base_inferer = resolve_inferer(base_inferer)
        self.highpass = check_int(highpass, "highpass", 0)
        self.clip_sigmas = check_number(clip_sigmas, "clip_sigmas", 0.0)

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The base inferer's output for ``inputs``, guarded; same shape."""
        out = run_base_inferer(self.base_inferer, inputs, network, *args, **kwargs)
        return guard_residual(inputs, out, self.highpass, self.clip_sigmas)
