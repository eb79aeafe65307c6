"""The methods ``medden benchmark`` compares, each as ``run(case) -> denoised``.

* **Classical anchors** (:mod:`medden.anchors`): NLM, BM3D and total variation on every
  image; dipy's NLM on MR; L1-wavelet compressed sensing on k-space. They are told the true
  noise level where the noise has one (Gaussian sigma; Poisson through the Anscombe
  transform with the true lambda) and estimate it otherwise (Bernoulli, k-space), as a user
  without a noise model would.
* **medden's shipped bundles**, each on the noise it was trained for, run exactly as
  ``medden denoise`` runs them (:class:`~medden.bundle.denoiser_interface.BundleDenoiser`); grey bundles
  denoise RGB images channel by channel. The k-space bundle reconstructs from the measured
  samples with data consistency.
* **Supervised networks** (bundle ``supervised_baseline``) trained with clean targets: the
  upper bound a method without clean data aims at.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medden.apps.benchmark.cases import NOISES, Case

__all__ = ["MR_MODALITIES", "Method", "anchor_methods", "bundle_method", "kspace_bundle_method", "shipped_methods"]

MR_MODALITIES = ("brain MR", "shoulder MR")
#: shipped bundle -> (noises it was trained for, table label)
SHIPPED = {
    "general_denoiser": (("gaussian", "poisson"), "general_denoiser (N2N)"),
    "n2n_image": (("gaussian",), "n2n_image (N2N)"),
    "recorruption_camelyon_gaussian": (("gaussian",), "recorruption_camelyon"),
    "recorruption_jsrt_poisson": (("poisson",), "recorruption_jsrt"),
    "vae_direct_denoiser": (("poisson",), "vae_direct (Direct Denoiser)"),
    "recorruption_ixi_bernoulli": (("bernoulli",), "recorruption_ixi"),
}


@dataclass
class Method:
    """One row of the tables.

    Attributes:
        name: the table label.
        kind: ``"input"``, ``"classical"``, ``"medden"`` (no clean data) or ``"supervised"``.
        run: ``run(case) -> (C, H, W) float32``.
        noises: the noise keys it is scored on.
        modalities: the modalities it is scored on (None: all).
        channels: image channels it takes (None: any; grey denoisers run per channel).
        network: the learned network, for its parameter count and size (None if classical).
    """

    name: str
    kind: str
    run: Callable[[Case], np.ndarray]
    noises: tuple[str, ...]
    modalities: tuple[str, ...] | None = None
    channels: int | None = None
    network: object = None

    def applies_to(self, case: Case) -> bool:
        return (case.noise.key in self.noises and (self.modalities is None or case.modality in self.modalities)
                and (self.channels is None or self.channels == case.clean.shape[0]))


def _per_channel(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Apply a grey ``(1, H, W)`` denoiser to each channel of a ``(C, H, W)`` image."""
    return lambda image: np.concatenate([fn(image[c:c + 1]) for c in range(image.shape[0])])


def _told(make: Callable[..., Callable], noise_key: str, grey_only: bool = False) -> Callable[[Case], np.ndarray]:
    """An anchor given what the noise model tells (``make(sigma=...)`` builds it)."""
    from medden.anchors import AnscombeDenoiser

    noise = NOISES[noise_key]
    if noise.peak is not None:
        denoiser = AnscombeDenoiser(make(sigma=None), noise.peak)
    else:
        denoiser = make(sigma=noise.sigma)
    fn = _per_channel(denoiser) if grey_only else denoiser
    return lambda case: fn(case.noisy)


def _cs_recon(case: Case) -> np.ndarray:
    from medden.anchors import l1_wavelet_recon

    complex_kspace = case.kspace[..., 0] + 1j * case.kspace[..., 1]
    return np.concatenate([l1_wavelet_recon(channel, case.mask[0]) for channel in complex_kspace])


def anchor_methods(noises: tuple[str, ...], include_bm3d: bool = True) -> list[Method]:
    """The classical anchors for ``noises`` (one :class:`Method` per anchor and noise)."""
    from medden.anchors import BM3DDenoiser, NLMDenoiser, RicianNLMDenoiser, TVDenoiser

    methods = []
    for noise in noises:
        anchors = [("NLM", NLMDenoiser), ("TV", TVDenoiser)] + ([("BM3D", BM3DDenoiser)] if include_bm3d else [])
        methods += [Method(name, "classical", _told(cls, noise), (noise,)) for name, cls in anchors]
        rician = noise == "kspace"  # the magnitude of aliasing plus signal, Rician-like

        def rician_nlm(sigma, rician=rician):
            return RicianNLMDenoiser(sigma=sigma, rician=rician)

        methods.append(Method("NLM (dipy" + (", Rician)" if rician else ")"), "classical",
                              _told(rician_nlm, noise, grey_only=True), (noise,), MR_MODALITIES))
    if "kspace" in noises:
        methods.append(Method("CS L1-wavelet (sigpy)", "classical", _cs_recon, ("kspace",)))
    return methods


def bundle_method(bundle: str | os.PathLike, name: str, noises: tuple[str, ...], kind: str = "medden",
                  overrides: dict | None = None) -> Method:
    """A bundle run as ``medden denoise`` runs it, on ``noises``."""
    from medden.bundle.denoiser_interface import BundleDenoiser

    denoiser = BundleDenoiser(bundle, device="cpu", name=name, overrides=overrides)
    channels = None if denoiser.bundle.image_channels == 1 else denoiser.bundle.image_channels
    return Method(name, kind, lambda case: denoiser(case.noisy), noises, channels=channels,
                  network=denoiser.network)


def kspace_bundle_method(bundle: str | os.PathLike = "n2n_kspace_mri", name: str = "n2n_kspace_mri (N2N)",
                         kind: str = "medden", weights: str | os.PathLike | None = None) -> Method:
    """The k-space bundle: zero-filled input from the measured samples, network, data consistency."""
    from medden.bundle import bundle_network, resolve_bundle
    from medden.bundle.layout import WEIGHTS
    from medden.inference.kspace import density_weights, reconstruct_kspace

    network = bundle_network(bundle, weights or resolve_bundle(bundle) / WEIGHTS)

    def run(case: Case) -> np.ndarray:
        weights = density_weights(case.mask, "radial_bernoulli", {"edge_probability": case.noise.level})
        channels = [reconstruct_kspace(network, case.kspace[c:c + 1][None], case.mask, weights)[0]
                    for c in range(case.kspace.shape[0])]
        return np.concatenate(channels).astype(np.float32)

    return Method(name, kind, run, ("kspace",), network=network)


def shipped_methods(noises: tuple[str, ...]) -> list[Method]:
    """Every shipped medden bundle on the noises (among ``noises``) it was trained for."""
    methods = []
    for bundle, (trained_on, label) in SHIPPED.items():
        wanted = tuple(n for n in trained_on if n in noises)
        if wanted:
            methods.append(bundle_method(bundle, label, wanted))
    if "kspace" in noises:
        methods.append(kspace_bundle_method())
    return methods
