"""Denoising folders of RGB tiles (histology patches: PNG/TIFF in, 8-bit PNG out)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from monai.inferers import Inferer

from medden.bundle.backends import network_device
from medden.io.files import separate_output_dir

__all__ = ["denoise_tile_folder"]


@torch.no_grad()
def denoise_tile_folder(input_dir: str | os.PathLike, output_dir: str | os.PathLike, network: torch.nn.Module,
                        inferer: Inferer | Callable, suffix: str = "_denoised", overwrite: bool = False,
                        suffixes: Sequence[str] = (".png", ".tif", ".tiff")) -> list[Path]:
    """Denoise every RGB tile in ``input_dir`` into ``output_dir/<name><suffix>.png``.

    Tiles are read with :func:`medden.data.camelyon.read_tile` (``(3, H, W)`` in [0, 1]), run
    through ``inferer(batch, network)`` and written as 8-bit PNG; inputs are only read.

    Raises:
        ValueError: ``output_dir`` is ``input_dir``, no tile found, or a tile is not RGB.
    """
    from medden.data.camelyon import read_tile
    from medden.io.tiles import write_tile

    files = sorted(p for p in Path(input_dir).iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise ValueError(f"no {'/'.join(suffixes)} tiles in {str(input_dir)!r}.")
    out_dir = separate_output_dir(input_dir, output_dir)
    network.eval()
    device = network_device(network)
    written = []
    for path in files:
        tile = torch.as_tensor(read_tile(path))[None].to(device)
        denoised = inferer(tile, network)[0].cpu().numpy()
        written.append(write_tile(out_dir / f"{path.stem}{suffix}.png", denoised, overwrite=overwrite))
    return written
