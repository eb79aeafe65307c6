"""Training engine: learning, masking, checkpoints and resume, schedules, 2-process distributed."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from engine_fixtures import MaskedMSE, recorruption_datasets, tiny_network
from medden.engines import LossScheduleHandler, build_evaluator, build_trainer, make_train_step
from medden.io import CheckpointError, load_checkpoint, load_network_weights
from medden.core.keys import Keys

TESTS = Path(__file__).resolve().parents[1]


def _trainer(tmp_path, max_epochs, network=None, resume_from=None, with_eval=True, loss=None):
    train, val = recorruption_datasets()
    network = network or tiny_network()
    optimizer = torch.optim.Adam(network.parameters(), 1e-2)
    evaluator = build_evaluator(network, DataLoader(val, batch_size=4)) if with_eval else None
    trainer = build_trainer(network, optimizer, loss or MaskedMSE(), DataLoader(train, batch_size=4, shuffle=True),
                            max_epochs=max_epochs, output_dir=tmp_path, evaluator=evaluator, resume_from=resume_from,
                            progress_bar=False)
    return trainer, evaluator, network, optimizer


def test_short_recorruption_training_raises_validation_psnr(tmp_path):
    torch.manual_seed(0)
    trainer, evaluator, network, _ = _trainer(tmp_path, max_epochs=4)
    evaluator.run()
    before = evaluator.state.metrics["val_psnr"]
    trainer.run()
    after = evaluator.state.metrics["val_psnr"]
    assert after > before + 3.0, (before, after)
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "best.pt").is_file()
    best = load_checkpoint(tmp_path / "best.pt")
    assert set(best) == set(network.state_dict())  # best.pt is the bare network state dict
    assert list((tmp_path / "tensorboard").iterdir())


def test_resume_continues_from_the_saved_epoch_with_the_saved_weights(tmp_path):
    torch.manual_seed(0)
    trainer, _, network, _ = _trainer(tmp_path, max_epochs=2, with_eval=False)
    trainer.run()
    saved = {k: v.clone() for k, v in network.state_dict().items()}
    fresh = tiny_network(seed=123)
    resumed, _, resumed_net, resumed_opt = _trainer(tmp_path, max_epochs=3, network=fresh,
                                                    resume_from=tmp_path / "last.pt", with_eval=False)
    for key, value in resumed_net.state_dict().items():
        torch.testing.assert_close(value, saved[key])
    assert resumed.state.epoch == 2 and len(resumed_opt.state) > 0
    resumed.run()
    assert resumed.state.epoch == 3 and resumed.state.iteration == 3 * 8


def test_bad_checkpoints_raise_clear_errors(tmp_path):
    network = tiny_network()
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="not a readable PyTorch weights file"):
        load_network_weights(network, corrupt)
    other = tmp_path / "other.pt"
    torch.save(torch.nn.Conv2d(1, 1, 3).state_dict(), other)
    with pytest.raises(CheckpointError, match="saved from a different network"):
        load_network_weights(network, other)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_network_weights(network, tmp_path / "missing.pt")
    torch.save({"network": network.state_dict()}, other)
    with pytest.raises(CheckpointError, match="cannot resume training: it lacks"):
        _trainer(tmp_path, max_epochs=1, resume_from=other, with_eval=False)


class _Engine:
    """Just enough of a SupervisedTrainer to run one step."""

    def __init__(self, network):
        self.network, self.optimizer = network, torch.optim.SGD(network.parameters(), lr=0.1)
        self.loss_function, self.inferer = MaskedMSE(), lambda x, net: net(x)
        self.amp, self.scaler, self.non_blocking, self.optim_set_to_none = False, None, False, False
        self.state = type("State", (), {"device": torch.device("cpu")})()


def test_train_step_ignores_target_pixels_outside_the_mask():
    batch = {Keys.INPUT: torch.rand(2, 1, 16, 16), Keys.TARGET: torch.rand(2, 1, 16, 16),
             Keys.TARGET_MASK: (torch.rand(2, 1, 16, 16) > 0.5).float()}
    altered = dict(batch, **{Keys.TARGET: torch.where(batch[Keys.TARGET_MASK] > 0, batch[Keys.TARGET], 99.0)})
    results = []
    for b in (batch, altered):
        engine = _Engine(tiny_network())
        out = make_train_step()(engine, b)
        results.append((out["loss"].item(), [p.detach().clone() for p in engine.network.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)
    engine = _Engine(tiny_network())
    unmasked = make_train_step(mask_key=None)(engine, altered)["loss"].item()
    assert unmasked > 100  # without the mask the 99s dominate


def test_loss_schedule_handler_runs_progress_from_zero_to_one(tmp_path):
    class Recorder(MaskedMSE):
        def __init__(self):
            super().__init__()
            self.progress = []

        def set_progress(self, progress):
            self.progress.append(progress)

    loss = Recorder()
    trainer, *_ = _trainer(tmp_path, max_epochs=2, with_eval=False, loss=loss)
    trainer.run()
    assert loss.progress[0] == 0.0 and loss.progress[-1] == 1.0 and len(loss.progress) == 16
    assert all(b >= a for a, b in zip(loss.progress, loss.progress[1:]))
    with pytest.raises(TypeError, match="set_progress"):
        LossScheduleHandler(MaskedMSE())


def test_two_process_distributed_training_on_cpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(TESTS / "dist_worker.py"), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [(tmp_path / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    assert all(row[0] == "1" and row[1] == "2" for row in rows)  # both ran inside a 2-process group
    assert rows[0][2] == rows[1][2] == str(2 * 4)  # 32 images / 2 ranks / batch 4 = 4 iterations per epoch
    assert rows[0][3] == rows[1][3]  # DDP kept the replicas identical
    assert (tmp_path / "last.pt").is_file()


def test_resuming_a_finished_run_asks_for_more_epochs(tmp_path):
    trainer, *_ = _trainer(tmp_path, max_epochs=1, with_eval=False)
    trainer.run()
    with pytest.raises(ValueError, match="already trained 1 epochs, and max_epochs is 1"):
        _trainer(tmp_path, max_epochs=1, resume_from=tmp_path / "last.pt", with_eval=False)


@pytest.mark.parametrize("name, level", [("gaussian", (0.05, 0.1)), ("poisson", (20.0, 40.0)), ("bernoulli", (0.6, 0.9)),
                                         ("impulse", (0.05, 0.1)), ("text", (0.05, 0.1)),
                                         ("poisson_gaussian", (20.0, 40.0)), ("rician", (0.05, 0.1)),
                                         ("kspace", (0.05, 0.1)), ("low_dose_ct", (2e4, 5e4)),
                                         ("ct_nps", (2e4, 5e4)), ("mr_magnitude", (0.05, 0.1)),
                                         ("detector_blur", (20.0, 40.0))])
def test_recorruption_training_step_runs_for_every_corruption(name, level):
    from medden.data.datasets import CorruptedImageDataset
    from medden.transforms import CORRUPTIONS, make_corruption

    from engine_fixtures import smooth_images

    keyword = {"gaussian": "sigma_range", "poisson": "peak_range", "bernoulli": "keep_prob_range",
               "impulse": "replace_prob_range", "text": "coverage_range", "poisson_gaussian": "peak_range",
               "rician": "sigma_range", "kspace": "edge_probability_range", "low_dose_ct": "i0_range",
               "ct_nps": "i0_range", "mr_magnitude": "sigma_range", "detector_blur": "peak_range"}[name]
    assert set(CORRUPTIONS) == {"gaussian", "poisson", "bernoulli", "impulse", "text", "poisson_gaussian", "rician",
                                "kspace", "low_dose_ct", "ct_nps", "mr_magnitude", "detector_blur"}
    # detector noise leaves negative values, which its own Poisson counts refuse: recorrupt those with Gaussian noise
    recorruption = (make_corruption("gaussian", sigma_range=(0.05, 0.1)) if name == "detector_blur"
                    else make_corruption(name, **{keyword: level}))
    dataset = CorruptedImageDataset(smooth_images(4), noise=make_corruption(name, **{keyword: level}),
                                    recorruption=recorruption)
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert (Keys.TARGET_MASK in batch) == (name == "bernoulli")
    engine = _Engine(tiny_network())
    out = make_train_step()(engine, batch)
    assert torch.isfinite(out["loss"]) and out["pred"].shape == batch[Keys.INPUT].shape


def test_build_trainer_anneals_an_l0_term_inside_a_weighted_sum(tmp_path):
    from medden.losses import AnnealedL0Loss, MaskedMSELoss, WeightedSumLoss

    l0 = AnnealedL0Loss(gamma_start=2.0, gamma_end=0.5)
    trainer, *_ = _trainer(tmp_path, max_epochs=1, with_eval=False,
                           loss=WeightedSumLoss([(MaskedMSELoss(), 1.0), (l0, 0.1)]))
    assert l0.gamma == 2.0
    trainer.run()
    assert l0.gamma == pytest.approx(0.5)


@pytest.mark.parametrize("mode, values", [("max", [1.0, 3.0, 2.0]), ("min", [3.0, 1.0, 2.0])])
def test_checkpoint_handler_keeps_the_best_epoch_for_either_direction(tmp_path, mode, values):
    from types import SimpleNamespace

    from medden.engines import CheckpointHandler

    net = torch.nn.Linear(1, 1)
    handler = CheckpointHandler(tmp_path, net, torch.optim.SGD(net.parameters(), 0.1), "metric", mode=mode)
    best_epochs = []
    for epoch, value in enumerate(values):
        with torch.no_grad():
            net.weight.fill_(epoch)
        handler.save_best(SimpleNamespace(state=SimpleNamespace(metrics={"metric": value})))
        best_epochs.append(int(torch.load(tmp_path / "best.pt", weights_only=True)["weight"]))
    assert best_epochs == [0, 1, 1]  # epoch 1 is best in both directions; epoch 2 does not replace it
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        CheckpointHandler(tmp_path, net, None, "metric", mode="lowest")
