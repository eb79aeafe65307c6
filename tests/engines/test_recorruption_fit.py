"""The --fit training in engines: R2R patch batches, the trainer, its handlers and fit_network."""

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Timer

from medden.core.keys import Keys
from medden.engines import LossHistory, TimeBudget, TimedSnapshots, fit_network, r2r_batches
from medden.engines.recorruption_fit import random_patch
from medden.networks import general_denoiser_net
from medden.transforms import R2RPair


def _noisy_slices(n=3, size=48, sigma=0.08, seed=0):
    rng = np.random.default_rng(seed)
    base = np.tile(np.linspace(0.2, 0.8, size, dtype=np.float32), (size, 1))
    return [(base + sigma * rng.standard_normal((size, size))).astype(np.float32)[None] for _ in range(n)]


def _tiny_net(seed=0):
    torch.manual_seed(seed)
    net = general_denoiser_net(channels=(4, 8))
    for p in net.parameters():  # a non-zero start, so "from these weights" is measurable
        torch.nn.init.normal_(p, std=0.05)
    return net


def test_r2r_batches_are_seeded_recorrupted_patches():
    slices, sigmas = _noisy_slices(), [0.1, 0.2, 0.3]
    first = next(r2r_batches(slices, sigmas, R2RPair(0.5).set_random_state(1), 16, 4, np.random.default_rng(0)))
    again = next(r2r_batches(slices, sigmas, R2RPair(0.5).set_random_state(1), 16, 4, np.random.default_rng(0)))
    assert first[Keys.INPUT].shape == first[Keys.TARGET].shape == (4, 1, 16, 16)
    assert first[Keys.INPUT].dtype == torch.float32
    torch.testing.assert_close(first[Keys.INPUT], again[Keys.INPUT], rtol=0, atol=0)
    # reference: the same crops drawn by hand, one shared z per patch (the R2R formula)
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(1)
    for b, index in enumerate(rng.integers(0, 3, 4)):
        y = torch.from_numpy(random_patch(slices[index], 16, rng))
        z = torch.randn(y.shape, generator=generator) * sigmas[index]
        torch.testing.assert_close(first[Keys.INPUT][b], y + 0.5 * z)
        torch.testing.assert_close(first[Keys.TARGET][b], y - z / 0.5)


def test_r2r_batches_mirror_pad_slices_smaller_than_the_patch():
    batch = next(r2r_batches([np.ones((1, 5, 7), np.float32)], [0.0], R2RPair(), 8, 2, np.random.default_rng(0)))
    assert batch[Keys.INPUT].shape == (2, 1, 8, 8)
    torch.testing.assert_close(batch[Keys.INPUT], torch.ones(2, 1, 8, 8))  # sigma 0: the image itself


def test_fit_network_first_loss_is_the_r2r_mse_of_the_seeded_batch():
    slices, net = _noisy_slices(), _tiny_net()
    start = general_denoiser_net(channels=(4, 8))
    start.load_state_dict(net.state_dict())
    result = fit_network(net, slices, minutes=5.0, batch_size=2, patch=16, seed=3, log_every=1, max_iterations=3)
    assert result.iterations == 3 and len(result.losses) == 3
    from medden.core.noise_estimation import wavelet_noise_sigma

    sigmas = [float(wavelet_noise_sigma(torch.from_numpy(s)[None])[0]) for s in slices]
    batch = next(r2r_batches(slices, sigmas, R2RPair(0.5).set_random_state(3), 16, 2, np.random.default_rng(3)))
    with torch.no_grad():
        expected = torch.nn.functional.mse_loss(start.train()(batch[Keys.INPUT]), batch[Keys.TARGET])
    assert result.losses[0] == pytest.approx(float(expected), rel=1e-6)


def test_fit_network_fine_tunes_in_place_from_the_given_weights():
    net = _tiny_net()
    start = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
    times = []
    result = fit_network(net, _noisy_slices(), minutes=0.01, batch_size=2, patch=16, learning_rate=1e-3,
                         on_minute=([0.001, 5.0], lambda t, n: times.append((t, n.training))), log_every=1)
    end = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert result.iterations >= 1 and result.seconds >= 0.6 and len(result.losses) == result.iterations
    assert not torch.equal(start, end)
    assert torch.corrcoef(torch.stack([start, end]))[0, 1] > 0.9  # fine-tuned, not re-initialised
    assert times == [(0.001, False), (5.0, False)]  # every snapshot, in eval mode; the unreached one at the end
    assert not net.training


def test_fit_network_leaves_the_global_generators_alone():
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    fit_network(_tiny_net(), _noisy_slices(), minutes=1.0, batch_size=2, patch=16, max_iterations=2)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"minutes": 0}, ValueError, "minutes"),
    ({"alpha": -1.0}, ValueError, "alpha"),
    ({"slices": []}, ValueError, "no slices"),
    ({"max_iterations": 0}, ValueError, "max_iterations"),
    ({"patch": 1}, ValueError, "patch"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
])
def test_fit_network_rejects_bad_arguments(kwargs, error, match):
    arguments = {"network": _tiny_net(), "slices": _noisy_slices(1), "minutes": 0.01, **kwargs}
    with pytest.raises(error, match=match):
        fit_network(**arguments)


def _counting_engine():
    return Engine(lambda engine, batch: {"loss": torch.tensor(float(engine.state.iteration))})


class _FakeClock(Timer):
    """A Timer whose value is the engine's iteration count in seconds (deterministic tests)."""

    def __init__(self, engine):
        super().__init__()
        self.engine = engine

    def value(self):
        return float(self.engine.state.iteration)


def test_loss_history_records_every_nth_loss():
    engine, history = _counting_engine(), LossHistory(every=2)
    history.attach(engine)
    engine.run(range(5), max_epochs=1)
    assert history.losses == [2.0, 4.0]
    with pytest.raises(ValueError, match="every"):
        LossHistory(every=0)


def test_time_budget_stops_after_the_first_iteration_past_it():
    engine = _counting_engine()
    TimeBudget(3.0, _FakeClock(engine)).attach(engine)
    engine.run(range(100), max_epochs=1)
    assert engine.state.iteration == 3
    with pytest.raises(ValueError, match="seconds"):
        TimeBudget(0.0)


def test_timed_snapshots_fire_when_due_and_the_rest_at_the_end():
    engine, network, taken = _counting_engine(), torch.nn.Linear(1, 1), []
    snapshots = TimedSnapshots([0.05, 1 / 60, 10.0], lambda t, n: taken.append((t, engine.state.iteration, n.training)),
                               network, _FakeClock(engine))
    snapshots.attach(engine)
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: network.train())
    engine.run(range(4), max_epochs=1)
    # 1/60 min = 1 s (after iteration 1), 0.05 min = 3 s (after iteration 3), 10 min never: at the end
    assert taken == [(1 / 60, 1, False), (0.05, 3, False), (10.0, 4, False)]
    with pytest.raises(ValueError, match="snapshot minutes"):
        TimedSnapshots([-1.0], print, network)
