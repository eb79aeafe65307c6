"""A loaded bundle as one object: ``bundle.denoise(image)``, and what a caller records about it.

:func:`medden.bundle.loading.load_bundle` makes a :class:`Bundle`; callers denoise with it and
record its ``name``, ``backend`` and ``parameters`` (they enter derived DICOM UIDs), without
taking its network and inferer apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["Bundle", "ChannelError", "runs_on_volumes", "sees_neighbouring_slices", "single_image_network"]


class ChannelError(ValueError):
    """An image whose channel count an RGB (or other multi-channel) bundle does not take.

    Attributes:
        expected: the bundle's ``image_channels``.
        got: the image's channel count.
    """

    def __init__(self, bundle: str, expected: int, got: int) -> None:
        super().__init__(f"bundle {bundle!r} takes {expected}-channel images, got {got} channel(s); give it "
                         f"{expected}-channel images, or use a grey bundle (image_channels 1), which takes any.")
        self.expected, self.got = expected, got


def _inferer_chain(inferer: Callable) -> Iterator[Callable]:
    """``inferer`` and every inferer it wraps (through ``base_inferer``), outermost first."""
    while inferer is not None:
        yield inferer
        inferer = getattr(inferer, "base_inferer", None)


def runs_on_volumes(inferer: Callable) -> bool:
    """Whether a bundle's inferer (or one it wraps) is a ``SliceInferer`` or a
    :class:`~medden.inference.SliceStackInferer`, i.e. takes ``(B, C, H, W, D)`` volumes; else it
    takes ``(B, C, H, W)`` images."""
    from monai.inferers import SliceInferer

    from medden.inference.stacks import SliceStackInferer

    return any(isinstance(each, (SliceInferer, SliceStackInferer)) for each in _inferer_chain(inferer))


def sees_neighbouring_slices(inferer: Callable) -> bool:
    """Whether a bundle's inferer (or one it wraps) is a :class:`~medden.inference.SliceStackInferer`,
    whose network sees each slice with its neighbours (2.5D); a ``SliceInferer`` runs slices alone."""
    from medden.inference.stacks import SliceStackInferer

    return any(isinstance(each, SliceStackInferer) for each in _inferer_chain(inferer))


def single_image_network(inferer: Callable) -> Any:
    """The 2D network a bundle's inferer (or one it wraps) runs on single images instead of its
    own network (a :class:`~medden.inference.SliceStackInferer`'s ``lone_network``), or None."""
    return next((each.lone_network for each in _inferer_chain(inferer)
                 if getattr(each, "lone_network", None) is not None), None)


@dataclass
class Bundle:
    """A trained bundle ready for inference (made by :func:`~medden.bundle.loading.load_bundle`).

    Attributes:
        name: the folder name and the metadata version, e.g. ``"general_denoiser 1.2.0"``.
        root: the bundle folder.
        network: the PyTorch network in eval mode, or its exported stand-in, called alike
            (``(B, C, H, W)`` float32 in [0, 1] units, same shape out).
        inferer: the config's ``inferer`` (``inferer(batch, network)``).
        parameters: what changes the pixels (refinement settings, percentiles, smoothing, an
            exported backend), recorded in derived series and their UIDs.
        percentiles: the intensity percentiles mapped to [0, 1] before the network (the
            config's ``intensity_percentiles``), measured after a ``smoothing`` x ``smoothing``
            box mean (``intensity_smoothing``; 0 = on the image itself).
        smoothing: see ``percentiles``.
        image_channels: channels of one image for the network (1 grey, 3 RGB).
        backend: what runs the network, one of :data:`medden.bundle.exports.BACKENDS`.
    """

    name: str
    root: Path
    network: torch.nn.Module
    inferer: Callable
    parameters: dict[str, Any]
    percentiles: tuple[float, float] = (0.0, 100.0)
    smoothing: int = 0
    image_channels: int = 1
    backend: str = "torch"

    @property
    def runs_on_volumes(self) -> bool:
        """Whether the inferer takes whole volumes (see :func:`runs_on_volumes`); else slices run one by one."""
        return runs_on_volumes(self.inferer)

    def denoise(self, image: Any, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Denoise one image in its own units, as ``medden denoise`` does.

        The bundle's intensity percentiles and smoothing apply
        (:func:`medden.inference.denoise_image`). A grey 2D bundle denoises the channels of a
        multi-channel image as slices of one grey volume (one intensity range, so colours
        keep their balance). A grey bundle whose network sees each slice with its neighbours
        (2.5D, :func:`sees_neighbouring_slices`) denoises each channel as a volume of its
        own, so that channels are never taken for neighbouring slices (on an RGB histology
        image with Gaussian noise 20/255, taking R, G and B as neighbours cost the 2.5D
        default 0.55 dB).

        Args:
            image: ``(C, H, W)`` or ``(C, H, W, D)``, numpy or torch (on the CPU), finite,
                in modality units; only read.
            progress: called as ``progress(slices_done, slices)`` while the image is denoised
                (``slices`` is ``D``, or 1 for a 2D image; times ``C`` when a grey bundle takes
                ``C`` channels as slices), from the calling thread, each time the work done
                reaches one more slice's worth (an inferer that passes over the volume several
                times, as refinement or a self-ensemble do, counts each pass as a share);
                None: nothing is reported.

        Returns:
            float32 numpy array of ``image``'s shape, in its units.

        Raises:
            ChannelError: a bundle of ``image_channels`` > 1 and an image with another count.
            ValueError: ``image`` is not ``(C, H, W[, D])`` or holds NaN or inf.
        """
        from medden.core.validation import check_finite  # torch loads with the first image
        from medden.inference.progress import report_progress, reporting_progress

        image = np.asarray(image, np.float32)
        if image.ndim not in (3, 4):
            raise ValueError(f"image must be (C, H, W) or (C, H, W, D), got shape {image.shape}.")
        check_finite(image, "image")
        flat = image.ndim == 3
        volume = image[..., None] if flat else image
        channels = volume.shape[0]
        grey_channels = self.image_channels == 1 and channels > 1
        if channels != self.image_channels and not grey_channels:
            raise ChannelError(self.name, self.image_channels, channels)
        slices = volume.shape[-1] * (channels if grey_channels else 1)
        with reporting_progress(None if progress is None else _in_slices(progress, slices)):
            if grey_channels and sees_neighbouring_slices(self.inferer):
                out = np.concatenate([self._channel(volume, c) for c in range(channels)])
            elif grey_channels:
                _, x, y, n = volume.shape
                grey = volume.transpose(1, 2, 3, 0).reshape(1, x, y, n * channels)
                out = self._volume(grey).reshape(x, y, n, channels).transpose(3, 0, 1, 2)
            else:
                out = self._volume(volume)
            report_progress(1, 1)  # done, whatever the inferer reported
        return np.ascontiguousarray(out[..., 0] if flat else out)

    def weights_that_run(self, slices: int) -> tuple[str | None, str]:
        """``(SHA-256 of the weights file, backend)`` that denoise an image of ``slices`` slices: a
        single image goes through the 2D network of a bundle that has one (:func:`single_image_network`,
        ``models/model_2d.pt``), always from its PyTorch weights; anything else through the
        bundle's own network on :attr:`backend`."""
        from medden.bundle.exports import model_sha256
        from medden.bundle.layout import SINGLE_IMAGE_WEIGHTS

        lone = Path(self.root) / SINGLE_IMAGE_WEIGHTS
        if slices == 1 and single_image_network(self.inferer) is not None and lone.is_file():
            return model_sha256(lone), "torch"
        return self.parameters.get("weights_sha256"), self.backend

    def _channel(self, volume: np.ndarray, c: int) -> np.ndarray:
        """Channel ``c`` of a ``(C, H, W, D)`` volume denoised as a grey volume of its own: ``(1, H, W, D)``."""
        from medden.inference.progress import progress_part

        with progress_part(c, volume.shape[0]):
            return self._volume(volume[c : c + 1])

    def _volume(self, volume: np.ndarray) -> np.ndarray:
        """Denoise a ``(C, H, W, D)`` volume of the bundle's channel count, whole or slice by slice."""
        from medden.inference.progress import progress_part, report_progress

        if self.runs_on_volumes:
            return self._image(volume)
        out = []
        for k in range(volume.shape[-1]):
            with progress_part(k, volume.shape[-1]):
                out.append(self._image(volume[..., k]))
                report_progress(1, 1)
        return np.stack(out, axis=-1)

    def _image(self, image: np.ndarray) -> np.ndarray:
        from medden.inference import denoise_image

        out = denoise_image(image, self.network, self.inferer, self.percentiles, smoothing=self.smoothing)
        return np.asarray(out, np.float32)


def _in_slices(progress: Callable[[int, int], None], slices: int) -> Callable[[int, int], None]:
    """``progress(slices_done, slices)`` from the inferers' ``(done, total)``, called only when a slice is done."""
    last = -1

    def report(done: int, total: int) -> None:
        nonlocal last
        now = done * slices // total
        if now > last:
            last = now
            progress(now, slices)

    return report
