"""Tiny data, network and loss for the engine tests (plain helpers, shared with the distributed worker)."""

import numpy as np
import torch
from monai.networks.nets import UNet

from medden.data.datasets import CorruptedImageDataset
from medden.transforms import RandGaussianSigmaNoise


def smooth_images(n: int = 32, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    """Random sums of Gaussian blobs in [0, 1]: easy to denoise, impossible to memorise pixelwise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    images = []
    for _ in range(n):
        img = np.zeros((size, size))
        for _ in range(3):
            cy, cx, width = rng.uniform(0.2, 0.8, 2).tolist() + [rng.uniform(0.1, 0.3)]
            img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
        images.append((img / img.max())[None].astype(np.float32))
    return images


def tiny_network(seed: int = 0) -> torch.nn.Module:
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    net = UNet(2, 1, 1, channels=(8, 16), strides=(2,), num_res_units=1)
    torch.random.set_rng_state(generator_state)
    return net


class MaskedMSE(torch.nn.Module):
    """Reference masked MSE in the medden loss signature (kept here so engine tests stand alone)."""

    def forward(self, pred, target, mask=None):
        sq = (pred - target) ** 2
        if mask is None:
            return sq.mean()
        mask = mask.expand_as(sq)
        return (sq * mask).sum() / mask.sum().clamp_min(1)


def recorruption_datasets(sigma: float = 0.15):
    train = CorruptedImageDataset(smooth_images(32), noise=RandGaussianSigmaNoise(sigma),
                                  recorruption=RandGaussianSigmaNoise(sigma), seed=0)
    val = CorruptedImageDataset(smooth_images(8, seed=1), noise=RandGaussianSigmaNoise(sigma), seed=1)
    return train, val
