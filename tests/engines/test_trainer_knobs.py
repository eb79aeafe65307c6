"""build_trainer's small-run knob (epoch_length), its refusal of data that cannot fill a batch, and what it
writes to TensorBoard (step scalars, learning rate, every evaluator's metrics)."""

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from engine_fixtures import MaskedMSE, recorruption_datasets, tiny_network
from medden.engines import build_evaluator, build_trainer, make_loader


def _trainer(tmp_path, train_size=32, batch_size=4, **kwargs):
    train, val = recorruption_datasets()
    train = torch.utils.data.Subset(train, range(train_size))
    net = tiny_network()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    val_loader = make_loader(torch.utils.data.Subset(val, range(2)), 1, False)
    evaluators = dict(evaluator=build_evaluator(net, val_loader),
                      extra_evaluators=[build_evaluator(net, val_loader, metric_prefix="extra_")])
    return build_trainer(net, optimizer, MaskedMSE(), make_loader(train, batch_size, True, drop_last=True),
                         output_dir=tmp_path, mask_key=None, progress_bar=False, lr_scheduler=scheduler,
                         **evaluators, **kwargs)


def test_epoch_length_sets_the_iterations_of_each_epoch(tmp_path):
    trainer = _trainer(tmp_path, max_epochs=2, epoch_length=3)
    trainer.run()
    assert trainer.state.iteration == 6 and trainer.state.epoch == 2
    with pytest.raises(ValueError, match="epoch_length"):
        _trainer(tmp_path, max_epochs=1, epoch_length=0)


def test_a_loader_that_cannot_fill_one_batch_is_refused_with_the_numbers(tmp_path):
    with pytest.raises(ValueError, match=r"cannot fill one batch: 3 samples .* batch_size=4.*Lower batch_size"):
        _trainer(tmp_path, train_size=3, batch_size=4, max_epochs=1)


def test_tensorboard_gets_learning_rate_and_every_evaluators_metrics_per_epoch(tmp_path):
    _trainer(tmp_path, max_epochs=2, epoch_length=2).run()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"train_loss", "lr", "val_psnr", "val_ssim", "extra_val_psnr", "extra_val_ssim"} <= set(
        events.Tags()["scalars"])
    assert [(e.step, e.value) for e in events.Scalars("lr")] == [(1, pytest.approx(1e-3)), (2, pytest.approx(5e-4))]
    assert [e.step for e in events.Scalars("val_psnr")] == [1, 2]
    assert len(events.Scalars("train_loss")) == 4


@pytest.mark.parametrize("every, expected", [(2, ["2/5", "4/5", "5/5"]), (None, ["1/5", "2/5", "3/5", "4/5", "5/5"])])
def test_an_evaluation_logs_its_progress_as_n_of_m(every, expected, caplog):
    import logging

    _, val = recorruption_datasets()
    evaluator = build_evaluator(tiny_network(), make_loader(torch.utils.data.Subset(val, range(5)), 1, False),
                                metric_prefix="vae_", progress_every=every)
    with caplog.at_level(logging.INFO, logger="medden.engines.handlers"):
        evaluator.run()
        evaluator.run()  # a second run (the next validation) counts from 1 again
    lines = [r.getMessage() for r in caplog.records if r.name == "medden.engines.handlers"]
    assert len(lines) == 2 * len(expected)
    for line, count in zip(lines, expected * 2):
        assert line.startswith(f"vae_evaluation: {count} batches (") and "elapsed" in line
    assert "about 0.0s left" in lines[len(expected) - 1]
