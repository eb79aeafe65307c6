"""Choose the refinement step size ``eta`` and step count ``k``, or the Noisier2Noise ``alpha``, on a validation set.

The recorruption paper chooses both "to fit a validation dataset". :func:`tune_refinement`
scores every ``(eta, k)`` on ``(noisy, clean)`` pairs and reports the best, next to one plain
network pass and the noisy input itself, so a refinement that does not help is visible.
:func:`tune_noisier2noise_alpha` picks the ``alpha`` of
:func:`~medden.inference.noisier2noise_correction` the same way.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
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
from medden.inference.noisier2noise import noisier2noise_correction
from medden.inference.refinement import refinement_path
from medden.core.keys import Keys
from medden.metrics.image_quality import psnr, ssim
from medden.core.validation import check_int, check_positive, lookup_by_name

__all__ = ["RefinementChoice", "tune_noisier2noise_alpha", "tune_refinement", "TUNING_METRICS"]

#: metrics :func:`tune_refinement` can maximise, each ``(pred, target, data_range, spatial_dims) -> (B,)``
TUNING_METRICS: Mapping[str, Callable[..., torch.Tensor]] = MappingProxyType({"psnr": psnr, "ssim": ssim})

DEFAULT_ETAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class RefinementChoice:
    """The chosen refinement and the scores behind it (mean metric over validation images).

    Attributes:
        eta: chosen step size.
        steps: chosen number of steps; 0 means the noisy input scored best (the network
            hurts), and ``eta=1.0, steps=1`` is one plain pass.
        score: mean metric of the choice.
        one_pass_score: mean metric of one plain pass ``f(noisy)``.
        table: read-only mapping ``(eta, k) -> score`` for every tried eta and
            ``k = 0 .. max_steps``; ``k = 0`` is the noisy input itself.
    """

    eta: float
    steps: int
    score: float
    one_pass_score: float
    table: Mapping[tuple[float, int], float] = field(hash=False)

    @property
    def noisy_score(self) -> float:
        """Mean metric of the noisy input (the ``k = 0`` entries)."""
        return next(score for (_, k), score in self.table.items() if k == 0)

    @property
    def beats_one_pass(self) -> bool:
        """True when the choice scores strictly better than one plain network pass."""
        return self.score > self.one_pass_score


def tune_refinement(
    network: Callable[[torch.Tensor], torch.Tensor],
    data: Iterable[Any],
    etas: Sequence[float] = DEFAULT_ETAS,
    max_steps: int = 100,
    data_range: float = 1.0,
    base_inferer: Inferer | Callable | None = None,
    metric: str = "psnr",
    input_key: str = Keys.INPUT,
    clean_key: str = Keys.CLEAN,
) -> RefinementChoice:
    """Pick ``(eta, k)`` for :func:`~medden.inference.iterative_refinement` on validation pairs.

    ``data`` is read once. Every eta is run on each batch up to ``max_steps``, scoring after
    every step, so all ``k`` cost one run per eta and every ``(eta, k)`` sees the same noisy
    draw (a loader with random corruption is fine). Cost per batch:
    ``len(etas) * max_steps + 1`` network evaluations. Runs under ``torch.no_grad()``; put
    the network in eval mode and the tensors on its device first.

    The choice maximises the mean metric over the table plus one plain pass
    (``eta=1.0, steps=1``). Ties go to fewer steps, then to the larger eta. A ``UserWarning``
    says so when the choice is one plain pass (refinement does not help) or the noisy input
    (the network hurts).

    Args:
        network: callable ``(B, C, *spatial) -> `` tensor of the same shape.
        data: iterable of ``(noisy, clean)`` pairs or of dicts holding ``input_key`` and
            ``clean_key``; each a floating tensor ``(B, C, H, W)`` or ``(B, C, H, W, D)``.
        etas: distinct step sizes to try, each in (0, 1].
        max_steps: largest ``k`` tried, int >= 1.
        data_range: peak-to-peak range of the clean intensities, > 0 (see :mod:`medden.metrics.image_quality`).
        base_inferer: how each network evaluation is run; None means ``SimpleInferer()``.
        metric: ``"psnr"`` (dB) or ``"ssim"``; higher is better.
        input_key: key of the noisy batch when ``data`` yields dicts.
        clean_key: key of the clean batch when ``data`` yields dicts.

    Returns:
        A :class:`RefinementChoice`.

    Raises:
        TypeError: a bad argument type, or an item of ``data`` that is neither a pair nor a dict.
        ValueError: bad ``etas``/``max_steps``/``data_range``/``metric``, a missing key,
            mismatched noisy and clean shapes, or ``data`` yielding nothing.
    """
    f, score = _scorer(network, data_range, base_inferer, metric)
    etas = _check_etas(etas)
    max_steps = check_int(max_steps, "max_steps", 1)
    sums = dict.fromkeys([(eta, k) for eta in etas for k in range(max_steps + 1)], 0.0)
    one_pass_sum, count = 0.0, 0
    with torch.no_grad():
        for noisy, clean in (_unpack(item, input_key, clean_key) for item in data):
            noisy_score = score(noisy, clean)
            one_pass_sum += score(evaluate(f, noisy), clean)
            count += noisy.shape[0]
            for eta in etas:
                sums[eta, 0] += noisy_score
                for k, x in enumerate(refinement_path(f, noisy, eta, max_steps), start=1):
                    sums[eta, k] += score(x, clean)
    table = _means(sums, count)
    return _choose(table, one_pass_sum / count, metric)


def tune_noisier2noise_alpha(network: Callable[[torch.Tensor], torch.Tensor], data: Iterable[Any],
                             alphas: Sequence[float] = (0.5, 1.0, 2.0, 4.0), data_range: float = 1.0,
                             base_inferer: Inferer | Callable | None = None, metric: str = "psnr",
                             input_key: str = Keys.INPUT, clean_key: str = Keys.CLEAN) -> float:
    """Pick the ``alpha`` of :func:`~medden.inference.noisier2noise_correction` on validation pairs.

    Every ``alpha`` is scored on ``correction(f(noisy), noisy, alpha)`` against ``clean``, with
    one network evaluation per batch (``data`` is read once); the highest mean metric wins,
    ties going to the earlier alpha. Runs under ``torch.no_grad()``; put the network in eval
    mode and the tensors on its device first.

    Args:
        network: callable ``(B, C, *spatial) ->`` tensor of the same shape.
        data: ``(noisy, clean)`` pairs or dicts, as for :func:`tune_refinement`.
        alphas: the ratios ``sigma' / sigma`` to try, each > 0.
        data_range, base_inferer, metric, input_key, clean_key: as for :func:`tune_refinement`.

    Returns:
        The chosen alpha.

    Raises:
        TypeError, ValueError: as for :func:`tune_refinement`, or an empty ``alphas``.
    """
    f, score = _scorer(network, data_range, base_inferer, metric)
    alphas = tuple(check_positive(alpha, "alpha") for alpha in alphas)
    if not alphas:
        raise ValueError("alphas is empty; pass at least one ratio > 0, e.g. (0.5, 1.0, 2.0).")
    sums, count = dict.fromkeys(alphas, 0.0), 0
    with torch.no_grad():
        for noisy, clean in (_unpack(item, input_key, clean_key) for item in data):
            pred = evaluate(f, noisy)
            count += noisy.shape[0]
            for alpha in alphas:
                sums[alpha] += score(noisier2noise_correction(pred, noisy, alpha), clean)
    means = _means(sums, count)
    return max(alphas, key=lambda alpha: _orderable(means[alpha]))


def _scorer(network: Callable, data_range: float, base_inferer: Inferer | Callable | None,
            metric: str) -> tuple[Callable, Callable]:
    """The checked tuner arguments as ``f(x)`` (one network evaluation through the inferer) and
    ``score(x, clean)`` (the metric summed over the batch, a float)."""
    check_network(network)
    data_range = check_positive(data_range, "data_range")
    score_fn = lookup_by_name(TUNING_METRICS, metric, "metric")
    inferer = resolve_inferer(base_inferer)

    def f(x: torch.Tensor) -> torch.Tensor:
        return inferer(x, network)

    def score(x: torch.Tensor, clean: torch.Tensor) -> float:
        return float(score_fn(x, clean, data_range, spatial_dims=x.ndim - 2).sum())

    return f, score


def _means(sums: dict, count: int) -> dict:
    """Each sum over ``count`` validation images; refuses an empty validation set."""
    if count == 0:
        raise ValueError("data yielded no (noisy, clean) pairs; pass a non-empty validation set.")
    return {key: total / count for key, total in sums.items()}


def _check_etas(etas: Sequence[float]) -> tuple[float, ...]:
    if isinstance(etas, (str, bytes)) or not isinstance(etas, Iterable):
        raise TypeError(f"etas must be a sequence of step sizes in (0, 1], got {etas!r}.")
    checked = tuple(check_eta(eta) for eta in etas)
    if not checked:
        raise ValueError("etas is empty; pass at least one step size in (0, 1], e.g. (0.01, 0.1, 1.0).")
    if len(set(checked)) != len(checked):
        raise ValueError(f"etas must be distinct, got {tuple(etas)!r}; remove the duplicates.")
    return checked


def _unpack(item: Any, input_key: str, clean_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(item, Mapping):
        missing = [key for key in (input_key, clean_key) if key not in item]
        if missing:
            raise ValueError(
                f"a data item lacks key(s) {missing}; it has {sorted(map(str, item))}. "
                "Set input_key and clean_key to the names your loader uses."
            )
        noisy, clean = item[input_key], item[clean_key]
    elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
        noisy, clean = item
    else:
        raise TypeError(f"each data item must be a (noisy, clean) pair or a dict, got {type(item).__name__}.")
    check_batch(noisy, "noisy")
    check_batch(clean, "clean")
    if noisy.shape != clean.shape:
        raise ValueError(f"noisy shape {tuple(noisy.shape)} differs from clean shape {tuple(clean.shape)}.")
    return noisy, clean


def _choose(table: dict[tuple[float, int], float], one_pass: float, metric: str) -> RefinementChoice:
    candidates = {**table, (1.0, 1): one_pass}
    # highest score; ties go to fewer network evaluations, then to the larger step
    eta, steps = max(candidates, key=lambda key: (_orderable(candidates[key]), -key[1], key[0]))
    choice = RefinementChoice(eta, steps, candidates[eta, steps], one_pass, MappingProxyType(table))
    if steps == 0:
        warnings.warn(
            f"the noisy input scored best ({metric} {choice.score:.4g} vs one pass {one_pass:.4g}): "
            "the network makes these validation images worse; check its training domain and noise level.",
            UserWarning,
            stacklevel=3,
        )
    elif not choice.beats_one_pass:
        warnings.warn(
            f"no refinement (eta < 1 or more than one step) beat one plain network pass "
            f"({metric} {one_pass:.4g}); use steps=1, eta=1.0.",
            UserWarning,
            stacklevel=3,
        )
    return choice


def _orderable(score: float) -> float:
    return -math.inf if math.isnan(score) else score
