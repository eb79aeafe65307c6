"""Iterative refinement (Algorithm 1 of the recorruption paper) and its MONAI inferer.

A network trained to map a further-corrupted image ``y'`` to the noisy ``y`` learns
``E[y | y']``, which is biased towards its input. The recorruption paper's heuristic repeats
a damped step ``x <- x + eta * (f(x) - x)`` ``k`` times from ``x_0 = y``; ``eta`` and ``k``
are chosen on a validation set (see :func:`medden.inference.tune_refinement`). The paper uses
``eta = 0.01`` with 10 steps (Gaussian) or 100 steps (Poisson).

Images are batched channel-first tensors ``(B, C, H, W)`` or ``(B, C, H, W, D)`` of a
floating dtype (see :mod:`medden` for the conventions). Inputs are never modified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from monai.inferers import Inferer

from medden.inference.checks import (
    check_batch,
    check_eta,
    check_network,
    evaluate,
    resolve_inferer,
)
from medden.core.validation import check_int
from medden.inference.progress import progress_part, run_base_inferer

__all__ = ["iterative_refinement", "keep_observed_pixels", "refinement_path", "RefinementInferer"]


def refinement_path(
    network: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, eta: float, steps: int
) -> Iterator[torch.Tensor]:
    """Yield the refinement iterates ``x_1, ..., x_steps`` one network evaluation at a time.

    ``x_0 = image`` and ``x_{i+1} = x_i + eta * (f(x_i) - x_i)``. A tuner can score every
    ``k`` from one run. Arguments are checked when this is called, not at the first ``next``.
    Gradients are not disabled: wrap the loop in ``torch.no_grad()`` for inference.

    Args:
        network: callable mapping ``(B, C, *spatial)`` to a tensor of the same shape.
        image: noisy batch ``(B, C, H, W)`` or ``(B, C, H, W, D)``, floating dtype, finite.
        eta: step size in (0, 1]; ``eta=1`` replaces ``x`` with ``f(x)``.
        steps: number of iterates to yield, int >= 0.

    Returns:
        An iterator of ``steps`` new tensors, each with ``image``'s shape and dtype.

    Raises:
        TypeError: ``network`` is not callable, ``image`` is not a floating tensor, or the
            network returns something other than a tensor.
        ValueError: ``eta`` outside (0, 1], ``steps < 0``, a bad ``image`` shape, or a
            network output whose shape differs from its input.
    """
    check_network(network)
    check_batch(image, "image")
    return _iterate(network, image, check_eta(eta), check_int(steps, "steps", 0))


def _iterate(network: Callable, x: torch.Tensor, eta: float, steps: int) -> Iterator[torch.Tensor]:
    for _ in range(steps):
        # lerp computes x + eta * (f(x) - x) and returns f(x) exactly when eta == 1
        x = torch.lerp(x, evaluate(network, x), eta)
        yield x


def iterative_refinement(
    network: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, eta: float, steps: int
) -> torch.Tensor:
    """Return ``x_steps`` of the refinement ``x_{i+1} = x_i + eta * (f(x_i) - x_i)``, ``x_0 = image``.

    ``eta=1, steps=1`` is one plain pass ``f(image)``; ``steps=0`` returns a copy of
    ``image``. Gradients are not disabled (so the unrolled loop can be trained through);
    :class:`RefinementInferer` runs it under ``torch.no_grad()``.

    Args:
        network: callable mapping ``(B, C, *spatial)`` to a tensor of the same shape.
        image: noisy batch ``(B, C, H, W)`` or ``(B, C, H, W, D)``, floating dtype, finite.
        eta: step size in (0, 1].
        steps: number of network evaluations, int >= 0.

    Returns:
        A new tensor with ``image``'s shape and dtype (a ``MetaTensor`` input stays one).

    Raises:
        TypeError: see :func:`refinement_path`.
        ValueError: see :func:`refinement_path`.

    Example:
        >>> import torch
        >>> x = iterative_refinement(lambda t: torch.zeros_like(t), torch.ones(1, 1, 2, 2), 0.5, 3)
        >>> x.flatten().tolist()
        [0.125, 0.125, 0.125, 0.125]
    """
    result = image
    for result in refinement_path(network, image, eta, steps):
        pass
    return image.clone() if result is image else result


def keep_observed_pixels(prediction: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """Data consistency for missing-pixel (Bernoulli) noise: keep every observed pixel.

    Under multiplicative Bernoulli noise a pixel that is non-zero in ``noisy`` (in any channel)
    was observed exactly, so only the missing (zero) pixels are taken from ``prediction``.
    Both are ``(B, C, *spatial)``; returns a new tensor of that shape. Not for additive noise,
    where every pixel is noisy.
    """
    observed = (noisy != 0).any(dim=1, keepdim=True)
    return torch.where(observed, noisy, prediction)


class RefinementInferer(Inferer):
    """MONAI inferer running iterative refinement, each network call through ``base_inferer``.

    Usable wherever MONAI takes an inferer (``SupervisedEvaluator``, bundle configs via
    ``_target_: medden.inference.RefinementInferer``). Pick the base inferer for the image
    size, using MONAI's classes directly:

    * ``monai.inferers.SimpleInferer()`` (default): the whole image in one call.
    * ``monai.inferers.SlidingWindowInferer(roi_size=..., overlap=0.25, mode="gaussian")``:
      images larger than the training patch; every refinement step re-tiles the current
      iterate.
    * ``monai.inferers.SliceInferer(roi_size=(H, W), spatial_dim=2)``: a 2D network over
      the slices of a ``(B, C, H, W, D)`` volume.

    Args:
        eta: step size in (0, 1]; ``eta=1, steps=1`` is one plain pass.
        steps: number of refinement steps, int >= 0.
        base_inferer: how each network evaluation is run; None means ``SimpleInferer()``.
        keep_observed: for missing-pixel (Bernoulli) noise, replace every network output by
            :func:`keep_observed_pixels` against the *original* input, so the pixels observed
            in it stay exact through all steps.

    Example:
        >>> import torch
        >>> inferer = RefinementInferer(eta=1.0, steps=1)
        >>> inferer(torch.ones(1, 1, 4, 4), lambda t: 2 * t).max().item()
        2.0
    """

    def __init__(self, eta: float, steps: int, base_inferer: Inferer | Callable | None = None,
                 keep_observed: bool = False) -> None:
        self.eta = check_eta(eta)
        self.keep_observed = bool(keep_observed)
        self.steps = check_int(steps, "steps", 0)
        self.base_inferer = resolve_inferer(base_inferer)

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Refine ``inputs`` under ``torch.no_grad()``.

        Args:
            inputs: noisy batch ``(B, C, H, W)`` or ``(B, C, H, W, D)``, floating dtype.
            network: the denoising model (image in, same-shape image out).
            args: extra positional arguments passed to ``network`` by the base inferer.
            kwargs: extra keyword arguments passed to ``network`` by the base inferer.

        Returns:
            The refined batch, a new tensor with ``inputs``' shape and dtype.
        """
        check_network(network)

        calls = 0

        def step(x: torch.Tensor) -> torch.Tensor:
            nonlocal calls
            with progress_part(calls, max(self.steps, 1)):  # each network evaluation is one part of the progress
                out = run_base_inferer(self.base_inferer, x, network, *args, **kwargs)
            calls += 1
            return keep_observed_pixels(out, inputs) if self.keep_observed else out

        with torch.no_grad():
            return iterative_refinement(step, inputs, self.eta, self.steps)
