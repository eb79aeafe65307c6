"""What the page needs to show a result: slices in the image's own units, windows, geometry.

The page windows, zooms and measures slices itself, so the server sends the real values: each
slice as raw little-endian float32 (:func:`slice_raw`), rows down the image, in the units of
the upload (Hounsfield units for CT, the stored values of other DICOM after the modality LUT,
the file's values for NIfTI and PNG). A PNG of a slice in a given window (:func:`slice_png`)
remains for clients without the page.

Display volumes are float32 ``(D, W, H)`` (grey) or ``(D, W, H, 3)`` (RGB): slice ``k`` as a
viewer shows it, ``W`` rows down and ``H`` columns across (:mod:`medden`'s ``(C, H, W, D)``
order has ``H`` along a row).

:func:`viewer_info` says what the page shows beside the image: modality, units, size, pixel
spacing, orientation letters at the panel edges and the starting window. It reads only these
geometry and display tags, never a patient or study identifier.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from medden.apps.serve.errors import UploadError

if TYPE_CHECKING:
    from medden.apps.serve.inputs import DecodedImage

__all__ = ["DIFFERENCE_PERCENTILE", "PRESETS", "VIEWS", "WINDOW_PERCENTILES", "display_volume", "orientation",
           "slice_png", "slice_raw", "view_slice", "viewer_info", "window_tags", "windows"]

VIEWS = ("noisy", "denoised", "difference")
#: The grey window of images without a CT preset or window tags: these percentiles of the noisy volume.
WINDOW_PERCENTILES = (1.0, 99.0)
#: The difference window is +-(this percentile of |noisy - denoised|).
DIFFERENCE_PERCENTILE = 99.5
#: CT windows (width, level) in HU, as radiology viewers name them; the page offers them as buttons.
PRESETS = {"brain": (80.0, 40.0), "soft tissue": (400.0, 40.0), "lung": (1500.0, -600.0), "bone": (2000.0, 300.0)}
_OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}


def display_volume(volume: np.ndarray) -> np.ndarray:
    """``(C, H, W, D)`` -> float32 ``(D, W, H)`` for one channel, ``(D, W, H, 3)`` for three; other
    channel counts are averaged to grey."""
    volume = np.asarray(volume, np.float32)
    if volume.shape[0] == 3:
        return np.ascontiguousarray(volume.transpose(3, 2, 1, 0))
    grey = volume[0] if volume.shape[0] == 1 else volume.mean(axis=0)
    return np.ascontiguousarray(grey.transpose(2, 1, 0))


def view_slice(views: dict[str, np.ndarray], view: str, k: int) -> np.ndarray:
    """Slice ``k`` of ``view`` (one of :data:`VIEWS`) of a job's display volumes ``{"noisy",
    "denoised"}``; ``"difference"`` is ``noisy - denoised``.

    Raises:
        UploadError: 404, an unknown view or ``k`` outside ``[0, N)``.
    """
    if view not in VIEWS:
        raise UploadError(404, f"no view {view[:40]!r}; the views are {', '.join(VIEWS)}.")
    count = views["noisy"].shape[0]
    if not 0 <= k < count:
        raise UploadError(404, f"slice {k} does not exist; this image has slices 0 to {count - 1}.")
    if view == "difference":
        return views["noisy"][k] - views["denoised"][k]
    return views[view][k]


def slice_raw(values: np.ndarray) -> bytes:
    """One slice as little-endian float32 bytes, row by row (``(rows, cols[, 3])`` C order)."""
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def slice_png(values: np.ndarray, low: float, high: float) -> bytes:
    """One slice as an 8-bit PNG (grey ``L`` or ``RGB``), ``low`` black and ``high`` white."""
    from PIL import Image

    scale = max(high - low, 1e-12)
    pixels = np.round(np.clip((values - low) / scale, 0.0, 1.0) * 255.0).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def windows(noisy: np.ndarray, denoised: np.ndarray) -> dict:
    """The default grey windows of a result, in the image's units.

    Args:
        noisy: float ``(C, H, W, D)``.
        denoised: the same shape and units.

    Returns:
        ``{"image": [low, high], "difference": [-half, half]}``: ``image`` spans the
        :data:`WINDOW_PERCENTILES` of ``noisy``; ``difference`` is symmetric about 0 (mid-grey:
        no change) and spans the :data:`DIFFERENCE_PERCENTILE` of ``|noisy - denoised|``.
    """
    noisy, denoised = np.asarray(noisy, np.float32), np.asarray(denoised, np.float32)
    low, high = (float(v) for v in np.percentile(noisy, WINDOW_PERCENTILES))
    if high <= low:
        low, high = float(noisy.min()), float(noisy.max()) + 1e-6
    difference = np.abs(noisy - denoised)
    half = float(np.percentile(difference, DIFFERENCE_PERCENTILE)) or float(difference.max()) or 1.0
    return {"image": [low, high], "difference": [-half, half]}


def _first_number(value) -> float | None:
    """A DICOM DS value, or the first of a multi-valued one, as float; None if absent or not a number."""
    if value is None:
        return None
    if not isinstance(value, (int, float, str)) and hasattr(value, "__len__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def window_tags(header) -> tuple[float, float] | None:
    """``(width, level)`` from a DICOM header's WindowWidth/WindowCenter (the first pair), or, in an
    enhanced multi-frame object, from the shared or the first frame's FrameVOILUTSequence; None
    when absent, not numbers, or a width <= 0."""
    places = [header]
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in (header.get(group) or [])[:1]:
            places.extend((item.get("FrameVOILUTSequence") or [])[:1])
    for place in places:
        width, level = _first_number(place.get("WindowWidth")), _first_number(place.get("WindowCenter"))
        if width is not None and level is not None and width > 0:
            return width, level
    return None


def orientation(affine: np.ndarray) -> dict[str, str]:
    """The anatomical letters at the edges of a displayed slice (rows down, columns across).

    Args:
        affine: 4x4 RAS voxel-to-world matrix of the ``(C, H, W, D)`` volume: voxel axis 0
            runs across the screen to the right, axis 1 down.

    Returns:
        ``{"left", "right", "top", "bottom"}`` letters of R/L, A/P, S/I: the direction each
        edge lies in (the nearest axis for oblique slices).

    Example:
        >>> orientation(np.diag([-1.0, -1.0, 1.0, 1.0]))  # DICOM's usual axial CT: patient left on the right
        {'left': 'R', 'right': 'L', 'top': 'A', 'bottom': 'P'}
    """
    from nibabel.orientations import aff2axcodes

    across, down, _ = aff2axcodes(np.asarray(affine, np.float64))
    return {"left": _OPPOSITE[across], "right": across, "top": _OPPOSITE[down], "bottom": down}


def viewer_info(image: DecodedImage, noisy_windows: dict) -> dict:
    """What the page shows beside a result: no patient or study data.

    Args:
        image: the decoded upload.
        noisy_windows: :func:`windows` of it.

    Returns:
        ``{"modality", "units", "rows", "cols", "spacing": [across, down, between slices] in mm or
        None, "orientation": :func:`orientation` or None (PNG), "window": {"width", "level",
        "source"}, "auto": the percentile window as {"width", "level"}, "presets": {name: [width,
        level]} (CT only)}``. The starting window is the DICOM window (:func:`window_tags`) when
        present, else soft tissue for CT, else the percentile window of ``noisy_windows``.
    """
    _, across, down, _ = image.volume.shape
    header = image.series.headers[0] if image.series is not None else None
    if header is not None:
        modality = str(header.get("Modality", "")) or "unknown"
    else:
        modality = image.kind.upper()  # NIfTI and PNG files do not say
    ct = modality == "CT"
    low, high = noisy_windows["image"]
    auto = {"width": high - low, "level": (high + low) / 2}
    window = {**auto, "source": f"{WINDOW_PERCENTILES[0]:g}-{WINDOW_PERCENTILES[1]:g} percentiles"}
    tags = window_tags(header) if header is not None else None
    if tags is not None:
        window = {"width": tags[0], "level": tags[1], "source": "DICOM window tags"}
    elif ct:
        window = {"width": PRESETS["soft tissue"][0], "level": PRESETS["soft tissue"][1], "source": "soft tissue"}
    flat_png = image.kind == "png"
    spacing = None if flat_png else [round(float(v), 4) for v in np.linalg.norm(image.affine[:3, :3], axis=0)]
    return {"modality": modality, "units": "HU" if ct else "", "rows": int(down), "cols": int(across),
            "spacing": spacing, "orientation": None if flat_png else orientation(image.affine),
            "window": window, "auto": auto, "presets": {name: list(p) for name, p in PRESETS.items()} if ct else {}}
