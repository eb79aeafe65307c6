"""Low-dose CT noise made as a scanner makes it, and a fast generator matched to it.

* :class:`RandLowDoseCTNoise` simulates the physics in the projection domain: HU ->
  attenuation -> parallel-beam line integrals -> Poisson photon counts (plus optional
  electronic noise) -> log -> filtered back-projection (FBP). The reference: about 0.1 s per
  128 x 128 slice on one CPU thread.
* :class:`RandCTNoiseFromNPS` synthesises the same noise in a few ms: white Gaussian noise
  shaped by the FBP noise power spectrum (NPS) of the same geometry and kernel, scaled
  pixelwise by the local noise level that the attenuation along the rays through each pixel
  predicts. About 2 ms per 128 x 128 slice; its NPS shape, local variance and absolute level
  match the physics (see ``tests/transforms/test_scanner_noise.py``).

Both take a single-channel slice ``(1, H, W)`` float, whose values map to Hounsfield units as
``HU = img * hu_scale + hu_offset`` (defaults 1 and 0: the image is already in HU; for an image
scaled to [0, 1] from the window -1000..1000 HU use ``hu_scale=2000, hu_offset=-1000``). The
level is ``i0``, the incident photon count per detector bin of one view (unattenuated ray);
lower is noisier and the noise variance scales as ``1 / i0``. The image is ``pixel_mm`` mm per
pixel, the detector has one bin per pixel and covers the image's diagonal, views are equally
spaced over 180 degrees.

The projector and FBP are plain functions of ``(B, H, W)`` tensors: :func:`parallel_beam_project`
(ray-driven, bilinear), :func:`back_project` (linear interpolation on the detector) and
:func:`filtered_back_project` (ramp filter with a ``"ramp"``, ``"shepp-logan"`` or ``"hann"``
window). Noise measured from samples: :func:`radial_power_spectrum`; the FBP noise of a
geometry: :func:`fbp_noise_power`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import NdarrayOrTensor
from monai.utils import convert_to_dst_type, convert_to_tensor

from medden.core.validation import check_channel_first, check_finite, check_int, check_number, check_positive
from medden.transforms.corruption import RandCorruption

__all__ = [
    "CT_FILTERS",
    "COUNT_FLOOR",
    "detector_bins",
    "parallel_beam_project",
    "back_project",
    "filtered_back_project",
    "radial_power_spectrum",
    "FBPNoisePower",
    "fbp_noise_power",
    "RandLowDoseCTNoise",
    "RandCTNoiseFromNPS",
]

#: reconstruction kernels: the ramp filter alone or apodised by a Shepp-Logan (sinc) or Hann window
CT_FILTERS = ("ramp", "shepp-logan", "hann")
#: detected counts are clipped to at least this many photons before the log (photon starvation)
COUNT_FLOOR = 1.0
#: interpolation points per grid_sample call: bounds the projector's memory (~50 MB)
_POINTS_PER_CHUNK = 2**21
#: geometries with at most this many points keep their interpolation grid in a cache (<= 8 MB each)
_CACHED_POINTS = 2**20


def detector_bins(shape: tuple[int, int]) -> int:
    """Number of detector bins (one pixel wide) covering the diagonal of an ``(H, W)`` image: odd."""
    n_bins = math.ceil(math.hypot(*shape)) + 2
    return n_bins + 1 - n_bins % 2


def _trig(n_angles: int, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    angles = torch.arange(start, stop, dtype=torch.float64) * (math.pi / n_angles)
    return torch.cos(angles).float(), torch.sin(angles).float()


def _centred(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32) - (n - 1) / 2


def _projection_grid(shape: tuple[int, int], n_angles: int, start: int, stop: int) -> torch.Tensor:
    """``(1, views * bins, bins, 2)`` grid_sample coordinates of the ray samples of views ``start:stop``."""
    n_bins = detector_bins(shape)
    cos, sin = (v[:, None, None] for v in _trig(n_angles, start, stop))
    t = _centred(n_bins)
    grid = torch.empty((stop - start, n_bins, n_bins, 2))
    grid[..., 0] = (t[:, None] * cos - t[None, :] * sin) / ((shape[1] - 1) / 2)  # x: bin, sample along the ray
    grid[..., 1] = (t[:, None] * sin + t[None, :] * cos) / ((shape[0] - 1) / 2)
    return grid.reshape(1, -1, n_bins, 2)


def _backprojection_grid(shape: tuple[int, int], n_angles: int, start: int, stop: int) -> torch.Tensor:
    """``(views, 1, H * W, 2)`` grid_sample coordinates of each pixel on the detector of views ``start:stop``."""
    n_bins = detector_bins(shape)
    yy, xx = torch.meshgrid(_centred(shape[0]), _centred(shape[1]), indexing="ij")
    cos, sin = (v[:, None] for v in _trig(n_angles, start, stop))
    grid = torch.zeros((stop - start, 1, shape[0] * shape[1], 2))
    grid[:, 0, :, 0] = (xx.reshape(-1) * cos + yy.reshape(-1) * sin) / ((n_bins - 1) / 2)
    return grid


@lru_cache(maxsize=8)
def _whole_grid(make, shape: tuple[int, int], n_angles: int) -> torch.Tensor:
    return make(shape, n_angles, 0, n_angles)


def _grid_chunks(make, shape: tuple[int, int], n_angles: int, points_per_view: int, like: torch.Tensor):
    """Yield ``(start, stop, grid)`` over the views; a small geometry (the noise map's) is built once and cached."""
    if n_angles * points_per_view <= _CACHED_POINTS:
        yield 0, n_angles, _whole_grid(make, shape, n_angles).to(like)
        return
    step = max(1, _POINTS_PER_CHUNK // points_per_view)
    for start in range(0, n_angles, step):
        stop = min(start + step, n_angles)
        yield start, stop, make(shape, n_angles, start, stop).to(like)


def parallel_beam_project(image: torch.Tensor, n_angles: int) -> torch.Tensor:
    """Parallel-beam line integrals (Radon transform) of ``image``, in pixel units.

    View ``k`` is at angle ``k * pi / n_angles``; the rays of a view are one pixel apart and
    :func:`detector_bins` of them cover the image's diagonal, so nothing is cut off. Each ray is
    sampled every pixel with bilinear interpolation (zero outside the image).

    Args:
        image: ``(B, H, W)`` float tensor, H and W >= 2; multiply the result by the pixel size
            to get line integrals of an attenuation map in physical units.
        n_angles: number of views over 180 degrees.

    Returns:
        ``(B, n_angles, detector_bins((H, W)))`` sinogram, ``image``'s dtype and device.
    """
    batch, height, width = image.shape
    n_bins = detector_bins((height, width))
    views = []
    for _, _, grid in _grid_chunks(_projection_grid, (height, width), n_angles, n_bins * n_bins, image):
        samples = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        views.append(samples.sum(-1).reshape(batch, -1, n_bins))
    return torch.cat(views, dim=1)


def back_project(sinogram: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Unfiltered back-projection: at each pixel, the **mean over views** of the sinogram
    linearly interpolated at the pixel's detector position (the adjoint geometry of
    :func:`parallel_beam_project`).

    Args:
        sinogram: ``(B, n_angles, n_bins)`` float tensor, ``n_bins = detector_bins(shape)``.
        shape: ``(H, W)`` of the image.

    Returns:
        ``(B, H, W)`` tensor, ``sinogram``'s dtype and device.
    """
    batch, n_angles, n_bins = sinogram.shape
    shape = (int(shape[0]), int(shape[1]))
    if n_bins != detector_bins(shape):
        raise ValueError(f"sinogram has {n_bins} detector bins, an image of shape {shape} needs "
                         f"{detector_bins(shape)}; make it with parallel_beam_project.")
    total = torch.zeros(batch, shape[0] * shape[1], dtype=sinogram.dtype, device=sinogram.device)
    for start, stop, grid in _grid_chunks(_backprojection_grid, shape, n_angles, shape[0] * shape[1], sinogram):
        views = sinogram[:, start:stop].transpose(0, 1)[:, :, None, :]  # (views, B, 1, bins)
        samples = F.grid_sample(views, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        total += samples.sum(0)[:, 0]
    return (total / n_angles).reshape(batch, *shape)


@lru_cache(maxsize=32)
def _filter_response(n_bins: int, filter_name: str) -> tuple[torch.Tensor, int]:
    """rfft response of the discrete ramp kernel (Kak & Slaney) times the window, and the padded length."""
    size = max(64, 1 << math.ceil(math.log2(2 * n_bins)))
    offsets = torch.cat((torch.arange(0, size // 2 + 1), torch.arange(size // 2 - 1, 0, -1))).double()
    kernel = torch.where(offsets % 2 == 1, -1.0 / (math.pi * offsets.clamp_min(1)) ** 2, torch.zeros(()))
    kernel[0] = 0.25
    response = torch.fft.rfft(kernel).real
    nu = torch.fft.rfftfreq(size, dtype=torch.float64)  # cycles per detector bin
    if filter_name == "shepp-logan":
        response = response * torch.sinc(nu)
    elif filter_name == "hann":
        response = response * 0.5 * (1 + torch.cos(2 * math.pi * nu))
    return response, size


def _check_filter(filter_name: str) -> str:
    if filter_name not in CT_FILTERS:
        raise ValueError(f"filter_name must be one of {CT_FILTERS}, got {filter_name!r}.")
    return filter_name


def filtered_back_project(sinogram: torch.Tensor, shape: tuple[int, int],
                          filter_name: str = "shepp-logan") -> torch.Tensor:
    """Filtered back-projection of a parallel-beam sinogram.

    Linear in ``sinogram``; ``filtered_back_project(parallel_beam_project(f, n), f.shape[1:])``
    recovers ``f`` away from sharp edges.

    Args:
        sinogram: ``(B, n_angles, detector_bins(shape))`` float tensor (line integrals in pixel units).
        shape: ``(H, W)`` of the image.
        filter_name: one of :data:`CT_FILTERS`.

    Returns:
        ``(B, H, W)`` tensor, ``sinogram``'s dtype and device.
    """
    response, size = _filter_response(sinogram.shape[-1], _check_filter(filter_name))
    spectrum = torch.fft.rfft(sinogram, n=size) * response.to(sinogram.device, sinogram.dtype)
    filtered = torch.fft.irfft(spectrum, n=size)[..., : sinogram.shape[-1]]
    return math.pi * back_project(filtered, shape)


def radial_power_spectrum(noise: torch.Tensor, n_bins: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Radially averaged noise power spectrum of noise samples.

    Args:
        noise: ``(N, H, W)`` zero-mean noise realisations (each one's mean is removed).
        n_bins: number of rings between 0 and the largest frequency (default ``max(H, W)``).

    Returns:
        ``(frequencies, power)``: ring centres in cycles per pixel (0 to ``sqrt(0.5)``) and the
        mean periodogram ``|FFT|^2 / (H W)`` in each ring (float64; a ring without a frequency
        gets the value of the ring below it). The 2D mean of the periodogram is the variance.
    """
    count, height, width = noise.shape
    centred = noise.double() - noise.double().mean(dim=(-2, -1), keepdim=True)
    periodogram = (torch.fft.fft2(centred).abs() ** 2).mean(0) / (height * width)
    rho = torch.sqrt(torch.fft.fftfreq(height, dtype=torch.float64)[:, None] ** 2
                     + torch.fft.fftfreq(width, dtype=torch.float64)[None, :] ** 2)
    n_bins = n_bins or max(height, width)
    ring = torch.clamp((rho / math.sqrt(0.5) * n_bins).long(), max=n_bins - 1).reshape(-1)
    hits = torch.bincount(ring, minlength=n_bins).double()
    power = torch.bincount(ring, periodogram.reshape(-1), minlength=n_bins) / hits.clamp_min(1)
    freqs = torch.bincount(ring, rho.reshape(-1), minlength=n_bins) / hits.clamp_min(1)
    for k in range(1, n_bins):  # empty rings (only for very small images) repeat the ring below
        if hits[k] == 0:
            power[k], freqs[k] = power[k - 1], (k + 0.5) * math.sqrt(0.5) / n_bins
    return freqs, power


class FBPNoisePower(NamedTuple):
    """Noise of an FBP reconstruction from white sinogram noise of unit variance.

    Attributes:
        variance: pixel variance of the reconstruction (per unit sinogram variance).
        frequencies: ``(n,)`` ring centres in cycles per pixel.
        radial_nps: ``(n,)`` radially averaged NPS, normalised to a 2D mean of 1.
        amplitude: ``(H, W // 2 + 1)`` square root of the radially symmetric 2D NPS (2D mean 1)
            on the ``rfft2`` grid: filtering unit white noise with it gives unit-variance noise
            with the FBP's NPS shape.
    """

    variance: float
    frequencies: torch.Tensor
    radial_nps: torch.Tensor
    amplitude: torch.Tensor


@lru_cache(maxsize=16)
def fbp_noise_power(shape: tuple[int, int], n_angles: int, filter_name: str) -> FBPNoisePower:
    """Measure the FBP noise of a geometry once (cached): reconstruct white unit-variance
    sinograms (a fixed seed, enough of them for about 2**18 pixels) with
    :func:`filtered_back_project` and average their periodograms over rings.

    The NPS of FBP noise is radially ``|f| * window(f)**2`` times the detector interpolation's
    response, zero at DC; measuring it through the same code includes every discretisation effect.
    Costs about 0.3 s for a 128 x 128 and 0.6 s for a 256 x 256 geometry. Returned tensors are
    shared: do not modify them.
    """
    height, width = shape
    repeats = max(2, math.ceil(2**18 / (height * width)))
    generator = torch.Generator().manual_seed(0)
    white = torch.randn((repeats, n_angles, detector_bins(shape)), generator=generator)
    noise = filtered_back_project(white, shape, filter_name)
    freqs, power = radial_power_spectrum(noise)
    rho = np.sqrt(np.fft.fftfreq(height)[:, None] ** 2 + np.fft.fftfreq(width)[None, :] ** 2)
    nps_2d = np.interp(rho, freqs.numpy(), power.numpy())
    scale = nps_2d.mean()
    amplitude = torch.as_tensor(np.sqrt(nps_2d / scale)[:, : width // 2 + 1], dtype=torch.float32)
    return FBPNoisePower(float(noise.double().var()), freqs, power / scale, amplitude)


class _CTNoiseBase(RandCorruption):
    """Parameters, units and the local noise model shared by the CT noise transforms."""

    level_name = "i0"
    #: side (pixels) of the downsampled attenuation map the local noise level is computed on
    STD_MAP_SIZE: ClassVar[int] = 64
    #: number of views of that computation
    STD_MAP_ANGLES: ClassVar[int] = 45

    def __init__(
        self,
        i0_range: tuple[float, float] | float = (1e4, 2e5),
        electronic_sigma: float = 0.0,
        filter_name: str = "shepp-logan",
        n_angles: int | None = None,
        pixel_mm: float = 0.7,
        mu_water: float = 0.0192,
        hu_scale: float = 1.0,
        hu_offset: float = 0.0,
        prob: float = 1.0,
    ) -> None:
        super().__init__(i0_range, prob)
        if self.level_range[0] <= 0:
            raise ValueError(f"i0_range must be > 0 (incident photons per detector bin), got {i0_range!r}.")
        self.electronic_sigma = check_number(electronic_sigma, "electronic_sigma", 0.0, hint="it is in photon counts")
        self.filter_name = _check_filter(filter_name)
        self.n_angles = None if n_angles is None else check_int(n_angles, "n_angles", 2)
        self.pixel_mm = check_positive(pixel_mm, "pixel_mm")
        self.mu_water = check_positive(mu_water, "mu_water", hint="water attenuates about 0.0192 /mm at 70 keV")
        self.hu_scale = check_number(hu_scale, "hu_scale")
        if self.hu_scale == 0:
            raise ValueError("hu_scale must be non-zero (HU = img * hu_scale + hu_offset), got 0.")
        self.hu_offset = check_number(hu_offset, "hu_offset")

    def _check(self, img: torch.Tensor) -> None:
        check_channel_first(img, spatial_dims=(2,))
        if img.shape[0] != 1 or min(img.shape[1:]) < 4:
            raise ValueError(f"img must be one CT slice (1, H, W) with H, W >= 4, got shape {tuple(img.shape)}; "
                             "corrupt each channel or slice separately.")
        check_finite(img)

    def _draw_field(self, img: torch.Tensor, level: float) -> int:
        if level <= 0:
            raise ValueError(f"i0 must be > 0 (incident photons per detector bin), got {level!r}.")
        return int(self.R.randint(0, 2**31 - 1))

    def n_views(self, shape: tuple[int, int]) -> int:
        """Number of views for an ``(H, W)`` slice: ``n_angles``, or ``round(max(H, W) * pi / 2)``."""
        return self.n_angles or max(8, round(max(shape) * math.pi / 2))

    def _attenuation(self, img: torch.Tensor) -> torch.Tensor:
        """``(1, H, W)`` image -> ``(1, H, W)`` float32 attenuation in 1/mm (negative values clipped)."""
        hu = convert_to_tensor(img, track_meta=False).float() * self.hu_scale + self.hu_offset
        return (self.mu_water * (1 + hu / 1000)).clamp_min(0)

    def _units_per_fbp(self) -> float:
        """Image units per unit of FBP of (pixel-unit) sinogram noise: /pixel_mm -> 1/mm -> HU -> image."""
        return 1000.0 / (self.mu_water * self.pixel_mm * self.hu_scale)

    def _std_map(self, img: torch.Tensor, i0: float) -> torch.Tensor:
        shape = tuple(img.shape[-2:])
        mu = self._attenuation(img).cpu()
        scale = max(1.0, max(shape) / self.STD_MAP_SIZE)
        small = (max(4, round(shape[0] / scale)), max(4, round(shape[1] / scale)))
        mu_small = F.interpolate(mu[None], size=small, mode="area")[0] if small != shape else mu
        pixel = self.pixel_mm * 0.5 * (shape[0] / small[0] + shape[1] / small[1])
        p = parallel_beam_project(mu_small, self.STD_MAP_ANGLES).double() * pixel
        counts = (i0 * torch.exp(-p)).clamp_min(COUNT_FLOOR)
        sinogram_var = (counts + self.electronic_sigma**2) / counts**2  # var of -log(counts / i0)
        var = back_project(sinogram_var.float(), small)
        var = F.interpolate(var[None], size=shape, mode="bilinear", align_corners=False)[0]
        unit_var = fbp_noise_power(shape, self.n_views(shape), self.filter_name).variance
        return (torch.sqrt(unit_var * var) * abs(self._units_per_fbp())).to(img.device)

    def noise_std_map(self, img: NdarrayOrTensor, i0: float | None = None) -> NdarrayOrTensor:
        """Predicted local noise standard deviation of the CT noise at ``i0``, in image units.

        Variance at a pixel = (FBP variance per unit sinogram variance) x the mean over views of
        ``var(-log(counts / i0)) = (lambda + electronic_sigma**2) / lambda**2``, ``lambda = i0 *
        exp(-p)``, on the ray through the pixel; computed on a downsampled attenuation map
        (:attr:`STD_MAP_SIZE` px, :attr:`STD_MAP_ANGLES` views) and upsampled. It is the noise
        map :class:`RandCTNoiseFromNPS` draws with, and what a noise-map-conditioned network can use.

        Args:
            img: ``(1, H, W)`` slice in image units (see the module docstring).
            i0: incident photons per detector bin; default: the last drawn level.

        Returns:
            ``(1, H, W)`` float32 map with ``img``'s container type.
        """
        img_t = convert_to_tensor(img, track_meta=False)
        self._check(img_t)
        i0 = self.level if i0 is None else i0
        if i0 is None:
            raise ValueError("i0 is needed: pass i0 or call the transform first so that a level is drawn.")
        check_positive(i0, "i0")
        return convert_to_dst_type(self._std_map(img_t, float(i0)), img, dtype=torch.float32)[0]


class RandLowDoseCTNoise(_CTNoiseBase):
    """Low-dose CT noise simulated in the projection domain (the physics reference).

    For a slice in image units: ``HU = img * hu_scale + hu_offset``; attenuation
    ``mu = mu_water * (1 + HU / 1000)`` in 1/mm, clipped at 0; line integrals
    ``p = pixel_mm * radon(mu)`` (:func:`parallel_beam_project`); detected counts
    ``N = max(Poisson(i0 * exp(-p)) + electronic_sigma * n, COUNT_FLOOR)``, ``n ~ N(0, 1)``;
    noisy line integrals ``-log(N / i0)``; reconstruction by FBP with ``filter_name``; back to
    HU and image units.

    **Only the noise is added**: the result is ``img + (FBP(p_noisy) - FBP(p))`` in image units,
    not ``FBP(p_noisy)``, so the clean image keeps its own resolution (a discrete FBP would blur
    it and add its own artefacts). The noise is streaky and correlated (NPS zero at DC, peak at
    mid frequency), strongest where the rays through a pixel are most attenuated (the centre
    of a large body, near bone or metal); mean ~0 (the log adds a bias of ``exp(p) / (2 i0)``
    per ray, negligible unless photons starve).

    About 0.1 s per 128 x 128 and 0.7 s per 256 x 256 slice on one CPU thread; train with
    :class:`RandCTNoiseFromNPS`.

    Args:
        i0_range: ``(low, high)`` incident photons per detector bin of one view, > 0; the level.
        electronic_sigma: electronic (read-out) noise of each detector reading, photon counts.
        filter_name: reconstruction kernel, one of :data:`CT_FILTERS`.
        n_angles: views over 180 degrees; None: ``round(max(H, W) * pi / 2)``.
        pixel_mm: pixel size, mm.
        mu_water: attenuation of water, 1/mm (0.0192 at about 70 keV).
        hu_scale: HU per image unit.
        hu_offset: HU of image value 0.
        prob: probability of applying.

    Example:
        >>> import numpy as np
        >>> water = np.zeros((1, 32, 32), np.float32)  # 0 HU
        >>> RandLowDoseCTNoise(i0_range=1e5).set_random_state(0)(water).shape
        (1, 32, 32)
    """

    def _corrupt(self, img, level, field):
        shape = tuple(img.shape[-2:])
        p = parallel_beam_project(self._attenuation(img).cpu(), self.n_views(shape)).double() * self.pixel_mm
        generator = torch.Generator().manual_seed(field)
        counts = torch.poisson(level * torch.exp(-p), generator=generator)
        if self.electronic_sigma > 0:
            counts = counts + self.electronic_sigma * torch.randn(p.shape, generator=generator, dtype=p.dtype)
        noise_sinogram = -torch.log(counts.clamp_min(COUNT_FLOOR) / level) - p
        noise = filtered_back_project(noise_sinogram.float(), shape, self.filter_name)  # = FBP(p_noisy) - FBP(p)
        return img + (noise * self._units_per_fbp()).to(img), None


class RandCTNoiseFromNPS(_CTNoiseBase):
    """Fast low-dose CT noise, matched to :class:`RandLowDoseCTNoise` (same parameters and units).

    ``y = img + s(x) * (h * w)``: ``w`` is white Gaussian noise, ``h`` the filter whose power is
    the radially symmetric NPS of the same FBP geometry and kernel (:func:`fbp_noise_power`,
    normalised to unit variance), and ``s`` the local standard deviation of
    :meth:`noise_std_map`, whose absolute scale is the physics' at the same ``i0``, ``pixel_mm``,
    ``mu_water``, kernel and number of views. It reproduces the physics' NPS shape, local
    variance (centre vs edge, near dense structures) and ``1 / i0`` scaling, not the
    directional streaks behind dense objects, nor photon starvation.

    About 2 ms per 128 x 128 or 256 x 256 slice on one CPU thread; the NPS is measured once per
    image size and cached (0.3 s for 128 x 128, 0.6 s for 256 x 256).

    Args: as :class:`RandLowDoseCTNoise`.
    """

    def _corrupt(self, img, level, field):
        shape = tuple(img.shape[-2:])
        amplitude = fbp_noise_power(shape, self.n_views(shape), self.filter_name).amplitude
        white = torch.randn(shape, generator=torch.Generator().manual_seed(field))
        shaped = torch.fft.irfft2(torch.fft.rfft2(white) * amplitude, s=shape)
        return img + (self._std_map(img, level).cpu() * shaped).to(img), None
