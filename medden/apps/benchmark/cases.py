"""What ``medden benchmark`` scores: clean test images of every modality under four noises.

A :class:`Case` is one clean image, one noise and one seeded noisy realisation of it. The
noises follow the seeds' test protocols:

=============  ==========================================================================
noise          protocol
=============  ==========================================================================
gaussian       ``y = x + n``, sigma 20/255 (Camelyon validation level)
poisson        ``y = Poisson(30 x) / 30`` (Noise2Noise's test lambda)
bernoulli      each pixel kept with probability 0.5, else 0 (Noise2Noise's test p)
kspace         radial variable-density Bernoulli k-space mask, edge probability 0.025
               (about 10% of a 256 x 256 k-space kept), density-compensated zero-filled
               reconstruction (Noise2Noise MRI)
=============  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medden.core import protocols

__all__ = ["NOISES", "Case", "NoiseSpec", "make_case"]


@dataclass(frozen=True)
class NoiseSpec:
    """One benchmark noise: its label, the corruption's registry name and level, and what an
    anchor may be told about it (the Gaussian sigma or the Poisson peak; None if neither)."""

    key: str
    label: str
    corruption: str
    level: float
    sigma: float | None = None
    peak: float | None = None

    def corruption_transform(self):
        """A fresh :class:`~medden.transforms.RandCorruption` at this noise's level."""
        from medden.transforms import CORRUPTIONS

        return CORRUPTIONS[self.corruption](self.level)


NOISES = {
    "gaussian": NoiseSpec("gaussian", "Gaussian sigma 20/255", "gaussian", protocols.RECORRUPTION_GAUSSIAN_SIGMA_VAL,
                          sigma=protocols.RECORRUPTION_GAUSSIAN_SIGMA_VAL),
    "poisson": NoiseSpec("poisson", "Poisson lambda 30", "poisson", protocols.N2N_POISSON_PEAK_TEST,
                         peak=protocols.N2N_POISSON_PEAK_TEST),
    "bernoulli": NoiseSpec("bernoulli", "Bernoulli p 0.5", "bernoulli", protocols.N2N_BERNOULLI_KEEP_PROB_TEST),
    "kspace": NoiseSpec("kspace", "k-space radial ~10%", "kspace", protocols.N2N_MRI_EDGE_PROBABILITY),
}


@dataclass
class Case:
    """One scored input.

    Attributes:
        clean: ``(C, H, W)`` float32 in [0, 1].
        noisy: the corrupted image, same shape (k-space: the zero-filled reconstruction).
        kspace: for k-space noise, the raw measured samples ``(C, H, W, 2)`` float32 (centred,
            orthonormal FFT); else None.
        mask: for k-space noise, the ``(1, H, W)`` 0/1 sampling mask; else None.
    """

    modality: str
    image_name: str
    noise: NoiseSpec
    clean: np.ndarray
    noisy: np.ndarray
    kspace: np.ndarray | None = None
    mask: np.ndarray | None = field(default=None, repr=False)


def make_case(modality: str, image_name: str, clean: np.ndarray, noise: str | NoiseSpec, seed: int) -> Case:
    """Corrupt ``clean`` (``(C, H, W)`` float in [0, 1]) with ``noise`` drawn from ``seed``.

    Raises:
        ValueError: unknown noise name.
    """
    if isinstance(noise, str):
        if noise not in NOISES:
            raise ValueError(f"unknown noise {noise!r}; choose from {sorted(NOISES)}.")
        noise = NOISES[noise]
    clean = np.ascontiguousarray(clean, np.float32)
    corruption = noise.corruption_transform().set_random_state(seed)
    noisy = np.asarray(corruption(clean), np.float32)
    kspace = mask = None
    if noise.key == "kspace":
        import torch

        from medden.transforms import apply_pattern, image_to_kspace

        pattern = corruption.field
        kspace = apply_pattern(image_to_kspace(torch.from_numpy(clean)), pattern).numpy().astype(np.float32)
        mask = np.broadcast_to(pattern.mask, clean.shape[1:])[None].astype(np.float32)
    return Case(modality, image_name, noise, clean, noisy, kspace, mask)
