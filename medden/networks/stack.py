"""The volumetric (2.5D) denoiser: a 2D U-Net that reads a slice with its neighbours as channels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from medden.core.validation import check_int
from medden.networks.general import GENERAL_CHANNELS, BilinearResUNet

__all__ = ["STACK_HEAD", "SliceStackDenoiser", "stack_denoiser_net", "widen_to_stack"]

#: the state-dict entry of the first convolution, the only one whose shape depends on the neighbours
STACK_HEAD = "net.head.0.weight"


class SliceStackDenoiser(nn.Module):
    """``stack -> centre + net(stack)``: denoise slice ``k`` from slices ``k - n .. k + n``.

    The inner network reads the ``2n + 1`` slices as channels and predicts the correction of the
    centre one (channel ``n``), so an untrained (zero-output) network is the identity on the
    centre slice, as :class:`~medden.networks.ResidualDenoiser` is on an image.

    Args:
        net: ``(B, 2n + 1, H, W) -> (B, 1, H, W)``.
        neighbours: ``n``.

    Shapes:
        ``(B, 2n + 1, H, W)`` float (slices of one volume in [0, 1] units, in slice order) to
        ``(B, 1, H, W)``.
    """

    def __init__(self, net: nn.Module, neighbours: int) -> None:
        super().__init__()
        self.net = net
        self.neighbours = check_int(neighbours, "neighbours", 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 2 * self.neighbours + 1:
            raise ValueError("expected a stack of " + str(2 * self.neighbours + 1) + " slices as channels, got "
                             + str(x.shape[1]) + "; build stacks with medden.inference.SliceStackInferer.")
        n = self.neighbours
        return x[:, n : n + 1] + self.net(x)


def stack_denoiser_net(neighbours: int = 2, channels: Sequence[int] = GENERAL_CHANNELS, full_channels: int = 16,
                       blocks: int = 1) -> SliceStackDenoiser:
    """The default volumetric denoiser: :class:`~medden.networks.BilinearResUNet` over ``2n + 1`` slices.

    Same levels as the 2D default (``general_denoiser_net(architecture="bilinear")``); only the
    first convolution is wider, so 2D weights carry over (:func:`widen_to_stack`).
    """
    slices = 2 * check_int(neighbours, "neighbours", 0) + 1
    return SliceStackDenoiser(BilinearResUNet(slices, 1, channels, full_channels=full_channels, blocks=blocks),
                              neighbours)


def widen_to_stack(state: Mapping[str, torch.Tensor], neighbours: int) -> dict[str, torch.Tensor]:
    """A 2D bilinear default model's state dict made into a :func:`stack_denoiser_net` one.

    The first convolution's weights go to the centre slice's channel and the neighbours' start
    at zero, so the widened network gives exactly the 2D model's output until it is trained.

    Raises:
        ValueError: ``state`` has no one-channel :data:`STACK_HEAD` (not a 2D bilinear model).
    """
    head = state.get(STACK_HEAD)
    if head is None or head.ndim != 4 or head.shape[1] != 1:
        raise ValueError(f"expected a one-channel 2D model with {STACK_HEAD!r}; got "
                         f"{None if head is None else tuple(head.shape)}.")
    wide = head.new_zeros((head.shape[0], 2 * neighbours + 1, *head.shape[2:]))
    wide[:, neighbours] = head[:, 0]
    return {**state, STACK_HEAD: wide}
