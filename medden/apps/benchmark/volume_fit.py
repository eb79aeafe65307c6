"""The volumes-and-fit benchmark (issue 23): held-out volumes, the 2D and 2.5D defaults, ``--fit``, BM3D and BM4D.

Cases (:func:`volume_fit_cases`), each a clean held-out volume and one seeded noisy realisation
(:class:`~medden.apps.benchmark.realistic.RealisticCase`, family ``volume``):

=========================================== ====================================================
volume                                      noises
=========================================== ====================================================
brain MR: the MNI152 T1 test slab,           Gaussian 20/255; magnitude MR (sigma 0.04, one coil,
197 x 233 x 20, 1 mm                         g-factor up to 2), slice by slice
head CT: InVesalius' "Cranium" (Debian's     low-dose CT from physics (projection-domain Poisson
invesalius-examples), 24 central slices of   counts + FBP, slice by slice, whole slices);
256 x 256, 0.96 mm, 1.5 mm slices            Gaussian 20/255 of its robust range
chest CT: pyradiomics' ``lung2`` (PyPI        low-dose CT from physics on the whole 512 x 512
source archive), 16 central slices, centre   slices, scored on the centre 256 x 256
256 x 256 of 512 x 512, 0.63 mm, 5 mm slices
=========================================== ====================================================

None of them is in any model's training set (the MNI test slab is held out; no CT volume is).
A CT volume that is not installed is left out with a note (:func:`volume_fit_cases`).

Methods are ``noisy -> denoised`` callables on ``(1, H, W, D)`` volumes in the case's units:
the 2D and 2.5D defaults as ``medden denoise`` runs them, :func:`fit_method` (``--fit`` on the
volume itself, then the fitted model), BM3D slice by slice and BM4D, both given the true sigma.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from collections.abc import Callable

import numpy as np

from medden.apps.benchmark import realistic as rn

__all__ = [
    "BM3D_SLICES", "BM4D_TRUE", "CT_VOLUME_DOSE", "FIT_MINUTES", "NOISY", "V2_2D", "V3_STACK",
    "bm3d_slices", "brain_volume_cases", "centre_crop", "chest_ct_cases", "fit_column", "fit_method", "head_ct_cases",
    "missing_volumes", "slice_by_slice", "snapshot_psnrs", "volume_fit_cases",
]

NOISY, V2_2D, V3_STACK = rn.NOISY, "2D default (v2)", "2.5D default (v3)"
BM3D_SLICES, BM4D_TRUE = "BM3D slice by slice, true sigma", rn.BM4D_TRUE
#: ``--fit`` budgets of the benchmark, minutes
FIT_MINUTES = (1.0, 3.0, 10.0)
#: incident photons per detector bin of the CT volume cases (about 30 HU of noise in soft tissue)
CT_VOLUME_DOSE = {"head CT": 3e4, "chest CT": 1e5}
_HEAD_SLICES, _CHEST_SLICES, _WINDOW = 24, 16, 256


def fit_column(minutes: float) -> str:
    """The column name of ``--fit`` at ``minutes``."""
    return f"--fit {minutes:g} min"


def slice_by_slice(transform, clean: np.ndarray, seed: int, level: float) -> np.ndarray:
    """A 2D corruption applied to every slice of ``(1, H, W, D)`` at one level, independent draws."""
    transform.set_random_state(seed)
    slices = [np.asarray(transform.corrupt(clean[..., k], level=level)[0], np.float32) for k in range(clean.shape[-1])]
    return np.stack(slices, axis=-1)


def centre_crop(volume: np.ndarray, window: int | None, slices: int | None) -> np.ndarray:
    """The centre ``window`` x ``window`` (None: all) of the central ``slices`` (None: all) of ``(1, H, W, D)``."""
    _, height, width, depth = volume.shape
    top, left = (height - (window or height)) // 2, (width - (window or width)) // 2
    first = (depth - (slices or depth)) // 2
    return np.ascontiguousarray(volume[:, top : top + (window or height), left : left + (window or width),
                                       first : first + (slices or depth)])


def brain_volume_cases(seed: int = 0) -> list[rn.RealisticCase]:
    """The MNI152 test slab under Gaussian 20/255 and under single-coil magnitude MR noise."""
    from medden.transforms.scanner_noise import RandMagnitudeMRNoise

    clean = rn.brain_volume()
    modality = "brain MR volume"
    sigma = rn.MR_LEVELS[0][0]
    noise = f"magnitude MR, sigma {sigma:g}, g <= {rn.MR_MAX_G:g}, 1 coil"
    transform = RandMagnitudeMRNoise(sigma, coils=1, g_max_range=rn.MR_MAX_G)
    noisy = slice_by_slice(transform, clean, rn.case_seed(seed, rn.case_name(modality, noise)), sigma)
    return [rn.white_case(modality, clean, "gaussian", seed, rn.VOLUME),
            rn.make_case(modality, noise, rn.VOLUME, clean, noisy, rn.UNIT)]


def _ct_physics_case(modality: str, whole: np.ndarray, pixel_mm: float, seed: int, window: int | None
                     ) -> rn.RealisticCase:
    from medden.transforms.ct_noise import RandLowDoseCTNoise

    dose = CT_VOLUME_DOSE[modality]
    noise = f"low-dose CT, I0 {dose:.0e}/bin"
    hu = np.maximum(whole, rn.HU_AIR).astype(np.float32)
    noisy = slice_by_slice(RandLowDoseCTNoise(dose, pixel_mm=pixel_mm), hu,
                            rn.case_seed(seed, rn.case_name(modality + " volume", noise)), dose)
    return rn.make_case(modality + " volume", noise, rn.VOLUME, centre_crop(hu, window, None),
                        centre_crop(noisy, window, None), rn.HU)


def head_ct_cases(path: str | os.PathLike | None = None, seed: int = 0) -> list[rn.RealisticCase]:
    """InVesalius' head CT (24 central slices): low-dose CT physics, and Gaussian 20/255 of its robust range."""
    from medden.io.ct_volumes import INVESALIUS_CRANIUM, read_invesalius_project

    volume, spacing = read_invesalius_project(path or INVESALIUS_CRANIUM)
    whole = centre_crop(volume, None, _HEAD_SLICES)
    physics = _ct_physics_case("head CT", whole, spacing[0], seed, None)
    low, high = rn.unit_range(physics.clean)
    unit = (physics.clean - low) / (high - low)
    white = rn.white_case("head CT volume", unit, "gaussian", seed, rn.VOLUME)
    return [physics, dataclasses.replace(white, clean=white.clean * (high - low) + low,
                                         noisy=white.noisy * (high - low) + low, units=rn.HU,
                                         true_sigma=white.true_sigma * (high - low))]


def chest_ct_cases(path: str | os.PathLike, seed: int = 0) -> list[rn.RealisticCase]:
    """pyradiomics' chest CT (16 central slices): low-dose CT physics on whole slices, centre 256 x 256 scored."""
    from medden.io.ct_volumes import read_pyradiomics_ct

    volume, spacing = read_pyradiomics_ct(path)
    return [_ct_physics_case("chest CT", centre_crop(volume, None, _CHEST_SLICES), spacing[0], seed, _WINDOW)]


def missing_volumes(head_ct: str | os.PathLike | None = None, chest_ct: str | os.PathLike | None = None) -> list[str]:
    """A note for each CT volume :func:`volume_fit_cases` leaves out because it is not installed or not given."""
    from medden.io.ct_volumes import INVESALIUS_CRANIUM

    notes = []
    if not Path(head_ct or INVESALIUS_CRANIUM).is_file():
        notes.append(f"head CT volume left out: {str(head_ct or INVESALIUS_CRANIUM)!r} is not installed "
                     "(apt-get install invesalius-examples).")
    if chest_ct is None or not Path(chest_ct).is_file():
        notes.append("chest CT volume left out: no --chest-ct given (pyradiomics' source archive).")
    return notes


def volume_fit_cases(seed: int = 0, head_ct: str | os.PathLike | None = None,
                     chest_ct: str | os.PathLike | None = None) -> tuple[list[rn.RealisticCase], list[str]]:
    """Every case, and a note for each CT volume left out because it is not installed.

    Args:
        head_ct: the InVesalius project (default: where Debian installs it).
        chest_ct: pyradiomics' source archive or ``lung2_image.nrrd``; None leaves it out.
    """
    notes = missing_volumes(head_ct, chest_ct)
    cases = brain_volume_cases(seed)
    if not any(note.startswith("head CT") for note in notes):
        cases += head_ct_cases(head_ct, seed)
    if not any(note.startswith("chest CT") for note in notes):
        cases += chest_ct_cases(chest_ct, seed)
    return cases, notes


def bm3d_slices(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    """BM3D slice by slice at noise std ``sigma`` (the volume's units), the volume's robust range as [0, 1]."""
    from medden.anchors import bm3d_denoise

    def run(unit: np.ndarray, level: float) -> np.ndarray:
        return np.stack([np.asarray(bm3d_denoise(unit[..., k], level), np.float32) for k in range(unit.shape[-1])],
                        axis=-1)

    return rn.via_unit_range(run, sigma)


def fit_method(bundle, minutes: float, seed: int = 0, snapshot_every: float | None = None
               ) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """``--fit`` as ``medden denoise --fit --fit-minutes minutes`` runs it, on the noisy volume given.

    The volume is scaled as the bundle's inference does, the scheme chosen by
    :func:`medden.engines.choose_fit_pairs`, the bundle's network fitted on a copy of its weights
    (:func:`medden.engines.fit_network`) and the volume denoised with the result.

    Returns:
        ``(method, info)``: ``method(noisy) -> denoised``; after a call, ``info`` holds
        ``"report"`` (the fit's :meth:`~medden.engines.FitResult.report`), ``"fit_seconds"`` and,
        with ``snapshot_every`` minutes, ``"snapshots"``: ``[(minutes, weights)]`` of the weights
        being trained (for the PSNR-against-time figure).
    """
    import copy

    import torch

    from medden.apps.fit import fit_volumes
    from medden.engines import choose_fit_pairs, fit_network
    from medden.engines.fit_pairs import has_magnitude_floor, untrusted_noise

    info: dict = {}

    def run(noisy: np.ndarray) -> np.ndarray:
        network = copy.deepcopy(bundle.network)
        started = time.perf_counter()
        volumes = fit_volumes([noisy], bundle.percentiles, 64, bundle.smoothing)
        pairs = choose_fit_pairs(volumes, getattr(network, "neighbours", 0), seed=seed)
        snapshots: list = []
        times = list(np.arange(snapshot_every, minutes + 1e-9, snapshot_every)) if snapshot_every else []
        take = (times, lambda t, net: snapshots.append((float(t), {k: v.detach().clone()
                                                                 for k, v in net.state_dict().items()})))
        left = minutes - (time.perf_counter() - started) / 60.0
        result = fit_network(network, pairs, left, seed=seed, on_minute=take if times else None,
                             skip_reason=untrusted_noise(pairs, has_magnitude_floor([noisy])))
        info.update(report=result.report(), fit_seconds=time.perf_counter() - started, snapshots=snapshots)
        with torch.no_grad():
            return dataclasses.replace(bundle, network=network).denoise(noisy)

    return run, info


def snapshot_psnrs(bundle, case: rn.RealisticCase, snapshots: list) -> list[tuple[float, float]]:
    """``(minutes, PSNR dB)`` of the case denoised with each snapshot's weights."""
    import copy

    network = copy.deepcopy(bundle.network)
    out = []
    for minutes, state in snapshots:
        network.load_state_dict(state)
        network.eval()
        denoised = dataclasses.replace(bundle, network=network).denoise(case.noisy)
        out.append((minutes, rn.score_output(case, denoised)["psnr"]))
    return out

