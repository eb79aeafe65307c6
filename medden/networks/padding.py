"""Let networks that pool or stride accept any image size: pad, run, crop back.

Also holds the integer-argument checks that the supervised-denoising networks
(:mod:`medden.networks.zoo`) share.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medden.core.validation import check_int

__all__ = ["PadToMultiple", "check_widths", "pad_to_multiple"]



def check_widths(values: Sequence[int], name: str, length: int | None = None, min_length: int = 1) -> tuple[int, ...]:
    """Return a sequence of feature widths (or counts) as a tuple of ints, each ``>= 1``.

    Args:
        values: the sequence to check.
        name: the argument's name, used in error messages.
        length: the exact length required, or None.
        min_length: the least length accepted when ``length`` is None.

    Raises:
        TypeError: ``values`` is not a sequence of integers.
        ValueError: wrong length, or an entry below 1.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of integers, got {values!r}.")
    if length is not None and len(values) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(values)}: {tuple(values)}.")
    if len(values) < min_length:
        raise ValueError(f"{name} must have at least {min_length} entries, got {tuple(values)}.")
    return tuple(check_int(v, f"{name}[{i}]") for i, v in enumerate(values))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Replicate-pad ``x`` on H and W up to the next multiples of ``multiple``, centred.

    Always calls ``F.pad`` (with zero widths where nothing is needed), so a traced graph has
    no size-dependent branch and generalises to other input sizes.

    Args:
        x: ``(B, C, H, W)`` float.
        multiple: the divisor both padded sizes must have, >= 1.

    Returns:
        ``(padded, top, left)``: ``padded`` is ``(B, C, H', W')`` with ``H'``, ``W'`` the
        smallest multiples of ``multiple`` at least ``H``, ``W``; the input sits at
        ``padded[..., top:top + H, left:left + W]``.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}; add dimensions with x[None].")
    height, width = x.shape[-2], x.shape[-1]
    pad_h = (multiple - height % multiple) % multiple
    pad_w = (multiple - width % multiple) % multiple
    top, left = pad_h // 2, pad_w // 2
    return F.pad(x, [left, pad_w - left, top, pad_h - top], mode="replicate"), top, left


class PadToMultiple(nn.Module):
    """Run ``net`` on ``x`` replicate-padded to a multiple of ``multiple``, then crop back.

    A U-Net with ``k`` halvings needs sizes divisible by ``2**k``; this wrapper lets it take
    any size (e.g. 37 x 45). The padding is split between both sides (centred) and uses
    edge replication, so it adds no artificial edges. Sizes already divisible are passed
    through unchanged. Only shape arithmetic, no data-dependent control flow: the module
    can be traced (``torch.jit.trace``) and exported.

    Args:
        net: a module mapping ``(B, C_in, H', W')`` to ``(B, C_out, H', W')`` for padded
            sizes ``H'``, ``W'``.
        multiple: the divisor the padded H and W must have, >= 1 (1 means no padding).

    Shapes:
        ``(B, C_in, H, W)`` float, any ``H, W >= 1``, to ``(B, C_out, H, W)`` in ``net``'s
        output units.
    """

    def __init__(self, net: nn.Module, multiple: int) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}.")
        self.net = net
        self.multiple = check_int(multiple, "multiple",
                                  hint="pass the network's size divisor, e.g. 16 for four halvings")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, top, left = pad_to_multiple(x, self.multiple)
        return self.net(padded)[..., top:top + x.shape[-2], left:left + x.shape[-1]]

    def extra_repr(self) -> str:
        return f"multiple={self.multiple}"
