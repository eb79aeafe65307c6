"""A hierarchical (ladder) VAE for unsupervised denoising, in the spirit of HDN.

Hierarchical DivNoising (Prakash et al., "Interpretable unsupervised diversity denoising and
artefact removal") trains a ladder VAE whose decoder predicts the clean signal ``s`` and whose
likelihood ``p(x | s)`` is a separately given *noise model*. The evidence lower bound (ELBO) is

    log p(x) >= E_q[log p(x | s(z))] - KL(q(z | x) || p(z)),

and after training, decoded posterior samples ``s(z), z ~ q(z | x)`` are plausible clean
images; their mean approximates the MMSE estimate. Salmon & Krull's Direct Denoiser
(:class:`~medden.networks.DirectDenoiser`) is then trained to regress those samples' mean.

Layout, for an image of (padded) size ``H x W`` and ``n_groups`` latent groups ``z_1..z_n``:

* bottom-up: a 3x3 convolution to ``n_filters``, then per group a stride-2 convolution and
  gated residual blocks; group ``i`` (1-based) works at ``H / 2**i``.
* top-down: the top group's prior ``p(z_n)`` is a learned per-channel (mean, log-variance),
  broadcast over the top grid, so any input size works (a spatially stationary prior, not a
  per-position tensor of fixed size as in HDN). Lower groups have ``p(z_i | z_>i)`` from the
  top-down features and ``q(z_i | z_>i, x)`` from top-down and bottom-up features merged; each
  step is followed by gated residual blocks and a 2x nearest upsampling plus convolution.
* output head: a convolution to ``in_channels`` giving ``s`` in normalised units, which is
  then mapped back to data units with ``data_mean`` and ``data_std``.

Units. ``"log_likelihood"``, ``"kl"``, ``"kl_per_group"`` and ``"elbo_loss"`` are all in nats
per observed value of the *unpadded* input (one pixel of one channel), averaged over the
batch: total KL of an image (summed over groups, latent channels and latent positions) is
divided by ``C * H * W``. The log likelihood is the noise model's density of ``x`` in data
units. Padding the input to a multiple of ``2 ** n_groups`` keeps the bound valid: the decoder
crops its output, so the model is a generative model of the unpadded image.
"""

from __future__ import annotations

import secrets

import torch
import torch.nn.functional as F
from torch import nn

from medden.core.validation import check_finite, check_int, check_number, check_positive, check_size

__all__ = ["GatedResBlock", "LadderVAE", "VAEKeys", "gaussian_kl"]

#: log-variances are soft-limited to (-LOGVAR_LIMIT, LOGVAR_LIMIT) so exp() stays finite
LOGVAR_LIMIT = 12.0


class VAEKeys:
    """Keys of the dictionary :meth:`LadderVAE.forward` returns."""

    SIGNAL = "signal"
    KL = "kl"
    KL_RAW = "kl_raw"
    KL_PER_GROUP = "kl_per_group"
    LOG_LIKELIHOOD = "log_likelihood"
    ELBO_LOSS = "elbo_loss"


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor,
                logvar_p: torch.Tensor) -> torch.Tensor:
    """Elementwise ``KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p)))`` in nats.

    All arguments broadcast together; the result has the broadcast shape and is >= 0.
    Written with ``expm1`` so that it is exactly zero when ``q == p``.
    """
    log_ratio = logvar_q - logvar_p
    kl = 0.5 * (torch.expm1(log_ratio) - log_ratio + (mu_q - mu_p).pow(2) * torch.exp(-logvar_p))
    return kl.clamp_min(0.0)  # rounding can leave -1e-9 where the exact value is 0


def _soft_limit(logvar: torch.Tensor) -> torch.Tensor:
    return LOGVAR_LIMIT * torch.tanh(logvar / LOGVAR_LIMIT)


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: the same image must decode the same way in train and eval mode
    # and with batches of one, as in sampling.
    return nn.GroupNorm(num_groups=next(g for g in (8, 4, 2, 1) if channels % g == 0), num_channels=channels)


class GatedResBlock(nn.Module):
    """``x + a * sigmoid(b)`` with ``(a, b)`` from norm-ELU-conv-norm-ELU-dropout-conv.

    Args:
        channels: feature channels, kept.
        dropout: channel dropout probability before the gating convolution.

    Shapes:
        ``(B, channels, H, W)`` to the same shape.
    """

    def __init__(self, channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(channels), nn.ELU(), nn.Conv2d(channels, channels, 3, padding=1),
            _norm(channels), nn.ELU(), nn.Dropout2d(dropout), nn.Conv2d(channels, 2 * channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update, gate = self.body(x).chunk(2, dim=1)
        return x + update * torch.sigmoid(gate)


def _blocks(channels: int, count: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(*(GatedResBlock(channels, dropout) for _ in range(count)))


class _LatentGroup(nn.Module):
    """One group of latents: prior, posterior and the map from a sample back to features.

    The top group (``top=True``) has a learned, spatially constant prior and a posterior from
    the bottom-up features alone; a lower group conditions both on the top-down features.
    """

    def __init__(self, channels: int, latent_channels: int, top: bool, dropout: float) -> None:
        super().__init__()
        self.top = top
        if top:
            self.prior_params = nn.Parameter(torch.zeros(1, 2 * latent_channels, 1, 1))  # starts at N(0, 1)
        else:
            self.prior_conv = nn.Conv2d(channels, 2 * latent_channels, 3, padding=1)
        merged = channels if top else 2 * channels
        self.posterior_net = nn.Sequential(nn.Conv2d(merged, channels, 1), GatedResBlock(channels, dropout),
                                           nn.Conv2d(channels, 2 * latent_channels, 3, padding=1))
        self.latent_to_features = nn.Conv2d(latent_channels, channels, 3, padding=1)
        self.combine = None if top else nn.Conv2d(2 * channels, channels, 1)

    @staticmethod
    def _split(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = params.chunk(2, dim=1)
        return mu, _soft_limit(logvar)

    def prior(self, top_down: torch.Tensor | None, grid: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``p(z_i | z_>i)``, each ``(B, latent, *grid)``; ``grid`` is ``(B, h, w)``."""
        if self.top:
            mu, logvar = self._split(self.prior_params)
            shape = (grid[0], mu.shape[1], *grid[1:])
            return mu.expand(shape), logvar.expand(shape)
        return self._split(self.prior_conv(top_down))

    def posterior(self, top_down: torch.Tensor | None, bottom_up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``q(z_i | z_>i, x)``, each ``(B, latent, h, w)``."""
        merged = bottom_up if self.top else torch.cat([top_down, bottom_up], dim=1)
        return self._split(self.posterior_net(merged))

    def decode(self, z: torch.Tensor, top_down: torch.Tensor | None) -> torch.Tensor:
        """Top-down features after this group, ``(B, channels, h, w)``."""
        features = self.latent_to_features(z)
        if self.top:
            return features
        return self.combine(torch.cat([top_down, features], dim=1))


def _pad_amounts(size: int, multiple: int) -> tuple[int, int]:
    extra = -size % multiple
    return extra // 2, extra - extra // 2


class LadderVAE(nn.Module):
    """Hierarchical VAE whose likelihood is an external noise model (HDN-style).

    Args:
        in_channels: image channels ``C``.
        n_groups: latent groups; group ``i`` works at ``1 / 2**i`` of the input resolution, so
            inputs are padded internally to a multiple of ``2 ** n_groups``.
        n_filters: feature channels of every layer.
        latent_channels: channels of each latent group.
        blocks_per_group: gated residual blocks per group, in each direction.
        dropout: channel dropout inside the residual blocks (call ``.eval()`` to turn it off).
        free_bits: KL floor in nats per latent variable ("free bits", Kingma et al. 2016): for
            each group and latent channel the KL averaged over batch and latent positions is
            replaced by ``max(kl, free_bits)`` in ``"kl"`` and ``"elbo_loss"``; ``"kl_raw"``
            keeps the unfloored value. 0 turns it off.
        noise_model: module with ``log_likelihood(observed, signal)`` returning the per-pixel
            log density ``(B, C, H, W)``, both arguments in data units. It is registered as a
            submodule (moved and saved with the VAE); freeze it with
            ``noise_model.requires_grad_(False)`` if it was trained beforehand.
        data_mean, data_std: normalisation of the data; the network sees
            ``(x - data_mean) / data_std`` and its output is mapped back.

    Shapes:
        ``(B, C, H, W)`` float, any ``H, W >= 1``, data units.
    """

    def __init__(self, in_channels: int = 1, n_groups: int = 4, n_filters: int = 32, latent_channels: int = 8,
                 blocks_per_group: int = 1, dropout: float = 0.0, free_bits: float = 0.0,
                 noise_model: nn.Module | None = None, data_mean: float = 0.0, data_std: float = 1.0) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("n_groups", n_groups), ("n_filters", n_filters),
                            ("latent_channels", latent_channels), ("blocks_per_group", blocks_per_group)):
            check_int(value, name)
        check_number(dropout, "dropout", 0.0, 1.0, open_maximum=True)
        check_number(free_bits, "free_bits", 0.0, hint="it is in nats per latent variable; use 0 to disable")
        if not callable(getattr(noise_model, "log_likelihood", None)) or not isinstance(noise_model, nn.Module):
            raise TypeError(
                "noise_model must be a torch.nn.Module with a log_likelihood(observed, signal) method, got "
                f"{type(noise_model).__name__}; see medden.networks.noise_models."
            )
        check_positive(data_std, "data_std", hint="pass the training data's standard deviation")
        self.in_channels = int(in_channels)
        self.n_groups = int(n_groups)
        self.free_bits = float(free_bits)
        self.noise_model = noise_model
        self.register_buffer("data_mean", torch.tensor(float(data_mean)))
        self.register_buffer("data_std", torch.tensor(float(data_std)))
        # identifies this VAE in checkpoints, so a Direct Denoiser trained on its samples can be
        # matched to it; drawn from the OS, not torch's (often seeded) generator
        self.register_buffer("model_id", torch.tensor(secrets.randbits(62), dtype=torch.int64))

        self.stem = nn.Conv2d(in_channels, n_filters, 3, padding=1)
        self.bottom_up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(n_filters, n_filters, 3, stride=2, padding=1),
                          _blocks(n_filters, blocks_per_group, dropout))
            for _ in range(n_groups))
        # index i holds group i + 1 (finest first), the top group is last
        self.groups = nn.ModuleList(
            _LatentGroup(n_filters, latent_channels, top=i == n_groups - 1, dropout=dropout) for i in range(n_groups))
        self.top_down = nn.ModuleList(_blocks(n_filters, blocks_per_group, dropout) for _ in range(n_groups))
        self.upsample = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(n_filters, n_filters, 3, padding=1))
            for _ in range(n_groups))
        self.head = nn.Sequential(_blocks(n_filters, blocks_per_group, dropout),
                                  nn.Conv2d(n_filters, in_channels, 3, padding=1))

    @property
    def total_downsampling(self) -> int:
        """Factor between the input and the top latent grid, ``2 ** n_groups``."""
        return 2 ** self.n_groups

    # ----------------------------------------------------------------------------- helpers
    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}.")
        if x.ndim != 4 or x.shape[1] != self.in_channels or min(x.shape) == 0:
            raise ValueError(
                f"x must be (B, {self.in_channels}, H, W) with no empty dimension, got shape {tuple(x.shape)}; "
                "add batch and channel dimensions with x[None, None] for a single 2D image."
            )
        check_finite(x, "x")

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, slice]]:
        """Pad H and W to a multiple of ``total_downsampling``; also return the crop back."""
        (top, bottom), (left, right) = (_pad_amounts(s, self.total_downsampling) for s in x.shape[-2:])
        crop = (slice(top, top + x.shape[-2]), slice(left, left + x.shape[-1]))
        if top or bottom or left or right:
            # reflection needs the padding to be smaller than the image; replicate otherwise
            fits = max(top, bottom) < x.shape[-2] and max(left, right) < x.shape[-1]
            x = F.pad(x, (left, right, top, bottom), mode="reflect" if fits else "replicate")
        return x, crop

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], tuple[slice, slice]]:
        """Bottom-up features per group (finest first) of the normalised, padded input."""
        padded, crop = self._pad((x - self.data_mean) / self.data_std)
        features, per_group = self.stem(padded), []
        for layer in self.bottom_up:
            features = layer(features)
            per_group.append(features)
        return per_group, crop

    @staticmethod
    def _sample(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def _decode(self, bottom_up: list[torch.Tensor] | None, grid: torch.Size,
                generator: torch.Generator | None) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        """Run the top-down path; sample ``q`` when ``bottom_up`` is given, else the prior.

        Returns the normalised, padded signal and per group (finest first) the tuple
        ``(mu_q, logvar_q, mu_p, logvar_p)`` (empty when sampling the prior).
        """
        features, stats = None, []
        for i in reversed(range(self.n_groups)):
            group = self.groups[i]
            mu_p, logvar_p = group.prior(features, grid)
            if bottom_up is None:
                z = self._sample(mu_p, logvar_p, generator)
            else:
                mu_q, logvar_q = group.posterior(features, bottom_up[i])
                z = self._sample(mu_q, logvar_q, generator)
                stats.append((mu_q, logvar_q, mu_p, logvar_p))
            features = self.upsample[i](self.top_down[i](group.decode(z, features)))
        return self.head(features), stats[::-1]

    def _to_data_units(self, signal: torch.Tensor, crop: tuple[slice, slice]) -> torch.Tensor:
        return signal[..., crop[0], crop[1]] * self.data_std + self.data_mean

    def _kl_terms(self, stats: list[tuple[torch.Tensor, ...]], n_values: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per-group floored KL and total raw KL, both in nats per observed value."""
        floored, raw = [], 0.0
        for stat in stats:
            per_channel = gaussian_kl(*stat).mean(dim=(0, 2, 3))  # nats per latent variable, per channel
            positions = stat[0].shape[-2] * stat[0].shape[-1]
            raw = raw + per_channel.sum() * positions / n_values
            floored.append(per_channel.clamp_min(self.free_bits).sum() * positions / n_values)
        return floored, raw

    # ----------------------------------------------------------------------------- public
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor | list]:
        """Encode, draw one posterior sample and decode it; return the ELBO's parts.

        Args:
            x: noisy images ``(B, C, H, W)`` float, data units, finite.
            generator: optional generator for the latent draws (on ``x``'s device); the
                global RNG otherwise.

        Returns:
            A dict (keys in :class:`VAEKeys`): ``"signal"`` ``(B, C, H, W)`` decoded mean of
            one posterior sample in data units; scalars ``"log_likelihood"``, ``"kl"``,
            ``"kl_raw"`` and ``"elbo_loss" = -log_likelihood + kl`` in nats per observed value
            (see the module docstring); ``"kl_per_group"`` a list of ``n_groups`` scalars,
            finest group first, summing to ``"kl"``.

        Raises:
            ValueError: ``x`` is not ``(B, C, H, W)`` or holds NaN/inf.
        """
        self._check_input(x)
        bottom_up, crop = self._encode(x)
        signal, stats = self._decode(bottom_up, bottom_up[-1].shape[:1] + bottom_up[-1].shape[2:], generator)
        signal = self._to_data_units(signal, crop)
        log_likelihood = self.noise_model.log_likelihood(x, signal).mean()
        kl_per_group, kl_raw = self._kl_terms(stats, x[0].numel())
        kl = torch.stack(kl_per_group).sum()
        return {VAEKeys.SIGNAL: signal, VAEKeys.LOG_LIKELIHOOD: log_likelihood, VAEKeys.KL: kl,
                VAEKeys.KL_RAW: kl_raw, VAEKeys.KL_PER_GROUP: kl_per_group,
                VAEKeys.ELBO_LOSS: kl - log_likelihood}

    @torch.no_grad()
    def sample_posterior(self, x: torch.Tensor, n_samples: int = 1,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoded signals of ``n_samples`` independent posterior samples (the encoder runs once).

        Their mean approximates the MMSE denoising of ``x``; call ``.eval()`` first so dropout
        is off. No gradients are recorded.

        Args:
            x: noisy images ``(B, C, H, W)`` float, data units, finite.
            n_samples: number of samples ``N >= 1``.
            generator: optional generator for the latent draws; the global RNG otherwise.

        Returns:
            ``(N, B, C, H, W)`` float, data units.
        """
        check_int(n_samples, "n_samples")
        self._check_input(x)
        bottom_up, crop = self._encode(x)
        grid = bottom_up[-1].shape[:1] + bottom_up[-1].shape[2:]
        return torch.stack([self._to_data_units(self._decode(bottom_up, grid, generator)[0], crop)
                            for _ in range(int(n_samples))])

    @torch.no_grad()
    def sample_prior(self, n: int, spatial_shape: tuple[int, int],
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Unconditional samples of the clean signal, decoded from ``z ~ p(z)``.

        Args:
            n: number of images.
            spatial_shape: ``(H, W)``; generated at the next multiple of ``total_downsampling``
                and centre-cropped.
            generator: optional generator for the latent draws; the global RNG otherwise.

        Returns:
            ``(n, C, H, W)`` float, data units.
        """
        check_int(n, "n")
        check_size(spatial_shape, "spatial_shape")
        pads = [_pad_amounts(int(s), self.total_downsampling) for s in spatial_shape]
        padded = [int(s) + sum(p) for s, p in zip(spatial_shape, pads)]
        grid = torch.Size([int(n)] + [s // self.total_downsampling for s in padded])
        signal, _ = self._decode(None, grid, generator)
        crop = tuple(slice(p[0], p[0] + int(s)) for p, s in zip(pads, spatial_shape))
        return self._to_data_units(signal, crop)
