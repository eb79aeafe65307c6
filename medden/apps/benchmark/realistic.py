"""The realistic-noise benchmark (issue 22): held-out images under noise as scanners make it.

Cases and methods are kept apart so that other scripts (the v2 ablation) can score their own
models on the same cases:

* :func:`realistic_cases` builds :class:`RealisticCase` objects: one clean held-out image, one
  seeded noisy realisation, the true noise std and the units. Only images no general model
  trains on are used (:mod:`medden.data.modalities`: head CT ``693_UNCR``, abdomen MR
  ``MR-SIEMENS-DICOM-WithOverlays``, chest radiograph ``RG1_UNCR`` at 1/4 size, the MNI152
  test slab, the right half of scikit-image's IHC image):

  ============= =========================================== ======================================
  family        noise                                       images
  ============= =========================================== ======================================
  ``scanner``   low-dose CT from physics (projection        head CT in HU, simulated on the whole
                domain Poisson + FBP), :data:`CT_DOSES`     slice, scored on its centre window
  ``scanner``   magnitude MR with g-factor noise,           abdomen MR and an MNI brain slice
                :data:`MR_LEVELS` (one multi-coil)
  ``scanner``   Poisson-Gaussian with detector blur,        chest radiograph window
                :data:`XRAY_PEAKS`
  ``white``     Gaussian 20/255, Poisson 30, Rician 0.05    every held-out modality (as
                                                            ``scripts/benchmark_general_denoiser.py``)
  ``volume``    Gaussian 20/255                             the MNI152 test slab as one volume
  ============= =========================================== ======================================

* methods are callables ``method(noisy) -> denoised``, both ``(1, H, W[, D])`` float32 in the
  case's units: :func:`model_methods` (bundles run as ``medden denoise`` runs them) and
  :func:`classical_methods` (BM3D given a blind or the true sigma, NLM, BM4D on volumes);
* :func:`score_case` runs and scores methods on one case; :func:`lesion_contrast_kept` and
  :func:`residual_correlation` measure fidelity; :func:`ms_per_slice` times a method;
  :func:`target_checks` states the issue's targets from the records alone.

Scoring: the clean image and every output are mapped to [0, 1] by the clean image's 0.5-99.5th
percentiles (no clipping), PSNR and SSIM with data range 1. Cases in HU also get PSNR in the
soft-tissue window :data:`CT_SOFT_TISSUE_WINDOW` (both clipped to it, range 400 HU).
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from medden.core import protocols

__all__ = [
    "BM3D_BLIND", "BM3D_TRUE", "BM4D_BLIND", "BM4D_TRUE", "CT_DOSES", "CT_SOFT_TISSUE_WINDOW", "ENSEMBLE_KEY", "HU",
    "MR_LEVELS", "MR_MAX_G", "NLM_BLIND", "NOISY", "SCANNER", "SLICE_PIXELS", "UNIT", "UPPER_BOUND", "V1", "V2",
    "V2_ENSEMBLE", "VOLUME", "WHITE", "WHITE_NOISES", "XRAY_PEAKS", "XRAY_PSF_SIGMA", "XRAY_READ_SIGMA",
    "LesionSettings", "RealisticCase",
    "abdomen_mr", "brain_mr", "brain_volume", "case_name", "case_seed", "chest_radiograph", "head_ct_hu",
    "ct_case", "make_case", "mr_case", "realistic_cases", "scanner_cases", "volume_cases", "white_case", "white_cases",
    "xray_case",
    "classical_methods", "model_methods",
    "lesion_contrast_kept", "lesion_sites", "ms_per_slice", "residual_correlation", "score_case", "score_output",
    "soft_tissue_sigma", "target_checks", "unit_range", "via_unit_range", "bm4d_volume", "corrupted",
]

Method = Callable[[np.ndarray], np.ndarray]

#: case families
SCANNER, WHITE, VOLUME = "scanner", "white", "volume"
#: method (column) names
NOISY, V1, V2, V2_ENSEMBLE, UPPER_BOUND = "noisy", "v1", "v2", "v2 self-ensemble", "clean-target upper bound"
BM3D_BLIND, BM3D_TRUE, NLM_BLIND = "BM3D blind sigma", "BM3D true sigma", "NLM blind sigma"
BM4D_BLIND, BM4D_TRUE = "BM4D blind sigma", "BM4D true sigma"

HU, UNIT = "HU", "[0, 1] (robust range of the clean image)"
#: display and scoring window of CT soft tissue, HU
CT_SOFT_TISSUE_WINDOW = (-160.0, 240.0)
#: incident photons per detector bin of the two low-dose CT cases (on the 0.48 mm head CT they give
#: about 21 and 36 HU noise std in soft tissue)
CT_DOSES = (2e5, 7e4)
#: (sigma of each complex channel in [0, 1] image units, coils) of the two magnitude-MR levels
MR_LEVELS = ((0.04, 1), (0.02, 4))
#: largest g-factor of the MR noise maps
MR_MAX_G = 2.0
#: peak counts (of a pixel of value 1) of the two radiography cases, the detector PSF sigma (px)
#: and the read-out noise std ([0, 1] units)
XRAY_PEAKS = (200.0, 50.0)
XRAY_PSF_SIGMA = 1.0
XRAY_READ_SIGMA = 0.005
WHITE_NOISES = {"gaussian": f"Gaussian sigma {protocols.RECORRUPTION_GAUSSIAN_SIGMA_VAL * 255:g}/255",
                "poisson": f"Poisson peak {protocols.N2N_POISSON_PEAK_TEST:g}", "rician": "Rician sigma 0.05"}
RICIAN_SIGMA = 0.05
SCORE_PERCENTILES = (0.5, 99.5)
#: the held-out files (pydicom test data) and the 2D window the benchmark scores
CT_FILE, ABDOMEN_MR_FILE, CHEST_FILE = "693_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "RG1_UNCR.dcm"
HU_AIR = -1000.0
SLICE_PIXELS = 256 * 256


@dataclass(frozen=True)
class RealisticCase:
    """One clean held-out image and one seeded noisy realisation of it.

    Attributes:
        name: unique label, ``"<modality>: <noise>"``.
        modality: e.g. ``"head CT"``.
        noise: the noise and its level, e.g. ``"low-dose CT, I0 1e+04/bin"``.
        family: :data:`SCANNER`, :data:`WHITE` or :data:`VOLUME`.
        clean, noisy: ``(1, H, W)`` (or ``(1, H, W, D)`` for volumes) float32 in ``units``.
        units: :data:`HU` or :data:`UNIT`.
        true_sigma: ``std(noisy - clean)`` in ``units``.
        poisson_peak: counts per unit intensity of pure Poisson noise (the Anscombe route of
            true-sigma BM3D), else None.
    """

    name: str
    modality: str
    noise: str
    family: str
    clean: np.ndarray
    noisy: np.ndarray
    units: str
    true_sigma: float
    poisson_peak: float | None = None

    @property
    def is_volume(self) -> bool:
        return self.clean.ndim == 4


def case_name(modality: str, noise: str) -> str:
    """The unique label of a case: ``"<modality>: <noise>"``."""
    return f"{modality}: {noise}"


def make_case(modality: str, noise: str, family: str, clean: np.ndarray, noisy: np.ndarray, units: str,
              poisson_peak: float | None = None) -> RealisticCase:
    """A :class:`RealisticCase` with its name and true sigma filled in.

    Raises:
        ValueError: ``clean`` and ``noisy`` differ in shape or are not ``(1, H, W[, D])``.
    """
    clean, noisy = np.asarray(clean, np.float32), np.asarray(noisy, np.float32)
    if clean.shape != noisy.shape or clean.ndim not in (3, 4) or clean.shape[0] != 1:
        raise ValueError(f"clean and noisy must both be (1, H, W[, D]), got {clean.shape} and {noisy.shape}.")
    return RealisticCase(case_name(modality, noise), modality, noise, family, clean, noisy, units,
                         float(np.std(noisy.astype(np.float64) - clean)), poisson_peak)


def soft_tissue_sigma(case: RealisticCase, tissue: tuple[float, float] = (0.0, 80.0)) -> float | None:
    """Noise std (HU) of an HU case where the clean image lies in ``tissue`` HU; None for other
    units or no such pixel."""
    inside = (case.clean >= tissue[0]) & (case.clean <= tissue[1])
    if case.units != HU or not inside.any():
        return None
    return float(np.std((case.noisy.astype(np.float64) - case.clean)[inside]))


def case_seed(seed: int, name: str) -> int:
    """A seed for one case that does not depend on which other cases are built."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**31


def corrupted(transform, clean: np.ndarray, seed: int, level: float) -> np.ndarray:
    """``transform`` (a medden corruption) applied to ``clean`` at ``level``, seeded; float32."""
    transform.set_random_state(seed)
    noisy, _ = transform.corrupt(clean, level=level)
    return np.asarray(noisy, np.float32)


# ---------------------------------------------------------------------------------------------
# clean held-out images


def head_ct_hu(factor: int = 1) -> tuple[np.ndarray, float]:
    """The held-out head CT slice ``693_UNCR`` as ``((1, H, W) float32 HU, pixel size mm)``.

    Values outside the scan field (-3024) are set to air (-1000 HU); ``factor`` > 1 block-averages.
    """
    import pydicom

    from medden.data.modalities import downsample, installed_test_file
    from medden.io.dicom_series import read_dicom_image

    path = installed_test_file(CT_FILE)
    plane = np.maximum(read_dicom_image(path).numpy().mean(axis=0), HU_AIR).astype(np.float32)
    spacing = float(pydicom.dcmread(path, stop_before_pixels=True).PixelSpacing[0])
    return downsample(plane, factor)[None], spacing * factor


def abdomen_mr(window: int) -> np.ndarray:
    """Centre ``window`` of the held-out abdomen MR, ``(1, window, window)`` in [0, 1]."""
    from medden.data.modalities import centre_window, sample_plane

    return centre_window(sample_plane(ABDOMEN_MR_FILE), window)


def brain_mr(window: int) -> np.ndarray:
    """The middle slice of the MNI152 test slab (``(1, 197, 233)`` in [0, 1]), cut to ``window``."""
    from medden.data.modalities import centre_window
    from medden.data.slices import mni_slices

    slab = mni_slices("test")
    return centre_window(slab[len(slab) // 2], window)


def chest_radiograph(window: int) -> np.ndarray:
    """Centre ``window`` of the held-out chest radiograph at 1/4 size, in [0, 1]."""
    from medden.data.modalities import centre_window, sample_plane

    return centre_window(sample_plane(CHEST_FILE, downsample=4), window)


def brain_volume(shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """The MNI152 test slab as one ``(1, H, W, D)`` volume in [0, 1] (its centre ``shape`` if given)."""
    from medden.data.slices import mni_slices

    volume = np.stack(mni_slices("test"), axis=-1)
    if shape is None:
        return volume
    starts = [max((n - s) // 2, 0) for n, s in zip(volume.shape[1:], shape)]
    return np.ascontiguousarray(volume[:, starts[0]:starts[0] + shape[0], starts[1]:starts[1] + shape[1],
                                       starts[2]:starts[2] + shape[2]])


# ---------------------------------------------------------------------------------------------
# cases


def ct_case(clean_hu: np.ndarray, dose: float, pixel_mm: float, seed: int, window: int) -> RealisticCase:
    """Low-dose CT simulated in the projection domain on the whole slice ``clean_hu``
    (``(1, H, W)`` HU), scored on its centre ``window``."""
    from medden.data.modalities import centre_window
    from medden.transforms.ct_noise import RandLowDoseCTNoise

    noise = f"low-dose CT, I0 {dose:.0e}/bin"
    transform = RandLowDoseCTNoise(dose, pixel_mm=pixel_mm)
    noisy = corrupted(transform, clean_hu, case_seed(seed, case_name("head CT", noise)), dose)
    return make_case("head CT", noise, SCANNER, centre_window(clean_hu, window), centre_window(noisy, window), HU)


def mr_case(modality: str, clean: np.ndarray, sigma: float, coils: int, seed: int) -> RealisticCase:
    """Magnitude MR from complex data: smooth phase, g-factor map (max :data:`MR_MAX_G`), ``coils``."""
    from medden.transforms.scanner_noise import RandMagnitudeMRNoise

    noise = f"magnitude MR, sigma {sigma:g}, g <= {MR_MAX_G:g}, {coils} coil{'s' if coils > 1 else ''}"
    transform = RandMagnitudeMRNoise(sigma, coils=coils, g_max_range=MR_MAX_G)
    noisy = corrupted(transform, clean, case_seed(seed, case_name(modality, noise)), sigma)
    return make_case(modality, noise, SCANNER, clean, noisy, UNIT)


def xray_case(clean: np.ndarray, peak: float, seed: int) -> RealisticCase:
    """Poisson-Gaussian radiography noise correlated by a Gaussian detector PSF (:data:`XRAY_PSF_SIGMA` px)
    plus white read-out noise (:data:`XRAY_READ_SIGMA`)."""
    from medden.transforms.scanner_noise import RandDetectorBlurNoise

    noise = f"detector-blurred Poisson, peak {peak:g}, PSF sigma {XRAY_PSF_SIGMA:g} px"
    transform = RandDetectorBlurNoise(peak, psf_sigma_range=XRAY_PSF_SIGMA, read_sigma_range=XRAY_READ_SIGMA)
    noisy = corrupted(transform, clean, case_seed(seed, case_name("chest radiograph", noise)), peak)
    return make_case("chest radiograph", noise, SCANNER, clean, noisy, UNIT)


def white_case(modality: str, clean: np.ndarray, noise: str, seed: int, family: str = WHITE) -> RealisticCase:
    """``clean`` in [0, 1] under one of :data:`WHITE_NOISES` (the levels of the general benchmark)."""
    from medden.transforms import RandGaussianSigmaNoise, RandPoissonNoise, RandRicianSigmaNoise

    transforms = {"gaussian": (RandGaussianSigmaNoise, protocols.RECORRUPTION_GAUSSIAN_SIGMA_VAL),
                  "poisson": (RandPoissonNoise, protocols.N2N_POISSON_PEAK_TEST),
                  "rician": (RandRicianSigmaNoise, RICIAN_SIGMA)}
    if noise not in transforms:
        raise ValueError(f"noise must be one of {sorted(transforms)}, got {noise!r}.")
    cls, level = transforms[noise]
    label = WHITE_NOISES[noise]
    noisy = corrupted(cls(level), clean, case_seed(seed, case_name(modality, label)), level)
    return make_case(modality, label, family, clean, noisy, UNIT, poisson_peak=level if noise == "poisson" else None)


def scanner_cases(seed: int = 0, quick: bool = False) -> list[RealisticCase]:
    """The scanner-like cases: CT at :data:`CT_DOSES`, MR at :data:`MR_LEVELS` on the abdomen and
    the brain, radiography at :data:`XRAY_PEAKS`. ``quick``: one level each, small images."""
    window = 128 if quick else 256
    hu, pixel_mm = head_ct_hu(2 if quick else 1)
    cases = [ct_case(hu, dose, pixel_mm, seed, window) for dose in (CT_DOSES[-1:] if quick else CT_DOSES)]
    mr_images = {"abdomen MR": abdomen_mr(window)} if quick else {"abdomen MR": abdomen_mr(window),
                                                                  "brain MR": brain_mr(window)}
    mr_levels, xray_peaks = (MR_LEVELS[-1:], XRAY_PEAKS[-1:]) if quick else (MR_LEVELS, XRAY_PEAKS)
    for modality, clean in mr_images.items():
        cases += [mr_case(modality, clean, sigma, coils, seed) for sigma, coils in mr_levels]
    chest = chest_radiograph(window)
    return cases + [xray_case(chest, peak, seed) for peak in xray_peaks]


def white_cases(seed: int = 0, quick: bool = False) -> list[RealisticCase]:
    """Every held-out modality (one brain slice) under each of :data:`WHITE_NOISES`; ``quick``:
    the head CT under Gaussian noise only."""
    from medden.data.modalities import general_test_images

    images = general_test_images(1)
    if quick:
        images = [item for item in images if item.modality == "CT"]
    noises = ["gaussian"] if quick else list(WHITE_NOISES)
    names = {"CT": "head CT", "MR": "abdomen MR", "radiograph": "chest radiograph"}
    return [white_case(names.get(item.modality, item.modality), item.image, noise, seed)
            for noise in noises for item in images]


def volume_cases(seed: int = 0, quick: bool = False) -> list[RealisticCase]:
    """The MNI152 test slab as a volume under Gaussian 20/255 (``quick``: its centre 64 x 64 x 8)."""
    return [white_case("brain MR volume", brain_volume((64, 64, 8) if quick else None), "gaussian", seed, VOLUME)]


def realistic_cases(seed: int = 0, quick: bool = False,
                    families: Sequence[str] = (SCANNER, WHITE, VOLUME)) -> list[RealisticCase]:
    """Every case of the benchmark, seeded (a case's noise depends on ``seed`` and its name only).

    Args:
        seed: base seed.
        quick: a smoke run: one level per scanner noise, 128 x 128 windows (the head CT
            simulated at half resolution), Gaussian white noise on the CT only (its full
            256 x 256 window, for timing), a 64 x 64 x 8 volume.
        families: which of :data:`SCANNER`, :data:`WHITE`, :data:`VOLUME` to build.

    Raises:
        ValueError: an unknown family.
        ModuleNotFoundError: the samples (pydicom-data, MNI152) are not installed.
    """
    builders = {SCANNER: scanner_cases, WHITE: white_cases, VOLUME: volume_cases}
    unknown = set(families) - set(builders)
    if unknown:
        raise ValueError(f"families must be among {sorted(builders)}, got {sorted(unknown)}.")
    return [case for family in families for case in builders[family](seed, quick)]


# ---------------------------------------------------------------------------------------------
# methods


def via_unit_range(denoise: Callable[[np.ndarray, float], np.ndarray], sigma: float | None) -> Method:
    """``noisy -> denoised`` in the noisy image's units: mapped to [0, 1] by its own robust range,
    denoised at ``sigma`` (given in the image's units; None: estimated on the mapped image), mapped back."""
    from medden.core.noise_estimation import estimate_noise_sigma

    def run(noisy: np.ndarray) -> np.ndarray:
        low, high = unit_range(noisy)
        unit = (np.asarray(noisy, np.float32) - low) / (high - low)
        level = estimate_noise_sigma(unit) if sigma is None else sigma / (high - low)
        return (np.asarray(denoise(unit, max(level, 1e-6)), np.float32) * (high - low) + low).astype(np.float32)

    return run


def bm4d_volume(volume: np.ndarray, sigma: float) -> np.ndarray:
    """BM4D (the ``bm4d`` package) of a ``(1, H, W, D)`` volume at noise std ``sigma``."""
    try:
        import bm4d
    except ImportError as err:
        raise ModuleNotFoundError("BM4D needs the bm4d package: pip install bm4d") from err
    return np.asarray(bm4d.bm4d(volume[0], sigma), np.float32)[None]


def classical_methods(case: RealisticCase) -> dict[str, Method]:
    """The classical anchors of one case, each ``noisy -> denoised`` in the case's units.

    2D: BM3D given a blind sigma (:func:`medden.core.noise_estimation.estimate_noise_sigma` on
    the noisy image, what a user without ground truth gets), BM3D given the true sigma
    (``case.true_sigma``; pure Poisson noise goes through the Anscombe transform with the true
    peak instead) and NLM with the blind sigma. Volumes: BM4D with the blind and the true sigma.
    """
    from medden.anchors import bm3d_denoise, nlm_denoise, with_anscombe

    if case.is_volume:
        return {BM4D_BLIND: via_unit_range(bm4d_volume, None), BM4D_TRUE: via_unit_range(bm4d_volume, case.true_sigma)}
    if case.poisson_peak is not None:
        true = with_anscombe(bm3d_denoise, case.poisson_peak)
    else:
        true = via_unit_range(bm3d_denoise, case.true_sigma)
    return {BM3D_BLIND: via_unit_range(bm3d_denoise, None), BM3D_TRUE: true,
            NLM_BLIND: via_unit_range(nlm_denoise, None)}


#: the inference-config key through which a bundle offers a self-ensemble
#: (:class:`medden.inference.SelfEnsembleInferer` views; the benchmark sets all eight)
ENSEMBLE_KEY = "self_ensemble_views"


def model_methods(v1: str | None, v2: str | None, upper_bound: str | None = None, trust: bool = False
                  ) -> tuple[dict[str, Method], dict[str, str], list[str]]:
    """The learned methods, each a bundle run as ``medden denoise`` runs it (on the CPU).

    Args:
        v1, v2: bundle names or folders (None: not compared).
        upper_bound: weights of the v2 network trained on clean targets, run in v2's bundle
            (its inferer and intensity handling) in place of v2's own weights.
        trust: load bundle folders medden does not ship.

    Returns:
        ``(methods, bundle names, notes)``: :data:`V1`, :data:`V2`, :data:`V2_ENSEMBLE` (when
        v2's inference config has an :data:`ENSEMBLE_KEY` entry) and :data:`UPPER_BOUND`, for
        those that loaded; the loaded bundles' names; one note per method skipped and why.
    """
    from medden.bundle import bundle_config, bundle_network, load_bundle
    from medden.inference.ensemble import ENSEMBLE_VIEWS

    methods, names, notes, loaded = {}, {}, [], {}
    for label, source in ((V1, v1), (V2, v2)):
        if not source:
            continue
        try:
            loaded[label] = load_bundle(source, device="cpu", trust=trust)
        except FileNotFoundError as err:
            notes.append(f"{label} ({source}) was skipped: {err}")
            continue
        methods[label], names[label] = loaded[label].denoise, loaded[label].name
    v2_bundle = loaded.get(V2)
    if v2_bundle is not None and ENSEMBLE_KEY in bundle_config(v2_bundle.root, trust=trust):
        ensemble = load_bundle(v2_bundle.root, device="cpu", overrides={ENSEMBLE_KEY: ENSEMBLE_VIEWS}, trust=trust)
        methods[V2_ENSEMBLE] = ensemble.denoise
        names[V2_ENSEMBLE] = f"{ensemble.name} ({ENSEMBLE_KEY} {ENSEMBLE_VIEWS})"
    elif v2_bundle is not None:
        notes.append(f"{V2_ENSEMBLE} was skipped: the v2 bundle's inference config has no {ENSEMBLE_KEY!r} entry.")
    if upper_bound and v2_bundle is None:
        notes.append(f"{UPPER_BOUND} ({upper_bound}) was skipped: it runs in the v2 bundle, which did not load.")
    elif upper_bound:
        network = bundle_network(v2_bundle.root, upper_bound, trust=trust)
        methods[UPPER_BOUND] = dataclasses.replace(v2_bundle, network=network).denoise
        names[UPPER_BOUND] = f"{v2_bundle.name} with {upper_bound}"
    return methods, names, notes


# ---------------------------------------------------------------------------------------------
# scoring


def unit_range(image: np.ndarray) -> tuple[float, float]:
    """The 0.5 and 99.5th percentiles of ``image`` (``(low, low + 1)`` for a constant image)."""
    from medden.core.intensity import intensity_range

    return intensity_range(image, SCORE_PERCENTILES)


def _scores(output: np.ndarray, reference: np.ndarray, data_range: float) -> tuple[float, float]:
    from medden.apps.benchmark.helpers import image_scores
    from medden.metrics.image_quality import psnr, ssim

    if output.ndim == 3:
        return image_scores(output, reference, data_range)
    output = np.asarray(output, np.float32)
    return (float(psnr(output, reference, data_range, spatial_dims=3)[0]),
            float(ssim(output, reference, data_range, spatial_dims=3)[0]))


def score_output(case: RealisticCase, output: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of ``output`` (the case's shape and units) against ``case.clean``.

    Both are mapped to [0, 1] by the clean image's 0.5-99.5th percentiles; data range 1. HU
    cases also get ``psnr_soft_tissue``: both clipped to :data:`CT_SOFT_TISSUE_WINDOW`, range 400.

    Raises:
        ValueError: ``output`` does not have the case's shape.
    """
    output = np.asarray(output, np.float32)
    if output.shape != case.clean.shape:
        raise ValueError(f"the output of case {case.name!r} has shape {output.shape}, expected {case.clean.shape}.")
    low, high = unit_range(case.clean)
    psnr_db, ssim_value = _scores((output - low) / (high - low), (case.clean - low) / (high - low), 1.0)
    scores = {"psnr": psnr_db, "ssim": ssim_value}
    if case.units == HU:
        low_hu, high_hu = CT_SOFT_TISSUE_WINDOW
        scores["psnr_soft_tissue"] = _scores(np.clip(output, low_hu, high_hu), np.clip(case.clean, low_hu, high_hu),
                                             high_hu - low_hu)[0]
    return scores


def residual_correlation(case: RealisticCase, output: np.ndarray) -> float:
    """Correlation of the residual ``noisy - output`` with the clean image
    (:func:`medden.metrics.fidelity.method_noise_correlation`; volumes as one plane): about 0
    for a denoiser that removes only zero-mean noise, > 0 when it removes anatomy. Noise with
    an image-dependent bias (magnitude MR, Rician) gives the ideal output (the clean image)
    a negative value."""
    from medden.metrics.fidelity import method_noise_correlation

    def flat(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, np.float32)
        return image.reshape(1, image.shape[1], -1)

    return method_noise_correlation(flat(case.noisy), flat(output), flat(case.clean))


def score_case(case: RealisticCase, methods: dict[str, Method]) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Run every method on ``case.noisy`` and score it (the noisy input is scored as :data:`NOISY`).

    Returns:
        ``(outputs, records)``: outputs by method name; one record per method with the case's
        name, modality, noise and family, ``psnr``, ``ssim`` (``psnr_soft_tissue`` in HU),
        ``seconds`` and ``residual_correlation``.
    """
    outputs, seconds = {NOISY: case.noisy}, {NOISY: 0.0}
    for name, method in methods.items():
        started = time.perf_counter()
        outputs[name] = np.asarray(method(case.noisy), np.float32)
        seconds[name] = time.perf_counter() - started
    records = []
    for name, output in outputs.items():
        record = {"case": case.name, "modality": case.modality, "noise": case.noise, "family": case.family,
                  "method": name, **score_output(case, output), "seconds": seconds[name]}
        records.append({**record, "residual_correlation": residual_correlation(case, output)})
    return outputs, records


def ms_per_slice(method: Method, image: np.ndarray, repeats: int, warm_up: bool = True) -> float:
    """Median wall-clock milliseconds of ``method(image)`` over ``repeats`` calls (after one
    untimed call when ``warm_up``), per 256 x 256 pixels of ``image`` (``(C, H, W[, D])``)."""
    if warm_up:
        method(image)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        method(image)
        times.append(time.perf_counter() - started)
    pixels = int(np.prod(np.asarray(image).shape[1:]))
    return 1000.0 * float(np.median(times)) * SLICE_PIXELS / pixels


# ---------------------------------------------------------------------------------------------
# lesion contrast


@dataclass(frozen=True)
class LesionSettings:
    """Synthetic lesions inserted into a CT case: ``count`` discs of ``radius`` px and
    ``contrast`` HU, each in soft tissue (``tissue`` HU over the disc and its ``ring``)."""

    radius: int = 5
    ring: int = 4
    contrast: float = 40.0
    count: int = 8
    tissue: tuple[float, float] = (10.0, 60.0)


def _distance(shape: tuple[int, int], centre: tuple[int, int]) -> np.ndarray:
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return np.hypot(rows - centre[0], cols - centre[1])


def lesion_sites(clean_hu: np.ndarray, settings: LesionSettings = LesionSettings()) -> list[tuple[int, int]]:
    """Up to ``settings.count`` lesion centres ``(row, col)`` in soft tissue of ``clean_hu``
    (``(1, H, W)``), on a grid of non-overlapping neighbourhoods, spread evenly over the candidates.

    Raises:
        ValueError: no neighbourhood lies wholly in ``settings.tissue``.
    """
    from scipy.ndimage import minimum_filter

    plane = np.asarray(clean_hu, np.float32)[0]
    outer = settings.radius + settings.ring
    tissue = (plane >= settings.tissue[0]) & (plane <= settings.tissue[1])
    inside = minimum_filter(tissue.astype(np.uint8), size=2 * outer + 3, mode="constant", cval=0).astype(bool)
    step = 2 * outer + 3
    grid = [(r, c) for r in range(outer + 1, plane.shape[0] - outer - 1, step)
            for c in range(outer + 1, plane.shape[1] - outer - 1, step) if inside[r, c]]
    if not grid:
        raise ValueError(f"no {2 * outer + 3}-pixel neighbourhood of the image lies in soft tissue "
                         f"{settings.tissue} HU; give a CT slice with more soft tissue or a smaller lesion.")
    picks = np.linspace(0, len(grid) - 1, min(settings.count, len(grid))).round().astype(int)
    return [grid[i] for i in dict.fromkeys(picks)]


def lesion_contrast_kept(method: Method, noisy: np.ndarray, denoised: np.ndarray, sites: Sequence[tuple[int, int]],
                         settings: LesionSettings = LesionSettings()) -> float:
    """Fraction of a lesion's contrast that ``method`` keeps, averaged over ``sites``.

    The discs are added to the noisy image (the noise is unchanged); the method runs again,
    and the contrast it passes on is ``mean_disc(delta) - mean_ring(delta)`` with
    ``delta = method(noisy + lesions) - denoised``, over ``settings.contrast``: 1 keeps the
    lesion, < 1 washes it out. The noise cancels in ``delta``, so a few lesions give a
    precise figure.

    Args:
        method: ``noisy -> denoised``, ``(1, H, W)`` in the case's units (HU).
        noisy: the case's noisy image; ``denoised``: ``method(noisy)``.
        sites: lesion centres (:func:`lesion_sites`).
    """
    shape = np.asarray(noisy).shape[1:]
    lesions = np.zeros(shape, np.float32)
    masks = []
    for site in sites:
        distance = _distance(shape, site)
        disc = distance <= settings.radius
        ring = (distance > settings.radius + 1) & (distance <= settings.radius + 1 + settings.ring)
        lesions[disc] = settings.contrast
        masks.append((disc, ring))
    delta = (np.asarray(method(np.asarray(noisy, np.float32) + lesions[None]), np.float32)
             - np.asarray(denoised, np.float32))[0]
    kept = [(delta[disc].mean() - delta[ring].mean()) / settings.contrast for disc, ring in masks]
    return float(np.mean(kept))


# ---------------------------------------------------------------------------------------------
# targets


def _psnr(records: list[dict], case: str, method: str) -> float | None:
    found = [r["psnr"] for r in records if r["case"] == case and r["method"] == method]
    return found[0] if found else None


def _margins(records: list[dict], model: str, anchor: str, cases: list[str]) -> list[tuple[str, float]]:
    """``(case, model PSNR - anchor PSNR)`` where both were measured."""
    pairs = [(c, _psnr(records, c, model), _psnr(records, c, anchor)) for c in cases]
    return [(c, m - a) for c, m, a in pairs if m is not None and a is not None]


def _check(text: str, margins: list[tuple[str, float]], bound: float) -> dict:
    """All margins > ``bound``: met; the worst one is the measured figure."""
    if not margins:
        return {"target": text, "met": None, "figure": "not measured"}
    worst = min(margins, key=lambda m: m[1])
    misses = [c for c, m in margins if m <= bound]
    return {"target": text, "met": not misses,
            "figure": f"{len(margins) - len(misses)} of {len(margins)} cases; worst {worst[1]:+.2f} dB ({worst[0]})"}


def target_checks(records: list[dict], speed: dict[str, float], lesion: dict[str, dict[str, float]],
                  model: str = V2) -> list[dict]:
    """The issue's targets for ``model``, from the measurements alone.

    Args:
        records: :func:`score_case` records.
        speed: ms per 256 x 256 slice by method (:func:`ms_per_slice`).
        lesion: lesion contrast kept by case, then by method.
        model: the method under test.

    Returns:
        One ``{"target", "met", "figure"}`` per target; ``met`` is None when not measured.
    """
    cases = list(dict.fromkeys(r["case"] for r in records))
    family = {r["case"]: r["family"] for r in records}
    white = [c for c in cases if family[c] == WHITE and ("Gaussian" in c or "Poisson" in c)]
    scanner = [c for c in cases if family[c] == SCANNER]
    checks = [
        _check("beats true-sigma BM3D on every held-out modality under Gaussian 20/255 and Poisson 30",
               _margins(records, model, BM3D_TRUE, white), 0.0),
        _check("beats blind-sigma BM3D on every scanner-like case", _margins(records, model, BM3D_BLIND, scanner), 0.0),
        _check("within 0.5 dB of true-sigma BM3D on every scanner-like case",
               _margins(records, model, BM3D_TRUE, scanner), -0.5),
    ]
    ms, bm3d_ms = speed.get(model), speed.get(BM3D_TRUE)
    checks.append({"target": "<= 40 ms per 256 x 256 slice on 2 CPU threads", "met": None if ms is None else ms <= 40,
                   "figure": "not measured" if ms is None else f"{ms:.1f} ms"})
    ratio = None if ms is None or bm3d_ms is None else bm3d_ms / ms
    checks.append({"target": ">= 50x faster than BM3D in the same run", "met": None if ratio is None else ratio >= 50,
                   "figure": "not measured" if ratio is None else f"{ratio:.0f}x ({bm3d_ms:.0f} ms / {ms:.1f} ms)"})
    correlations = [(r["case"], r["residual_correlation"]) for r in records
                    if r["method"] == model and "residual_correlation" in r]
    worst = max(correlations, key=lambda c: c[1]) if correlations else None
    checks.append({"target": "residual correlates with the image by < 0.05",
                   "met": None if worst is None else worst[1] < 0.05,
                   "figure": "not measured" if worst is None else f"worst {worst[1]:+.3f} ({worst[0]})"})
    kept = [(c, by_method[model]) for c, by_method in lesion.items() if model in by_method]
    least = min(kept, key=lambda k: k[1]) if kept else None
    checks.append({"target": "a lesion-sized structure keeps >= 95 % of its contrast",
                   "met": None if least is None else least[1] >= 0.95,
                   "figure": "not measured" if least is None else f"least {100 * least[1]:.1f} % ({least[0]})"})
    return checks
