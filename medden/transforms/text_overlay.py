"""Random text overlay: burned-in annotation style corruption (Noise2Noise's text experiment)."""

from __future__ import annotations

import string
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from medden.transforms.corruption import RandCorruption
from medden.core.validation import check_range

__all__ = ["RandTextOverlay"]

_ALPHABET = np.array(list(string.ascii_letters + string.digits + " :./-"))
_MAX_STRINGS = 255  # labels are drawn into an 8-bit image; 0 means "no text"


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


class RandTextOverlay(RandCorruption):
    """Overlay random strings of random size, position and intensity until a drawn fraction
    of the pixels is covered.

    Each string is 3-15 random characters (letters, digits, ``:./-``) in Pillow's bundled font,
    drawn without anti-aliasing, with one intensity from ``value_range`` across all channels.
    Strings are added until the covered fraction reaches the coverage drawn from
    ``coverage_range`` (Noise2Noise averages about 0.25) or 255 strings are placed. 3D images
    get an independent overlay on every slice along the last axis. The mask from
    :meth:`corrupt` is 1 where no text was drawn. Noise2Noise trains this corruption with an
    L1 loss, which recovers the median.

    Args:
        coverage_range: ``(low, high)`` fraction of pixels to cover, in [0, 1).
        value_range: ``(low, high)`` intensity range of the text, in image units.
        font_size_range: ``(low, high)`` font size as a fraction of the slice height.
        prob: probability of applying.
    """

    level_name = "coverage"
    level_bounds = (0.0, 0.9)
    produces_mask = True

    def __init__(
        self,
        coverage_range: tuple[float, float] | float = (0.0, 0.5),
        value_range: tuple[float, float] = (0.0, 1.0),
        font_size_range: tuple[float, float] = (0.04, 0.12),
        prob: float = 1.0,
    ) -> None:
        super().__init__(coverage_range, prob)
        self.value_range = check_range(value_range, "value_range")
        self.font_size_range = check_range(font_size_range, "font_size_range", 0.0, 1.0, lower_open=True)

    def _draw_slice(self, height: int, width: int, coverage: float) -> tuple[np.ndarray, np.ndarray]:
        """Return a ``(H, W)`` uint8 label map (0 = no text) and the intensity of each label."""
        labels = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(labels)
        draw.fontmode = "1"  # no anti-aliasing: a pixel is text or not
        values = [0.0]
        covered = 0
        target = coverage * height * width
        while covered < target and len(values) <= _MAX_STRINGS:
            size = max(6, int(round(self.R.uniform(*self.font_size_range) * height)))
            text = "".join(self.R.choice(_ALPHABET, size=self.R.randint(3, 16)))
            xy = (int(self.R.randint(-size, width)), int(self.R.randint(-size, height)))
            draw.text(xy, text, fill=len(values), font=_font(size))
            values.append(float(self.R.uniform(*self.value_range)))
            covered = int(np.count_nonzero(np.asarray(labels)))
        return np.asarray(labels).copy(), np.asarray(values, dtype=np.float32)

    def _draw_field(self, img: torch.Tensor, level: float) -> list[tuple[np.ndarray, np.ndarray]]:
        height, width = img.shape[1], img.shape[2]
        n_slices = img.shape[3] if img.ndim == 4 else 1
        return [self._draw_slice(height, width, level) for _ in range(n_slices)]

    def _corrupt(self, img, level, field):
        labels = np.stack([lab for lab, _ in field], axis=-1)  # (H, W, S)
        texture = np.stack([vals[lab] for lab, vals in field], axis=-1)
        if img.ndim == 3:
            labels, texture = labels[..., 0], texture[..., 0]
        if labels.shape != tuple(img.shape[1:]):
            raise ValueError(f"the text draw was made for {labels.shape}, got image {tuple(img.shape)}.")
        text = torch.as_tensor(labels > 0, device=img.device)[None]
        out = torch.where(text, torch.as_tensor(texture, dtype=img.dtype, device=img.device)[None], img)
        return out, (~text).to(torch.float32)
