"""Short Noise2Noise runs on the engines improve PSNR: k-space (both Fourier losses) and real pairs."""

import numpy as np
import pytest
import torch
from monai.data import Dataset
from monai.metrics import PSNRMetric
from monai.transforms import Compose, RandFlipd
from monai.utils import set_determinism

from medden.data.datasets import UndersampledDataset
from medden.data.paired import paired_slices
from medden.engines import VAL_PSNR, build_evaluator, build_trainer, make_loader
from medden.core.keys import Keys
from medden.losses import FourierDomainLoss, MaskedMSELoss
from medden.networks import KspaceDenoiser, general_denoiser_net
from medden.transforms import RandKspacePaird, RandKspaceUndersample, RandSwapPaird

SIZE = 64
MASK = {"edge_probability": 0.1}


def _phantoms(count, seed):
    """Piecewise-smooth images in [0, 1]: a few random ellipses of random intensity."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE] / SIZE
    images = []
    for _ in range(count):
        image = np.zeros((SIZE, SIZE), np.float32)
        for _ in range(4):
            cy, cx, ry, rx = rng.uniform(0.25, 0.75, 2).tolist() + rng.uniform(0.08, 0.25, 2).tolist()
            image[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] += rng.uniform(0.2, 0.5)
        images.append(np.clip(image, 0, 1)[None])
    return images


def _zero_filled_psnr(dataset):
    metric = PSNRMetric(max_val=1.0)
    for item in dataset:
        metric(torch.as_tensor(item[Keys.INPUT])[None], torch.as_tensor(item[Keys.CLEAN])[None])
    return float(metric.aggregate())


@pytest.mark.parametrize("restrict", ["target", "overwrite"])
def test_short_kspace_noise2noise_run_beats_the_zero_filled_input(restrict, tmp_path):
    set_determinism(0)
    pairs = RandKspacePaird("clean", "radial_bernoulli", MASK, output="real").set_random_state(0)
    train = Dataset([{"clean": image} for image in _phantoms(24, 0)],
                    Compose([RandFlipd("clean", prob=0.5, spatial_axis=0), pairs]))
    val = UndersampledDataset(_phantoms(6, 1), RandKspaceUndersample("radial_bernoulli", MASK, output="real"), seed=1)
    network = general_denoiser_net(channels=(8, 16))
    evaluator = build_evaluator(KspaceDenoiser(network), make_loader(val, 6, False),
                                network_kwargs={"kspace": Keys.KSPACE, "mask": Keys.KSPACE_MASK})
    overwrite = restrict == "overwrite"
    trainer = build_trainer(
        network, torch.optim.Adam(network.parameters(), 3e-3), FourierDomainLoss(restrict),
        make_loader(train, 4, True), max_epochs=10, output_dir=tmp_path, evaluator=evaluator, val_interval=10,
        input_key=Keys.ZERO_FILLED, target_key=Keys.TARGET_ZERO_FILLED if overwrite else Keys.TARGET_KSPACE,
        mask_key=None if overwrite else Keys.TARGET_KSPACE_MASK,
        loss_kwargs={"input_kspace": Keys.KSPACE, "input_mask": Keys.KSPACE_MASK} if overwrite else None,
        progress_bar=False)
    trainer.run()
    assert evaluator.state.metrics[VAL_PSNR] > _zero_filled_psnr(val) + 1.5


def test_real_pairs_from_two_files_train_with_swapping(tmp_path):
    """Two noisy 'repetitions' per sample on disk -> paired_slices -> N2N; PSNR against the clean truth rises."""
    rng = np.random.default_rng(0)
    clean = _phantoms(9, 2)
    for index, image in enumerate(clean):
        folder = tmp_path / "pairs" / f"sample{index}"
        folder.mkdir(parents=True)
        for repetition in (1, 2):
            noisy = image + 0.1 * rng.standard_normal(image.shape).astype(np.float32)
            np.save(folder / f"rep{repetition}.npy", noisy[0])  # a 2-D (H, W) image
    train = Dataset(paired_slices(tmp_path / "pairs", "train") * 8, RandSwapPaird(prob=0.5))
    val_items = paired_slices(tmp_path / "pairs", "val") + paired_slices(tmp_path / "pairs", "test")
    network = general_denoiser_net(channels=(8, 16))
    evaluator = build_evaluator(network, make_loader(Dataset(val_items), 2, False), target_key=Keys.TARGET)
    evaluator.run()
    before = evaluator.state.metrics[VAL_PSNR]  # identity network: PSNR of one noisy repetition vs the other
    trainer = build_trainer(network, torch.optim.Adam(network.parameters(), 3e-3), MaskedMSELoss(),
                            make_loader(train, 4, True), max_epochs=8, output_dir=tmp_path / "run",
                            evaluator=evaluator, val_interval=8, mask_key=None, progress_bar=False)
    trainer.run()
    # against a noisy target the best possible gain is 10*log10(2) = 3 dB (only the input's noise is removable)
    assert evaluator.state.metrics[VAL_PSNR] > before + 1.0
