"""Run a 2.5D network over a volume: each slice with its neighbours along the slice axis.

:class:`SliceStackInferer` is to :class:`~medden.networks.SliceStackDenoiser` what MONAI's
``SliceInferer`` is to a 2D network: it cuts the volume ``(B, 1, H, W, D)`` into one stack of
``2n + 1`` slices per slice (reflected at the volume's ends, :func:`~medden.transforms.stack_indices`),
runs the network on batches of stacks and puts the centre slices back. A 2D image is a volume of
one slice: with a ``lone_network`` (a 2D network, ``(B, 1, H, W)`` in and out) it goes through
that instead, so single images keep the 2D path; without one its stack repeats it (the network
was trained on such "lone" stacks too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer

from medden.core.validation import check_int
from medden.inference.checks import check_batch, check_network
from medden.inference.progress import report_progress
from medden.transforms.stacks import stack_indices

__all__ = ["SliceStackInferer"]


class SliceStackInferer(Inferer):
    """Denoise each slice of ``(B, 1, H, W, D)`` from its ``2n + 1``-slice stack (slice axis last).

    Args:
        neighbours: ``n``, slices on each side (the network's, e.g. 2 for 5 channels).
        sw_batch_size: stacks per network call.
        lone_network: a 2D network for volumes of one slice (single images), or None to stack them.

    Shapes:
        ``(B, 1, H, W, D)`` to the same; ``(B, 1, H, W)`` (a single image) to the same.

    Example:
        >>> import torch
        >>> mean_of_stack = lambda s: s.mean(dim=1, keepdim=True)
        >>> volume = torch.arange(3.0).reshape(1, 1, 1, 1, 3)
        >>> [round(v, 4) for v in SliceStackInferer(neighbours=1)(volume, mean_of_stack).flatten().tolist()]
        [0.6667, 1.0, 1.3333]
    """

    def __init__(self, neighbours: int = 2, sw_batch_size: int = 8, lone_network: Callable | None = None) -> None:
        self.neighbours = check_int(neighbours, "neighbours", 0)
        self.sw_batch_size = check_int(sw_batch_size, "sw_batch_size")
        self.lone_network = None if lone_network is None else check_network(lone_network, "lone_network")

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Network outputs of every slice's stack, stacked back along the last axis."""
        check_batch(inputs, "inputs")
        check_network(network)
        flat = inputs.ndim == 4
        volume = inputs[..., None] if flat else inputs
        if volume.shape[1] != 1:
            raise ValueError(f"a slice-stack network takes one-channel volumes, got {volume.shape[1]} channels.")
        depth = volume.shape[-1]
        if depth == 1 and self.lone_network is not None:
            out = torch.cat([self.lone_network(volume[start : start + self.sw_batch_size, ..., 0])
                             for start in range(0, volume.shape[0], self.sw_batch_size)])
            report_progress(1, 1)
            return out if flat else out[..., None]
        out = torch.empty_like(volume)
        for b in range(volume.shape[0]):
            for start in range(0, depth, self.sw_batch_size):
                centres = range(start, min(start + self.sw_batch_size, depth))
                stacks = torch.stack([volume[b, 0][..., stack_indices(depth, self.neighbours, k)].permute(2, 0, 1)
                                      for k in centres])
                out[b, 0, ..., start : start + len(centres)] = network(stacks, *args, **kwargs)[:, 0].permute(1, 2, 0)
                report_progress(b * depth + centres.stop, volume.shape[0] * depth)
        return out[..., 0] if flat else out
