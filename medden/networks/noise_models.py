"""Noise models: the likelihood ``p(x | s)`` of a noisy pixel ``x`` given its clean signal ``s``.

A noise model is the reconstruction term of an unsupervised hierarchical VAE denoiser (HDN)
and so of the Direct Denoiser trained beside it (Salmon & Krull): the VAE proposes a signal
``s`` and is scored by ``log p(x | s)`` of the noisy image it saw. Each model here is an
``nn.Module`` with the interface of :class:`NoiseModel`:

* :class:`GaussianNoiseModel`: ``x ~ N(s, sigma^2)``.
* :class:`PoissonGaussianNoiseModel`: ``x ~ N(s, gain * max(s, 0) + read_sigma^2)``, the
  Gaussian approximation of shot plus read noise, with estimators from noisy images alone
  (:meth:`~PoissonGaussianNoiseModel.from_noisy`) or from noisy/clean pairs.
* :class:`GaussianMixtureNoiseModel`: the pn2v/HDN mixture of Gaussians whose weights, mean
  offsets and standard deviations are polynomials of the signal, fitted to pixel pairs.

Conventions for every model: ``observed`` and ``signal`` are floating tensors of one shape,
usually ``(B, C, H, W)`` but any shape is accepted; pixels (and channels) are independent and
share one set of parameters. Intensities are in the data's own units (often [0, 1], never
assumed); parameters such as ``sigma`` are in those units. ``log_likelihood`` is a natural-log
density in ``x`` (it integrates to 1 over ``x``). Sampling uses the ``generator`` passed in, or
a fresh one seeded from the operating system: the global torch generator is never touched.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal

from medden.core.validation import check_finite, check_int, check_odd_int, check_positive, lookup_by_name

__all__ = [
    "NOISE_MODELS",
    "GaussianMixtureNoiseModel",
    "GaussianNoiseModel",
    "NoiseModel",
    "PoissonGaussianNoiseModel",
    "build_noise_model",
    "estimate_poisson_gaussian",
]

#: median of a chi-square variable with one degree of freedom: median(z^2) for z ~ N(0, 1)
_CHI2_1_MEDIAN = 0.454936423119572
#: smallest gain a fitted Poisson-Gaussian model is given (its log is stored, so not 0)
_MIN_GAIN = 1e-12


def _check_tensor(value: torch.Tensor, name: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}.")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {value.dtype}; convert it with .float().")
    check_finite(value, name)


def _check_pair(observed: torch.Tensor, signal: torch.Tensor, names: tuple[str, str] = ("observed", "signal")) -> None:
    _check_tensor(observed, names[0])
    _check_tensor(signal, names[1])
    if observed.shape != signal.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(observed.shape)} and "
            f"{tuple(signal.shape)}; pass one signal value per observed pixel."
        )



def _generator_for(tensor: torch.Tensor, generator: torch.Generator | None) -> torch.Generator:
    if generator is not None:
        return generator
    fresh = torch.Generator(device=tensor.device)
    fresh.seed()  # OS entropy; the global generator stays untouched
    return fresh


def _standard_normal(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


class NoiseModel(nn.Module, ABC):
    """Base class: a per-pixel likelihood ``p(x | s)``; ``forward`` is :meth:`log_likelihood`.

    Subclasses implement the hooks ``_log_likelihood``, ``_sample`` and :meth:`variance`; the
    public methods check their inputs first.
    """

    def log_likelihood(self, observed: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        """Per-pixel ``log p(observed | signal)``.

        Args:
            observed: noisy pixels ``x``, floating, e.g. ``(B, C, H, W)``, finite, any units.
            signal: clean signal ``s`` of the same shape and units.

        Returns:
            tensor of the inputs' shape (and the promoted floating dtype), natural-log density
            values in ``(-inf, inf)``; differentiable in ``signal`` and in the parameters.

        Raises:
            TypeError: an input is not a floating tensor.
            ValueError: an input holds NaN/inf, or the shapes differ.
        """
        _check_pair(observed, signal)
        return self._log_likelihood(observed, signal)

    def forward(self, observed: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`log_likelihood`."""
        return self.log_likelihood(observed, signal)

    def sample(self, signal: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``x ~ p(x | signal)`` independently for every pixel.

        Args:
            signal: clean signal, floating, any shape, finite.
            generator: torch generator on ``signal``'s device; ``None`` uses a fresh one seeded
                from the operating system.

        Returns:
            noisy tensor of ``signal``'s shape, dtype and device.
        """
        _check_tensor(signal, "signal")
        return self._sample(signal, _generator_for(signal, generator))

    @abstractmethod
    def variance(self, signal: torch.Tensor) -> torch.Tensor:
        """``Var(x | s)`` per pixel: same shape as ``signal``, > 0, in squared intensity units."""

    @abstractmethod
    def _log_likelihood(self, observed: torch.Tensor, signal: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _sample(self, signal: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


class _CentredGaussian(NoiseModel):
    """``x ~ N(s, variance(s))``: subclasses override only :meth:`variance`."""

    def _log_likelihood(self, observed: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        return Normal(signal, self.variance(signal).sqrt(), validate_args=False).log_prob(observed)

    def _sample(self, signal: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return signal + self.variance(signal).sqrt().to(signal.dtype) * _standard_normal(signal, generator)


def _register_log(module: nn.Module, name: str, value: float, learnable: bool) -> None:
    tensor = torch.tensor(math.log(value))
    if learnable:
        module.register_parameter(name, nn.Parameter(tensor))
    else:
        module.register_buffer(name, tensor)


class GaussianNoiseModel(_CentredGaussian):
    """Signal-independent Gaussian noise: ``x ~ N(s, sigma^2)``.

    Args:
        sigma: noise standard deviation in intensity units, > 0.
        learnable: store ``log(sigma)`` as a trainable ``Parameter`` (else a buffer).

    Example:
        >>> model = GaussianNoiseModel(0.1)
        >>> model.log_likelihood(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)).shape
        torch.Size([1, 1, 2, 2])
    """

    def __init__(self, sigma: float, learnable: bool = False) -> None:
        super().__init__()
        _register_log(self, "log_sigma", check_positive(sigma, "sigma"), learnable)

    @property
    def sigma(self) -> torch.Tensor:
        """0-dim tensor, > 0."""
        return self.log_sigma.exp()

    def variance(self, signal: torch.Tensor) -> torch.Tensor:
        return (2 * self.log_sigma).exp().expand(signal.shape)


class PoissonGaussianNoiseModel(_CentredGaussian):
    """Shot plus read noise, Gaussian approximation: ``x ~ N(s, gain * max(s, 0) + read_sigma^2)``.

    The variance is floored at ``min_variance``. For counts ``x = Poisson(peak * s) / peak``
    plus read noise, ``gain = 1 / peak``. Both parameters are stored as logs so they stay
    positive while they train jointly with a VAE.

    Args:
        gain: variance per unit of signal, > 0 (use a tiny value for near-Gaussian noise).
        read_sigma: signal-independent standard deviation, > 0, in intensity units.
        learnable: store ``log(gain)`` and ``log(read_sigma)`` as trainable parameters (else
            buffers).
        min_variance: floor of the variance, > 0, in squared intensity units.
    """

    def __init__(self, gain: float, read_sigma: float, learnable: bool = True, min_variance: float = 1e-6) -> None:
        super().__init__()
        _register_log(self, "log_gain", check_positive(gain, "gain"), learnable)
        _register_log(self, "log_read_sigma", check_positive(read_sigma, "read_sigma"), learnable)
        self.register_buffer("min_variance", torch.tensor(check_positive(min_variance, "min_variance")))

    @property
    def gain(self) -> torch.Tensor:
        """0-dim tensor, > 0."""
        return self.log_gain.exp()

    @property
    def read_sigma(self) -> torch.Tensor:
        """0-dim tensor, > 0."""
        return self.log_read_sigma.exp()

    def variance(self, signal: torch.Tensor) -> torch.Tensor:
        raw = self.gain * signal.clamp(min=0) + (2 * self.log_read_sigma).exp()
        return torch.maximum(raw, self.min_variance.to(raw.dtype))

    @classmethod
    def from_noisy(
        cls, images: torch.Tensor, n_bins: int = 16, learnable: bool = True, min_variance: float = 1e-6
    ) -> PoissonGaussianNoiseModel:
        """A model with ``gain`` and ``read_sigma`` from :func:`estimate_poisson_gaussian` on noisy images.

        Args:
            images: ``(B, C, H, W)`` noisy floating tensor, ``H, W >= 4``.
            n_bins: intensity bins of the variance-vs-mean regression, >= 2.
            learnable: as in the constructor.
            min_variance: as in the constructor; also the floor of ``read_sigma^2``.
        """
        gain, read_sigma = estimate_poisson_gaussian(images, n_bins=n_bins)
        return cls._fitted(gain, read_sigma, learnable, min_variance)

    @classmethod
    def from_pairs(
        cls, noisy: torch.Tensor, clean: torch.Tensor, n_bins: int = 16, learnable: bool = True,
        min_variance: float = 1e-6,
    ) -> PoissonGaussianNoiseModel:
        """A model with ``gain`` and ``read_sigma`` regressed on noisy/clean pairs.

        Args:
            noisy: noisy floating tensor, any shape.
            clean: its clean signal, same shape.
            n_bins: intensity bins of the variance-vs-signal regression, >= 2.
            learnable: as in the constructor.
            min_variance: as in the constructor; also the floor of ``read_sigma^2``.
        """
        gain, read_sigma = estimate_poisson_gaussian(noisy, clean, n_bins=n_bins)
        return cls._fitted(gain, read_sigma, learnable, min_variance)

    @classmethod
    def _fitted(cls, gain: float, read_sigma: float, learnable: bool, min_variance: float) -> PoissonGaussianNoiseModel:
        min_variance = check_positive(min_variance, "min_variance")
        return cls(max(gain, _MIN_GAIN), max(read_sigma, math.sqrt(min_variance)), learnable, min_variance)


def _fit_variance_line(means: torch.Tensor, variances: torch.Tensor) -> tuple[float, float]:
    """Least squares ``variance ~ gain * mean + read^2`` with relative residuals (chi-square
    scatter grows with the variance); returns ``(gain, read_sigma)``, both >= 0."""
    weights = 1.0 / variances.clamp(min=torch.finfo(variances.dtype).tiny)
    design = torch.stack([means, torch.ones_like(means)], dim=1) * weights[:, None]
    gain, read_variance = torch.linalg.lstsq(design, (variances * weights)[:, None]).solution[:, 0].tolist()
    return max(gain, 0.0), math.sqrt(max(read_variance, 0.0))


def _equal_count_bins(key: torch.Tensor, n_bins: int) -> list[torch.Tensor]:
    return list(torch.argsort(key).tensor_split(n_bins))


def estimate_poisson_gaussian(
    noisy: torch.Tensor, clean: torch.Tensor | None = None, n_bins: int = 16
) -> tuple[float, float]:
    """Estimate ``(gain, read_sigma)`` of ``Var(x | s) = gain * s + read_sigma^2``.

    Pixels are sorted by signal into ``n_bins`` bins of equal count and a straight line is fitted
    to (mean signal, noise variance) per bin, weighting each bin by ``1 / variance^2``.

    * With ``clean``: the signal is ``clean`` and a bin's variance is the mean of
      ``(noisy - clean)^2``.
    * Without (noisy images alone): every 2 x 2 block ``[[a, b], [c, d]]`` gives a local mean
      ``(a + b + c + d) / 4`` and a diagonal Haar detail ``(a - b - c + d) / 2``. The detail
      cancels any locally linear signal and, for locally constant noise variance ``v``, is
      ``N(0, v)`` and independent of the block mean. Blocks are binned by the mean of their 8
      neighbouring blocks (so the binning does not depend on a block's own noise, and a bin's
      average block mean is an unbiased signal level); a bin's variance is the median of the
      squared details divided by 0.4549 (the median of chi-square with one degree of
      freedom), so blocks on edges and texture, whose detail holds signal, are outvoted. This
      is the classic local-mean/local-variance scatter fit made robust. It assumes spatially
      white noise, near-Gaussian per pixel (at a few counts per pixel Poisson's heavy tail
      makes the median read low: gain high, read_sigma low), and images smooth at the 2-pixel
      scale over most of their area. ``read_sigma`` is an extrapolation to zero signal and is
      poorly determined when the darkest pixels are far above 0 or shot noise dominates.

    Negative fitted values (e.g. no signal dependence at all) are returned as 0.

    Args:
        noisy: floating tensor, ``(B, C, H, W)`` with ``H, W >= 4`` when ``clean`` is None
            (odd sizes lose their last row/column), any shape otherwise; any units.
        clean: the clean signal, same shape as ``noisy``, or None.
        n_bins: number of bins, >= 2; each needs a few hundred pixels (blocks) to be reliable.

    Returns:
        ``(gain, read_sigma)`` as Python floats >= 0: variance per unit signal and a standard
        deviation in intensity units.
    """
    n_bins = check_int(n_bins, "n_bins", 2)
    if clean is not None:
        _check_pair(noisy, clean, ("noisy", "clean"))
        signal = clean.detach().reshape(-1).double()
        squared = (noisy.detach().reshape(-1).double() - signal) ** 2
        bins = _equal_count_bins(signal, n_bins)
        means = torch.stack([signal[b].mean() for b in bins])
        variances = torch.stack([squared[b].mean() for b in bins])
        return _fit_variance_line(means, variances)
    _check_tensor(noisy, "noisy")
    if noisy.ndim != 4 or min(noisy.shape[-2:]) < 4:
        raise ValueError(f"noisy must be (B, C, H, W) with H, W >= 4 when clean is None, got {tuple(noisy.shape)}.")
    x = noisy.detach().double()
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]  # even size
    a, b, c, d = x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    block_mean = (a + b + c + d) / 4
    key = _blind_spot_mean(block_mean, 3).reshape(-1)
    block_mean, detail_sq = block_mean.reshape(-1), (((a - b - c + d) / 2) ** 2).reshape(-1)
    if block_mean.numel() < n_bins:
        raise ValueError(f"noisy has {block_mean.numel()} 2 x 2 blocks, fewer than n_bins={n_bins}; pass more images.")
    bins = _equal_count_bins(key, n_bins)
    means = torch.stack([block_mean[b].mean() for b in bins])
    variances = torch.stack([detail_sq[b].median() for b in bins]) / _CHI2_1_MEDIAN
    return _fit_variance_line(means, variances)


class GaussianMixtureNoiseModel(NoiseModel):
    """pn2v/HDN noise model: a mixture of ``K`` Gaussians whose parameters are polynomials of ``s``.

    With ``t = clip((s - min_signal) / (max_signal - min_signal), 0, 1)`` and ``range =
    max_signal - min_signal``, the ``3 K`` polynomials ``sum_j weight[i, j] t^j`` give, per
    component ``k``: a logit (the weights are their softmax), a mean offset ``o_k`` (times
    ``range``) and a log standard deviation (relative to ``range``). The offsets are shifted by
    their weighted mean, so the mixture mean is exactly ``s``: component means are
    ``s + o_k - sum_j w_j o_j``. Standard deviations are ``sqrt(min_sigma^2 + (range *
    exp(.))^2)``, smooth and >= ``min_sigma``. Outside ``[min_signal, max_signal]`` the shape
    of the distribution is that at the nearest end (only its centre follows ``s``).

    Every hyperparameter needed to rebuild the model lives in ``state_dict``: ``weight``
    (``(3 K, n_coeffs)``), ``min_signal``, ``max_signal`` and ``min_sigma`` (buffers); see
    :meth:`from_state_dict`. Fitting is by :meth:`fit`, :meth:`calibrate_from_pairs` or
    :meth:`calibrate_from_noisy`. A VAE normally keeps its noise model fixed: the
    ``calibrate_*`` constructors return the model with ``requires_grad`` off.

    Args:
        n_gaussians: mixture components ``K``, >= 1.
        n_coeffs: polynomial coefficients per parameter (2 is linear in ``s``), >= 1.
        min_signal: lowest signal of the calibration range, in intensity units.
        max_signal: highest signal of the range, > ``min_signal``.
        min_sigma: smallest component standard deviation, > 0, in intensity units.
    """

    def __init__(
        self, n_gaussians: int = 3, n_coeffs: int = 2, min_signal: float = 0.0, max_signal: float = 1.0,
        min_sigma: float = 1e-3,
    ) -> None:
        super().__init__()
        k = check_int(n_gaussians, "n_gaussians", 1)
        check_int(n_coeffs, "n_coeffs", 1)
        low, high = float(min_signal), float(max_signal)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"min_signal and max_signal must be finite, got {min_signal!r} and {max_signal!r}.")
        if high <= low:
            raise ValueError(f"max_signal must be > min_signal, got max_signal={high!r} and min_signal={low!r}.")
        self.register_buffer("min_signal", torch.tensor(low))
        self.register_buffer("max_signal", torch.tensor(high))
        self.register_buffer("min_sigma", torch.tensor(check_positive(min_sigma, "min_sigma")))
        # deterministic start: offsets and widths spread a little to break the components' symmetry
        spread = torch.linspace(-1.0, 1.0, k) if k > 1 else torch.zeros(1)
        weight = torch.zeros(3 * k, n_coeffs)
        weight[k : 2 * k, 0] = 0.05 * spread
        weight[2 * k :, 0] = math.log(0.1) + 0.2 * spread
        self.weight = nn.Parameter(weight)

    @property
    def n_gaussians(self) -> int:
        return self.weight.shape[0] // 3

    @property
    def n_coeffs(self) -> int:
        return self.weight.shape[1]

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> GaussianMixtureNoiseModel:
        """Rebuild a model from its ``state_dict`` (e.g. ``torch.load(path, weights_only=True)``)."""
        rows, n_coeffs = state["weight"].shape
        model = cls(rows // 3, n_coeffs, float(state["min_signal"]), float(state["max_signal"]),
                    float(state["min_sigma"]))
        model.load_state_dict(state)
        return model

    def mixture_parameters(self, signal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-pixel ``(log_weights, means, stds)``, each ``signal.shape + (K,)`` in the dtype promoted
        from ``signal`` and ``weight``; weights sum to 1, ``stds >= min_sigma``, and
        ``sum(exp(log_weights) * means) == signal``."""
        dtype = torch.promote_types(signal.dtype, self.weight.dtype)
        low, high = self.min_signal.to(dtype), self.max_signal.to(dtype)
        span = high - low
        t = ((signal.to(dtype) - low) / span).clamp(0, 1).unsqueeze(-1)
        powers = t ** torch.arange(self.n_coeffs, dtype=dtype, device=signal.device)
        logits, offsets, log_stds = (powers @ self.weight.to(dtype).T).split(self.n_gaussians, dim=-1)
        log_weights = logits.log_softmax(dim=-1)
        offsets = offsets * span
        offsets = offsets - (log_weights.exp() * offsets).sum(dim=-1, keepdim=True)
        log_var = torch.logaddexp(2 * self.min_sigma.to(dtype).log(), 2 * (log_stds + span.log()))
        return log_weights, signal.to(dtype).unsqueeze(-1) + offsets, (0.5 * log_var).exp()

    def variance(self, signal: torch.Tensor) -> torch.Tensor:
        log_weights, means, stds = self.mixture_parameters(signal)
        offsets = means - signal.unsqueeze(-1)
        return (log_weights.exp() * (stds**2 + offsets**2)).sum(dim=-1)

    def _log_likelihood(self, observed: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        log_weights, means, stds = self.mixture_parameters(signal)
        per_component = Normal(means, stds, validate_args=False).log_prob(observed.unsqueeze(-1))
        return torch.logsumexp(log_weights + per_component, dim=-1)

    def _sample(self, signal: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        log_weights, means, stds = self.mixture_parameters(signal)
        k = self.n_gaussians
        pick = torch.multinomial(log_weights.exp().reshape(-1, k), 1, generator=generator).reshape(*signal.shape, 1)
        mean, std = means.gather(-1, pick).squeeze(-1), stds.gather(-1, pick).squeeze(-1)
        return (mean + std * _standard_normal(mean, generator)).to(signal.dtype)

    def fit(
        self, signal: torch.Tensor, observed: torch.Tensor, steps: int = 1000, lr: float = 0.05,
        batch_size: int = 4096, generator: torch.Generator | None = None,
    ) -> list[float]:
        """Maximise the mean log-likelihood of (signal, observed) pixel pairs with Adam.

        Each step draws ``batch_size`` pairs with replacement; the learning rate decays from
        ``lr`` to 0 on a cosine schedule. Only ``weight`` is trained; the signal range is kept,
        so set it to cover ``signal`` when constructing the model.

        Args:
            signal: clean (or pseudo-clean) signal, floating, any shape, on the model's device.
            observed: the noisy pixels, same shape.
            steps: optimiser steps, >= 1.
            lr: Adam learning rate, > 0.
            batch_size: pairs per step, >= 1.
            generator: torch generator on the data's device for the batches; ``None`` uses a
                fresh one seeded from the operating system.

        Returns:
            each step's loss (negative mean log-likelihood of its batch before the update, in
            nats per pixel).
        """
        _check_pair(observed, signal)
        steps, batch_size = check_int(steps, "steps", 1), check_int(batch_size, "batch_size", 1)
        optimizer = torch.optim.Adam([self.weight], lr=check_positive(lr, "lr"))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        signal, observed = signal.detach().reshape(-1), observed.detach().reshape(-1)
        generator = _generator_for(signal, generator)
        trainable, losses = self.weight.requires_grad, []
        self.weight.requires_grad_(True)
        try:
            with torch.enable_grad():
                for _ in range(steps):
                    idx = torch.randint(signal.numel(), (batch_size,), generator=generator, device=signal.device)
                    loss = -self._log_likelihood(observed[idx], signal[idx]).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    losses.append(loss.item())
        finally:
            self.weight.requires_grad_(trainable)
        return losses

    @classmethod
    def calibrate_from_pairs(
        cls, noisy: torch.Tensor, clean: torch.Tensor, n_gaussians: int = 3, n_coeffs: int = 2,
        min_sigma: float | None = None, steps: int = 1000, lr: float = 0.05, batch_size: int = 4096,
        generator: torch.Generator | None = None,
    ) -> GaussianMixtureNoiseModel:
        """A frozen model fitted to noisy/clean pairs over the clean signal's range.

        Args:
            noisy: noisy floating tensor, any shape.
            clean: its clean signal, same shape, not constant.
            n_gaussians: see the class.
            n_coeffs: see the class.
            min_sigma: see the class; None means 1e-3 of the clean signal's range.
            steps: see :meth:`fit`.
            lr: see :meth:`fit`.
            batch_size: see :meth:`fit`.
            generator: see :meth:`fit`.

        Returns:
            the model on ``clean``'s device, float32 parameters, ``requires_grad`` off.
        """
        _check_pair(noisy, clean, ("noisy", "clean"))
        low, high = clean.min().item(), clean.max().item()
        if high <= low:
            raise ValueError(f"clean is constant ({low!r}); the noise model needs a range of signals to calibrate.")
        model = cls(n_gaussians, n_coeffs, low, high, 1e-3 * (high - low) if min_sigma is None else min_sigma)
        model.to(clean.device).fit(clean, noisy, steps=steps, lr=lr, batch_size=batch_size, generator=generator)
        return model.requires_grad_(False)

    @classmethod
    def calibrate_from_noisy(
        cls, noisy: torch.Tensor, denoiser: Callable[[torch.Tensor], torch.Tensor] | None = None,
        window: int = 5, **kwargs,
    ) -> GaussianMixtureNoiseModel:
        """A frozen model fitted to noisy images alone, against a pseudo-clean estimate.

        This is an approximation (pn2v's "bootstrapping"): the pairs are (noisy, estimate), not
        (noisy, signal), so the model also absorbs the estimate's own error. By default the
        estimate is the mean of the ``window x window`` neighbourhood without its centre pixel
        (a blind spot, so the estimate's noise is independent of the pixel it scores); it adds
        about ``1 / (window^2 - 1)`` of the noise variance and blurs edges and fine detail,
        which read as extra noise. A trained self-supervised denoiser (e.g. Noise2Void) given as
        ``denoiser`` is a better estimate on real images.

        Args:
            noisy: ``(B, C, H, W)`` noisy floating tensor, ``H, W > window // 2``.
            denoiser: maps ``noisy`` to a same-shape estimate of the signal (run without
                gradients), or None for the blind-spot mean.
            window: odd neighbourhood size of the blind-spot mean, >= 3.
            **kwargs: passed to :meth:`calibrate_from_pairs` (``n_gaussians``, ``steps``, ...).

        Returns:
            the fitted model, as :meth:`calibrate_from_pairs`.
        """
        _check_tensor(noisy, "noisy")
        if denoiser is None:
            estimate = _blind_spot_mean(noisy, window)
        else:
            with torch.no_grad():
                estimate = denoiser(noisy)
        return cls.calibrate_from_pairs(noisy, estimate, **kwargs)


def _blind_spot_mean(images: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of each pixel's ``window x window`` neighbours, the pixel itself excluded (reflect padding)."""
    window = check_odd_int(window, "window", 3)
    if images.ndim != 4 or min(images.shape[-2:]) <= window // 2:
        raise ValueError(f"noisy must be (B, C, H, W) with H, W > {window // 2}, got {tuple(images.shape)}.")
    b, c, h, w = images.shape
    kernel = torch.ones(1, 1, window, window, dtype=images.dtype, device=images.device)
    kernel[..., window // 2, window // 2] = 0
    padded = F.pad(images.detach().reshape(b * c, 1, h, w), [window // 2] * 4, mode="reflect")
    return (F.conv2d(padded, kernel) / (window * window - 1)).reshape(b, c, h, w)


#: noise models by name, for :func:`build_noise_model` and configs
NOISE_MODELS: dict[str, type[NoiseModel]] = {
    "gaussian": GaussianNoiseModel,
    "poisson_gaussian": PoissonGaussianNoiseModel,
    "gmm": GaussianMixtureNoiseModel,
}


def build_noise_model(name: str, **kwargs) -> NoiseModel:
    """Build a noise model by name, e.g. ``build_noise_model("gaussian", sigma=0.1)``."""
    return lookup_by_name(NOISE_MODELS, name, "noise model")(**kwargs)


def calibrated_noise_model(name: str, noisy_images, sigma: float | None = None) -> NoiseModel:
    """A frozen noise model calibrated from noisy images alone (no clean data): what a bundle
    uses as the VAE's likelihood when only noisy images exist.

    Args:
        name: ``"gaussian"`` (``sigma`` if given, else the median wavelet estimate over the
            images), ``"poisson_gaussian"`` (:meth:`PoissonGaussianNoiseModel.from_noisy`) or
            ``"gmm"`` (:meth:`GaussianMixtureNoiseModel.calibrate_from_noisy`).
        noisy_images: ``(C, H, W)`` arrays or tensors; different sizes are centre-cropped to
            the smallest common size before they are stacked.
        sigma: the known noise level for ``"gaussian"``, data units.

    Returns:
        the model with ``requires_grad`` off (it is the likelihood, not something to learn).
    """
    from medden.core.noise_estimation import wavelet_noise_sigma

    images = [torch.as_tensor(image, dtype=torch.float32) for image in noisy_images]
    if not images:
        raise ValueError("noisy_images is empty: there is nothing to calibrate the noise model on.")
    height, width = min(i.shape[-2] for i in images), min(i.shape[-1] for i in images)
    batch = torch.stack([i[..., (i.shape[-2] - height) // 2:(i.shape[-2] - height) // 2 + height,
                           (i.shape[-1] - width) // 2:(i.shape[-1] - width) // 2 + width] for i in images])
    lookup_by_name(NOISE_MODELS, name, "noise model")  # a clear error for an unknown name
    if name == "gaussian":
        level = sigma if sigma is not None else float(wavelet_noise_sigma(batch).median())
        model = GaussianNoiseModel(level)
    elif name == "poisson_gaussian":
        model = PoissonGaussianNoiseModel.from_noisy(batch, learnable=False)
    else:
        model = GaussianMixtureNoiseModel.calibrate_from_noisy(batch)
    return model.requires_grad_(False)


def noise_model_template(name: str) -> NoiseModel:
    """An uncalibrated, frozen noise model with the structure :func:`calibrated_noise_model`
    builds for ``name``: the placeholder a bundle's inference config fills from a checkpoint
    (the calibrated values are in the weights)."""
    templates = {"gaussian": lambda: GaussianNoiseModel(1.0),
                 "poisson_gaussian": lambda: PoissonGaussianNoiseModel(1.0, 1.0, learnable=False),
                 "gmm": GaussianMixtureNoiseModel}
    return lookup_by_name(templates, name, "noise model")().requires_grad_(False)
