"""Invertible layers of a Glow/RealNVP image flow, each with an exact log-determinant.

Every layer maps ``(B, C, H, W)`` float to the same shape (``squeeze`` to ``(B, 4C, H/2, W/2)``)
and has ``forward(x) -> (y, logdet)`` and ``inverse(y) -> x``, ``logdet`` a ``(B,)`` tensor
in nats: ``log |det dy/dx|`` of that sample's Jacobian.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from medden.core.validation import check_int

__all__ = ["COUPLING_MASKS", "ActNorm", "AffineCoupling", "FlowStep", "InvertibleConv1x1", "SplitPrior", "ZeroConv2d",
           "gaussian_log_density", "squeeze", "unsqueeze"]

COUPLING_MASKS = ("channel", "checkerboard")
_LOG_2PI = math.log(2 * math.pi)


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, 4C, H/2, W/2)``: each 2 x 2 block becomes 4 channels (log-det 0)."""
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"squeeze needs even height and width, got {h} x {w}.")
    x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * 4, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`squeeze`: ``(B, 4C, H, W) -> (B, C, 2H, 2W)``."""
    b, c, h, w = x.shape
    x = x.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c // 4, h * 2, w * 2)


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor | None = None,
                         log_std: torch.Tensor | None = None) -> torch.Tensor:
    """``log N(z; mean, exp(log_std)^2)`` summed over all but the batch axis: ``(B,)`` nats
    (standard normal when ``mean`` and ``log_std`` are None)."""
    if mean is None:
        per_value = -0.5 * (_LOG_2PI + z**2)
    else:
        per_value = -0.5 * (_LOG_2PI + ((z - mean) * torch.exp(-log_std)) ** 2) - log_std
    return per_value.flatten(1).sum(1)


class ActNorm(nn.Module):
    """Per-channel affine ``y = (x + bias) * exp(log_scale)``, initialised from the first batch
    so that batch has zero mean and unit variance per channel (Glow). Under
    ``torch.distributed`` the initial values are averaged over ranks so every copy agrees.
    ``initialized`` is a buffer: loaded weights are not re-initialised."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        bias = -x.mean(dim=(0, 2, 3), keepdim=True)
        log_scale = -torch.log(x.std(dim=(0, 2, 3), keepdim=True) + 1e-6)
        if dist.is_available() and dist.is_initialized():
            for value in (bias, log_scale):
                dist.all_reduce(value)
                value /= dist.get_world_size()
        self.bias.copy_(bias)
        self.log_scale.copy_(log_scale)
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not bool(self.initialized):
            self._initialize(x)
        logdet = self.log_scale.sum() * x.shape[2] * x.shape[3]
        return (x + self.bias) * torch.exp(self.log_scale), logdet.expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.log_scale) - self.bias


class InvertibleConv1x1(nn.Module):
    """Glow's invertible 1 x 1 convolution in LU form: ``W = P L (U + diag(sign * exp(log_s)))``,
    so ``log |det W| = sum(log_s)`` costs nothing. Starts as a random rotation."""

    def __init__(self, channels: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        rotation = torch.linalg.qr(torch.randn(channels, channels, generator=generator))[0]
        permutation, lower, upper = torch.linalg.lu(rotation)
        diagonal = torch.diagonal(upper)
        self.register_buffer("permutation", permutation)
        self.register_buffer("sign_s", torch.sign(diagonal))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("identity", torch.eye(channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(diagonal.abs()))

    def weight(self) -> torch.Tensor:
        lower = self.lower * self.lower_mask + self.identity
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.permutation @ lower @ upper

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = self.log_s.sum() * x.shape[2] * x.shape[3]
        return F.conv2d(x, self.weight()[:, :, None, None]), logdet.expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return F.conv2d(y, torch.linalg.inv(self.weight())[:, :, None, None])


class ZeroConv2d(nn.Conv2d):
    """A 3 x 3 convolution started at zero, its output scaled by ``exp(3 * log_gain)`` (Glow):
    the last layer of coupling networks and priors, so every coupling starts near identity."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)
        self.log_gain = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * torch.exp(3 * self.log_gain)


def _checkerboard(height: int, width: int, parity: int, like: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(height, device=like.device)[:, None]
    cols = torch.arange(width, device=like.device)[None, :]
    return ((rows + cols) % 2 == parity).to(like.dtype)[None, None]


class AffineCoupling(nn.Module):
    """Affine coupling: half of the values condition a scale and shift of the other half.

    ``mask="channel"`` splits the channels (the first ``C // 2`` condition the rest when
    ``parity`` is 0, the other way round when 1); ``mask="checkerboard"`` splits pixels in a
    spatial checkerboard (RealNVP), the conditioning squares seeing the mask as an extra
    channel. The scale is ``sigmoid(h + 2)`` (Glow's stable form), so ``logdet`` is the sum of
    its logs over the transformed values.

    Args:
        channels: input channels (>= 2 for ``"channel"``).
        hidden: width of the conditioning network (3 x 3, 1 x 1, zero-started 3 x 3 convs).
        mask: ``"channel"`` or ``"checkerboard"``.
        parity: 0 or 1, which half conditions.
    """

    def __init__(self, channels: int, hidden: int, mask: str = "channel", parity: int = 0) -> None:
        super().__init__()
        if mask not in COUPLING_MASKS:
            raise ValueError(f"mask must be one of {COUPLING_MASKS}, got {mask!r}.")
        if mask == "channel" and channels < 2:
            raise ValueError(f"a channel coupling needs >= 2 channels, got {channels}; use mask='checkerboard' "
                             "or squeeze first.")
        self.mask, self.parity = mask, int(parity) % 2
        if mask == "channel":
            kept = channels // 2
            self.sizes = (kept, channels - kept) if self.parity == 0 else (channels - kept, kept)
            n_in, n_out = self.sizes[0], self.sizes[1]
        else:
            self.sizes = (channels, channels)
            n_in, n_out = channels + 1, channels
        self.net = nn.Sequential(nn.Conv2d(n_in, hidden, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, hidden, 1), nn.ReLU(inplace=True), ZeroConv2d(hidden, 2 * n_out))

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(fixed, moved, scale, shift)``: the conditioning part, the part transformed, and
        the affine parameters computed from the conditioning part (the same for ``x`` and its
        image, which is what makes the coupling invertible). For a checkerboard both parts
        are full-size, zero off their squares."""
        if self.mask == "channel":
            fixed, moved = x.split(self.sizes, dim=1)
            condition = fixed
        else:
            keep = _checkerboard(x.shape[2], x.shape[3], self.parity, x)
            fixed, moved = x * keep, x * (1 - keep)
            condition = torch.cat([fixed, keep.expand(x.shape[0], 1, -1, -1)], 1)
        shift, raw = self.net(condition).chunk(2, dim=1)
        scale = torch.sigmoid(raw + 2.0)
        if self.mask == "checkerboard":  # the conditioning squares keep scale 1 and shift 0
            scale, shift = scale + (1 - scale) * keep, shift * (1 - keep)
        return fixed, moved, scale, shift

    def _join(self, fixed: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        return torch.cat([fixed, moved], 1) if self.mask == "channel" else fixed + moved

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fixed, moved, scale, shift = self._split(x)
        return self._join(fixed, (moved + shift) * scale), torch.log(scale).flatten(1).sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        fixed, moved, scale, shift = self._split(y)
        return self._join(fixed, moved / scale - shift)


class FlowStep(nn.Module):
    """One Glow step: :class:`ActNorm`, :class:`InvertibleConv1x1` (left out for one channel,
    where it would be a scalar ActNorm already has) and :class:`AffineCoupling`."""

    def __init__(self, channels: int, hidden: int, mask: str = "channel", parity: int = 0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        channels = check_int(channels, "channels")
        layers: list[nn.Module] = [ActNorm(channels)]
        if channels > 1:
            layers.append(InvertibleConv1x1(channels, generator))
        layers.append(AffineCoupling(channels, hidden, mask, parity))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, step = layer(x)
            logdet = logdet + step
        return x, logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y


class SplitPrior(nn.Module):
    """Multi-scale factor-out (Glow): half the channels leave the flow as latents whose Gaussian
    mean and log-std are predicted from the half that goes on (a zero-started conv)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.kept = channels // 2
        self.prior = ZeroConv2d(self.kept, 2 * (channels - self.kept))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x -> (kept, latent, log p(latent | kept))``."""
        kept, latent = x[:, : self.kept], x[:, self.kept:]
        mean, log_std = self.prior(kept).chunk(2, dim=1)
        return kept, latent, gaussian_log_density(latent, mean, log_std)

    def inverse(self, kept: torch.Tensor, latent: torch.Tensor | None = None, temperature: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Join ``kept`` with ``latent`` (drawn from the prior at ``temperature`` when None)."""
        mean, log_std = self.prior(kept).chunk(2, dim=1)
        if latent is None:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
            latent = mean + temperature * torch.exp(log_std) * noise
        return torch.cat([kept, latent], 1)
