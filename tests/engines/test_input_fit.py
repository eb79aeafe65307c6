"""The --fit training in engines: the choice of snapshot, the held-out selection, fit_network's guarantee, its handlers.

Most fits here run under a clock 20 times faster than the wall clock (``fast_clock``), so that
the held-out loss, scored at most every 3 s of that clock, is scored several times in a
fraction of a second; one test runs on the real clock to check the budget.
"""

import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Timer

from medden.engines import (
    HeldOutSelection,
    LossHistory,
    NeighbourSlicePairs,
    RecorruptionPairs,
    TimeBudget,
    TimedSnapshots,
    build_fit_trainer,
    choose_snapshot,
    fit_network,
    held_out_loss,
    input_fit,
)
from medden.engines.fit_pairs import HeldOutItem
from medden.engines.input_fit import MIN_HELD_OUT_TILES
from medden.losses import MaskedMSELoss
from medden.metrics.image_quality import psnr
from medden.networks import general_denoiser_net

SPEED = 20.0


class _FastTimer(Timer):
    """An ``ignite`` Timer whose seconds pass ``SPEED`` times faster than the wall clock's."""

    def value(self):
        return super().value() * SPEED


@pytest.fixture
def fast_clock(monkeypatch):
    monkeypatch.setattr(input_fit, "Timer", _FastTimer)


def _clean(size=64):
    rows, cols = np.mgrid[:size, :size] / size
    return (0.3 + 0.4 * cols + 0.2 * ((rows - 0.5) ** 2 + (cols - 0.5) ** 2 < 0.08)).astype(np.float32)


def _noisy_volume(depth=6, sigma=0.1, seed=0):
    """``(depth, 64, 64)``: one clean slice (a ramp with a disc) repeated, each with its own Gaussian noise."""
    rng = np.random.default_rng(seed)
    return np.stack([_clean() + sigma * rng.standard_normal((64, 64)).astype(np.float32) for _ in range(depth)])


def _identity_net(seed=0):
    """A tiny default (bilinear) network; its zero last layer makes it the identity, its other weights are random."""
    torch.manual_seed(seed)
    return general_denoiser_net(architecture="bilinear", channels=(4, 8), full_channels=4)


def _state(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_choose_snapshot_keeps_only_a_clear_improvement():
    base = 1.0 + 0.1 * np.random.default_rng(0).standard_normal(24)
    keep, reason = choose_snapshot(base, base - 0.2)
    assert keep and reason.startswith("fitted model kept") and "24 tiles" in reason and "-2" in reason
    within_noise = base + np.tile([0.09, -0.11], 12)  # 1 % lower on average, standard error 2 %
    for best in (base, base + 0.1, within_noise):  # equal, worse, better by less than 2 standard errors
        keep, reason = choose_snapshot(base, best)
        assert not keep and reason.startswith("base model kept (not better by 2 standard errors)")
    few = np.ones(MIN_HELD_OUT_TILES - 1)
    keep, reason = choose_snapshot(few, few / 2)  # too few tiles to tell, even by a large margin
    assert not keep and reason.startswith(f"base model kept (fewer than {MIN_HELD_OUT_TILES} held-out tiles")
    assert "held-out loss 0.5 vs base 1" in reason


class _Offset(torch.nn.Module):
    """``x + offset``: its held-out loss against a zero target on zero input is ``offset ** 2``."""

    def __init__(self):
        super().__init__()
        self.offset = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        return x + self.offset


class _IterationClock(Timer):
    """A Timer reading the engine's iteration count as seconds (deterministic tests)."""

    def __init__(self, engine):
        super().__init__()
        self.engine = engine

    def value(self):
        return float(self.engine.state.iteration)


def test_held_out_selection_keeps_the_best_snapshot_and_stops_after_patience():
    network, script = _Offset(), [0.5, 0.2, 0.3, 0.25, 0.1]
    item = HeldOutItem(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), np.zeros((8, 8), np.int64))

    def step(engine, batch):
        with torch.no_grad():
            network.offset.fill_(script[engine.state.iteration - 1])

    engine = Engine(step)
    selection = HeldOutSelection(network, [item], every_seconds=1.0, patience=2, clock=_IterationClock(engine))
    selection.attach(engine)
    engine.run(range(5), max_epochs=1)
    assert engine.state.iteration == 4 and selection.stopped_early  # 0.3 and 0.25 do not beat 0.2: stop
    assert [(i, round(v, 6)) for _, i, v in selection.curve] == [(0, 1.0), (1, 0.25), (2, 0.04), (3, 0.09), (4, 0.0625)]
    assert selection.best_iteration == 2 and float(selection.best_state["offset"]) == pytest.approx(0.2)
    assert selection.base_tiles.tolist() == [1.0] and selection.best_tiles.tolist() == pytest.approx([0.04])


def test_fit_network_returns_the_base_weights_bitwise_when_every_snapshot_is_worse(fast_clock):
    net, pairs = _identity_net(), NeighbourSlicePairs([_noisy_volume()])
    start = _state(net)
    result = fit_network(net, pairs, minutes=1.0, learning_rate=1.0, batch_size=4, patch=32, patience=2,
                         max_iterations=400)  # a learning rate that wrecks the network at the first step
    assert result.chosen == "base" and result.reason.startswith("base model kept")
    assert all(torch.equal(v, start[k]) for k, v in net.state_dict().items())
    assert not net.training
    assert result.stopped == "no improvement" and len(result.curve) == 1 + 2  # the base, then two worse ones
    assert result.curve[0][1] == 0 and all(loss > result.curve[0][2] for _, _, loss in result.curve[1:])
    assert result.curve[0][2] == pytest.approx(float(held_out_loss(net, pairs.held_out_items()).mean()))
    report = json.loads(json.dumps(result.report()))
    assert report["chosen"] == "base" and report["held_out_curve"][0]["iteration"] == 0
    assert report["scheme"]["scheme"] == NeighbourSlicePairs.name


def test_fit_network_keeps_a_snapshot_that_denoises(fast_clock):
    volume = _noisy_volume()
    net, pairs = _identity_net(), NeighbourSlicePairs([volume])
    start = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
    result = fit_network(net, pairs, minutes=1.0, learning_rate=3e-3, batch_size=4, patch=32, max_iterations=150,
                         log_every=10)
    assert result.chosen == "fitted" and result.reason.startswith("fitted model kept"), result.reason
    assert result.best_loss < 0.95 * result.curve[0][2]  # 0.062 vs 0.076
    assert result.best_iteration > 0 and result.stopped in ("iterations", "no improvement")
    # the network holds the best snapshot (not the last weights), fine-tuned from the start, not re-initialised
    assert float(held_out_loss(net, pairs.held_out_items()).mean()) == pytest.approx(result.best_loss, rel=1e-6)
    end = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert not torch.equal(start, end) and torch.corrcoef(torch.stack([start, end]))[0, 1] > 0.7  # 0.85
    # and it denoises against the clean image, which the fit never saw
    noisy, clean = torch.from_numpy(volume[2])[None, None], torch.from_numpy(_clean())[None, None]
    with torch.no_grad():
        gain = float(psnr(net(noisy), clean, 1.0) - psnr(noisy, clean, 1.0))
    assert gain > 3.0, gain  # 7.9 dB
    assert len(result.losses) == result.iterations // 10


def test_fit_network_honours_the_budget_and_snapshots_in_eval_mode():
    net, times = _identity_net(), []
    result = fit_network(net, RecorruptionPairs([_noisy_volume(depth=1)]), minutes=0.02, batch_size=2, patch=16,
                         learning_rate=1e-3, on_minute=([0.001, 5.0], lambda t, n: times.append((t, n.training))))
    assert result.stopped == "budget" and result.iterations >= 1
    assert 1.2 <= result.seconds < 1.2 + 0.5  # the first iteration past 1.2 s ends it
    # no evaluation fell due (every 3 s at least): the base, then the final weights when the budget ended
    assert [iteration for _, iteration, _ in result.curve] == [0, result.iterations]
    assert times == [(0.001, False), (5.0, False)]  # every snapshot, in eval mode; the unreached one at the end


@pytest.mark.parametrize("scheme", [NeighbourSlicePairs, RecorruptionPairs])
def test_fit_network_first_loss_is_the_masked_mse_of_the_seeded_batch(scheme):
    pairs, net = scheme([_noisy_volume(depth=4)]), _identity_net()
    start = _identity_net()
    start.load_state_dict(net.state_dict())
    result = fit_network(net, pairs, minutes=5.0, batch_size=2, patch=16, seed=3, log_every=1, max_iterations=3)
    assert result.iterations == 3 and len(result.losses) == 3 and result.stopped == "iterations"
    batch = next(pairs.batches(16, 2, np.random.default_rng(3)))
    with torch.no_grad():
        expected = MaskedMSELoss()(start.train()(batch["input"]), batch["target"], batch["target_mask"])
    assert result.losses[0] == pytest.approx(float(expected), rel=1e-6)


def test_fit_network_leaves_the_global_generators_alone():
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    fit_network(_identity_net(), RecorruptionPairs([_noisy_volume(depth=1)]), minutes=1.0, batch_size=2, patch=16,
                max_iterations=2)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"minutes": 0}, ValueError, "minutes"),
    ({"max_iterations": 0}, ValueError, "max_iterations"),
    ({"patch": 1}, ValueError, "patch"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
])
def test_fit_network_rejects_bad_arguments(kwargs, error, match):
    arguments = {"network": _identity_net(), "pairs": RecorruptionPairs([_noisy_volume(depth=1)]), "minutes": 0.01,
                 **kwargs}
    with pytest.raises(error, match=match):
        fit_network(**arguments)


def test_build_fit_trainer_masks_the_loss():
    net = torch.nn.Conv2d(1, 1, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    batch = {"input": torch.ones(1, 1, 2, 2), "target": torch.tensor([[[[1.0, 1.0], [1.0, 99.0]]]]),
             "target_mask": torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])}
    trainer = build_fit_trainer(net, iter([batch]), 0.0, torch.device("cpu"), iterations=1)
    trainer.run()
    assert float(trainer.state.output["loss"]) == pytest.approx(1.0)  # the masked 99 does not count


def _counting_engine():
    return Engine(lambda engine, batch: {"loss": torch.tensor(float(engine.state.iteration))})


def test_loss_history_records_every_nth_loss():
    engine, history = _counting_engine(), LossHistory(every=2)
    history.attach(engine)
    engine.run(range(5), max_epochs=1)
    assert history.losses == [2.0, 4.0]
    with pytest.raises(ValueError, match="every"):
        LossHistory(every=0)


def test_time_budget_stops_after_the_first_iteration_past_it():
    engine = _counting_engine()
    TimeBudget(3.0, _IterationClock(engine)).attach(engine)
    engine.run(range(100), max_epochs=1)
    assert engine.state.iteration == 3
    with pytest.raises(ValueError, match="seconds"):
        TimeBudget(0.0)


def test_timed_snapshots_fire_when_due_and_the_rest_at_the_end():
    engine, network, taken = _counting_engine(), torch.nn.Linear(1, 1), []
    snapshots = TimedSnapshots([0.05, 1 / 60, 10.0], lambda t, n: taken.append((t, engine.state.iteration, n.training)),
                               network, _IterationClock(engine))
    snapshots.attach(engine)
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: network.train())
    engine.run(range(4), max_epochs=1)
    # 1/60 min = 1 s (after iteration 1), 0.05 min = 3 s (after iteration 3), 10 min never: at the end
    assert taken == [(1 / 60, 1, False), (0.05, 3, False), (10.0, 4, False)]
    with pytest.raises(ValueError, match="snapshot minutes"):
        TimedSnapshots([-1.0], print, network)


def test_a_skip_reason_keeps_the_base_weights_without_training():
    net = _identity_net()
    start = _state(net)
    result = fit_network(net, RecorruptionPairs([_noisy_volume(depth=1)]), minutes=1.0, batch_size=2, patch=16,
                         skip_reason="the noise is correlated between pixels")
    assert (result.chosen, result.stopped, result.iterations, result.curve) == ("base", "not fitted", 0, [])
    assert result.reason == "base model kept without fitting: the noise is correlated between pixels"
    assert all(torch.equal(v, start[k]) for k, v in net.state_dict().items()) and not net.training
    report = json.loads(json.dumps(result.report(), allow_nan=False))  # strict JSON: no NaN for "no loss"
    assert report["best_snapshot"]["held_out_loss"] is None
