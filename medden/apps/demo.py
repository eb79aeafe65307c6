"""``medden demo``: a corrupted copy of a sample series, denoised end to end, scored.

1. The test slab of the MNI152 T1 template (installed samples; slices the default model never
   saw in training) is written as a clean MR DICOM series and, with additive Gaussian noise
   of sigma 0.05 (intensities in [0, 1]), as a "noisy" series. Gaussian rather than Rician:
   the default model, trained by Noise2Noise, keeps the Rayleigh mean of magnitude-MR air
   (see its README), which would dominate a PSNR over a slab that is mostly air.
2. ``medden denoise`` turns the noisy series into a derived series.
3. The derived series is read back from its DICOM files and scored against the clean slab
   (PSNR/SSIM, data range 1), next to the noisy input's scores.

The default bundle is ``medden denoise``'s: the general-purpose ``general_denoiser``, found
next to the installed package in a source checkout; pass ``bundle_dir`` elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from medden.bundle import DEFAULT_BUNDLE

__all__ = ["DEFAULT_BUNDLE", "DEMO_SIGMA", "default_bundle_dir", "run_demo"]

DEMO_SIGMA = 0.05


def default_bundle_dir() -> Path:
    """The default bundle in this source checkout (``<repo>/bundles/<DEFAULT_BUNDLE>``).

    Raises:
        FileNotFoundError: medden is not installed from a checkout that holds it.
    """
    from medden.bundle import shipped_bundles_dir
    from medden.bundle.layout import INFERENCE_CONFIG

    path = shipped_bundles_dir() / DEFAULT_BUNDLE
    if not (path / INFERENCE_CONFIG).is_file():
        raise FileNotFoundError(
            f"the default bundle {DEFAULT_BUNDLE!r} was not found at {str(path)!r}; install medden from its "
            "repository (pip install -e .) or pass a bundle folder."
        )
    return path


def run_demo(output_dir: str | os.PathLike, bundle_dir: str | os.PathLike | None = None, seed: int = 0,
             trust: bool = False, progress: Callable | None = None) -> dict:
    """Run the demo into ``output_dir`` and return the scores and paths.

    ``bundle_dir`` is a shipped bundle (default: the demo's own), or a bundle folder loaded
    only with ``trust`` (see :mod:`medden.bundle.resolve`). ``progress`` gets the denoising
    run's :class:`~medden.apps.batch_denoise.ItemProgress` events.

    Returns:
        ``{"noisy": {"psnr", "ssim"}, "denoised": {...}, "clean_dicom", "noisy_dicom",
        "denoised_dicom", "report"}``; PSNR in dB on intensities in [0, 1].
    """
    from medden.data.slices import mni_slab
    from medden.apps.batch_denoise import denoise_path
    from medden.bundle import load_bundle
    from medden.io import read_dicom_folder, write_volume_as_series
    from medden.metrics.image_quality import psnr, ssim
    from medden.transforms import RandGaussianSigmaNoise

    out = Path(output_dir)
    clean, affine = mni_slab("test")
    noisy = RandGaussianSigmaNoise(DEMO_SIGMA).set_random_state(seed)(clean)
    series = {}
    for name, volume in (("clean", clean), ("noisy", noisy)):
        folder = out / "input" / name
        if not folder.is_dir():
            write_volume_as_series(volume, affine, folder, modality="MR", body_part="BRAIN",
                                   series_description=f"medden demo, {name}")
        series[name] = folder
    bundle = load_bundle(bundle_dir or default_bundle_dir(), trust=trust)
    # the demo owns its output: a demo run with another bundle replaces the earlier one
    report = denoise_path(series["noisy"], out / "denoised", bundle, overwrite=True, progress=progress)
    if not report["processed"]:
        raise RuntimeError(f"the demo series could not be denoised: {report['series']}")
    read_back, _ = read_dicom_folder(out / "denoised" / "dicom")
    noisy_back, _ = read_dicom_folder(series["noisy"])
    denoised = read_back[0].volume
    scores = {}
    for name, volume in (("noisy", noisy_back[0].volume), ("denoised", denoised)):
        scores[name] = {"psnr": float(psnr(volume, clean, 1.0, spatial_dims=3).item()),
                        "ssim": float(ssim(volume, clean, 1.0, spatial_dims=3).item())}
    return {**scores, "clean_dicom": str(series["clean"]), "noisy_dicom": str(series["noisy"]),
            "denoised_dicom": str(out / "denoised" / "dicom"), "report": str(out / "denoised" / "medden_report.json")}
