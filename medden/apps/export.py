"""Export a bundle's network for deployment: TorchScript, ONNX and int8 ONNX.

This is the library behind ``medden export BUNDLE``. Each format is written next to the
bundle's ``models/model.pt`` (file names in :data:`medden.bundle.layout.EXPORTED_FILES`)
and checked before it replaces an earlier export:

* **TorchScript** (``models/model.ts``): MONAI's ``ckpt_export`` (as ``python -m monai.bundle
  ckpt_export``), scripted, or traced when the network does not script; the bundle's
  metadata and inference config ride along as extra files.
* **ONNX** (``models/model.onnx``): MONAI's ``onnx_export`` (opset 17, TorchScript-based
  exporter), dynamic batch, height and width.
* **int8 ONNX** (``models/model_int8.onnx``): onnxruntime static quantization of the ONNX
  model (QDQ format, int8 weights per output channel, uint8 activations), calibrated on
  corrupted windows of the training images. PyTorch's dynamic quantization leaves
  convolutions in float, so it cannot speed up these all-convolutional networks; onnxruntime
  runs QDQ convolutions with int8 kernels on the CPU.

The float exports must match the PyTorch network to :data:`FLOAT_TOLERANCE` (largest absolute
difference on random inputs of two sizes and batch sizes, outputs in the network's [0, 1]
units). The int8 model is scored against the float one on corrupted validation windows with
known clean images: its PSNR change is recorded, and ``medden denoise --backend auto`` uses it
only when it loses less than :data:`INT8_MAX_PSNR_LOSS_DB`. Everything measured goes into
``models/export.json`` with the SHA-256 of the ``model.pt`` it came from, so an export made
from other weights is recognised as stale.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medden.bundle import bundle_config, bundle_network, resolve_bundle
from medden.bundle.backends import ONNX_INPUT, ONNX_OUTPUT, OnnxNetwork
from medden.bundle.config import image_channels
from medden.bundle.exports import (
    CALIBRATION_NOISES,
    EXPORT_FORMATS,
    INT8_MAX_PSNR_LOSS_DB,
    model_sha256,
    read_export_record,
)
from medden.bundle.layout import EXPORT_RECORD, EXPORTED_FILES, INFERENCE_CONFIG, METADATA, WEIGHTS

__all__ = ["EXPORT_FORMATS", "FLOAT_TOLERANCE", "CALIBRATION_NOISES",
           "corrupted_windows", "export_bundle"]

#: largest absolute difference allowed between a float export and PyTorch (outputs in [0, 1] units)
FLOAT_TOLERANCE = 1e-4
ONNX_OPSET = 17
#: ``(batch, height, width)`` of the random inputs a float export is checked on; sizes the
#: PyTorch network itself refuses (e.g. not multiples of 16) are skipped
_CHECK_SHAPES = ((1, 64, 64), (2, 96, 128), (1, 75, 53))
_WINDOW = 96


def corrupted_windows(channels: int, split: str, count: int, seed: int = 0, size: int = _WINDOW,
                      noises: Sequence[str] = CALIBRATION_NOISES) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy, clean)`` windows of the installed sample images, for calibration and checks.

    Grey (``channels`` 1): random ``size`` x ``size`` crops of every modality's training or
    validation image (:func:`medden.data.modalities.general_images`); RGB (3): crops of the
    training or validation columns of scikit-image's IHC image. Each window gets one of
    ``noises`` in turn, at the benchmark's level (names of :data:`medden.apps.benchmark.cases.NOISES`).

    Returns:
        ``noisy`` and ``clean``, each ``(count, channels, size, size)`` float32; clean in [0, 1].

    Raises:
        ValueError: ``channels`` other than 1 or 3 (pass your own calibration windows), a
            bad ``split`` or an unknown noise.
        ModuleNotFoundError: the ``samples`` extra is not installed.
    """
    from medden.apps.benchmark.cases import NOISES
    from medden.data.modalities import column_split, general_images, histology_rgb

    if channels == 1:
        images = [item.image for item in general_images(split)]
    elif channels == 3:
        rgb = histology_rgb()
        images = [column_split(rgb[:, : rgb.shape[1] // 2], split)]  # the left half, as the grey training image
    else:
        raise ValueError(f"sample windows exist for 1 (grey) or 3 (RGB) channels, not {channels}; pass calibration "
                         "windows of your own data to export_bundle(calibration=...).")
    unknown = sorted(set(noises) - set(NOISES)) if noises else ["(none given)"]
    if unknown:
        raise ValueError(f"unknown calibration noise(s) {unknown}; choose from {', '.join(NOISES)}.")
    rng = np.random.default_rng(seed)
    clean = np.empty((count, channels, size, size), np.float32)
    noisy = np.empty_like(clean)
    for k in range(count):
        image = images[k % len(images)]
        x0, y0 = (int(rng.integers(0, max(n - size, 0) + 1)) for n in image.shape[1:])
        window = np.zeros((channels, size, size), np.float32)
        crop = image[:, x0:x0 + size, y0:y0 + size]
        window[:, :crop.shape[1], :crop.shape[2]] = crop
        corruption = NOISES[noises[k % len(noises)]].corruption_transform()
        corruption.set_random_state(seed * 1000 + k)
        clean[k], noisy[k] = window, np.asarray(corruption(torch.from_numpy(window)), np.float32)
    return noisy, clean


class _Bundle:
    """What every exporter needs: the bundle's files, its PyTorch network and its channel count."""

    def __init__(self, bundle: str | os.PathLike, trust: bool = False):
        self.root = resolve_bundle(bundle, trust)
        self.config_file = self.root / INFERENCE_CONFIG
        self.meta_file = self.root / METADATA
        self.weights = self.root / WEIGHTS
        if not self.weights.is_file():
            raise FileNotFoundError(f"bundle {str(self.root)!r} has no trained weights {str(self.weights)!r} to export.")
        self.network = bundle_network(self.root, self.weights, trust=True)  # on the CPU, in eval mode
        self.image_channels = image_channels(bundle_config(self.root, trust=True), self.root)
        neighbours = getattr(self.network, "neighbours", None)  # a 2.5D network reads 2n + 1 slices as channels
        self.channels = self.image_channels if neighbours is None else 2 * neighbours + 1

    def as_input(self, windows: np.ndarray) -> np.ndarray:
        """``(N, image_channels, H, W)`` windows as the network reads them: a 2.5D network gets each
        window repeated into a lone stack of ``channels`` slices (how a single image is stacked)."""
        return windows if self.channels == self.image_channels else np.repeat(windows, self.channels, axis=1)

    def common_args(self) -> dict[str, Any]:
        """Keyword arguments MONAI's ``ckpt_export`` and ``onnx_export`` share."""
        return {"net_id": "network_def", "ckpt_file": str(self.weights), "config_file": str(self.config_file),
                "meta_file": str(self.meta_file) if self.meta_file.is_file() else None,
                "bundle_root": str(self.root), "input_shape": [1, self.channels, 64, 64]}

    def largest_difference(self, exported: torch.nn.Module) -> tuple[float, list[list[int]]]:
        """Largest absolute difference between ``exported`` and the PyTorch network over the
        :data:`_CHECK_SHAPES` the network takes, and those shapes ``[B, C, H, W]``.

        Raises:
            ValueError: the exported network fails on a shape PyTorch takes (e.g. a trace
                that baked in the traced size).
        """
        generator = torch.Generator().manual_seed(0)
        worst, checked = 0.0, []
        with torch.no_grad():
            for batch, height, width in _CHECK_SHAPES:
                x = torch.rand(batch, self.channels, height, width, generator=generator)
                try:
                    expected = self.network(x)
                except (ValueError, RuntimeError):  # a size this network refuses (e.g. MONAI's UNet: RuntimeError)
                    continue
                try:
                    worst = max(worst, float((exported(x) - expected).abs().max()))
                except (RuntimeError, ValueError) as err:
                    raise ValueError(f"the export of {self.root.name} fails on an input of shape {tuple(x.shape)} "
                                     f"that PyTorch takes ({str(err).splitlines()[0]}); it was not written.") from err
                checked.append(list(x.shape))
        if not checked:
            raise ValueError(f"the PyTorch network of {self.root.name} takes none of the check shapes "
                             f"{[list(s) for s in _CHECK_SHAPES]} (batch, height, width); it cannot be checked.")
        return worst, checked


def _write_checked(bundle: _Bundle, backend: str, write) -> tuple[Path, dict[str, Any]]:
    """Export with ``write(tmp_path)`` into a temporary file beside the target, check it against
    PyTorch, and only then move it into place (an export that fails its check leaves the old one)."""
    from medden.io.files import atomic_write

    details: dict[str, Any] = {}

    def write_and_check(tmp: Path) -> None:
        details.update(write(tmp) or {})
        difference, shapes = bundle.largest_difference(_load_file(tmp, backend))
        if not difference <= FLOAT_TOLERANCE:
            raise ValueError(f"the {backend} export of {bundle.root.name} differs from PyTorch by up to {difference:.3g} "
                             f"(tolerance {FLOAT_TOLERANCE:g}); it was not written.")
        details.update(max_abs_difference=difference, tolerance=FLOAT_TOLERANCE, checked_shapes=shapes)

    return atomic_write(bundle.root / EXPORTED_FILES[backend], write_and_check, overwrite=True), details


def _load_file(path: Path, backend: str) -> torch.nn.Module:
    """An exported file that is not (yet) at its bundle path, loaded as its backend would."""
    return torch.jit.load(str(path)).eval() if backend == "torchscript" else OnnxNetwork(path).eval()


def _export_torchscript(bundle: _Bundle, path: Path) -> dict[str, Any]:
    from monai.bundle import ckpt_export

    try:
        ckpt_export(filepath=str(path), use_trace=False, **bundle.common_args())
        return {"method": "script"}
    except Exception:  # noqa: BLE001 - torch.jit.script raises many types for code it cannot compile
        ckpt_export(filepath=str(path), use_trace=True, **bundle.common_args())
        return {"method": "trace"}


def _export_onnx(bundle: _Bundle, path: Path) -> dict[str, Any]:
    from monai.bundle import onnx_export

    axes = {0: "batch", 2: "height", 3: "width"}
    onnx_export(filepath=str(path), use_trace=True, **bundle.common_args(),
                converter_kwargs={"input_names": [ONNX_INPUT], "output_names": [ONNX_OUTPUT], "opset_version": ONNX_OPSET,
                                  "dynamic_axes": {ONNX_INPUT: axes, ONNX_OUTPUT: axes}, "dynamo": False})
    return {"opset": ONNX_OPSET}


class _Windows:
    """onnxruntime's calibration reader protocol over ``(N, C, H, W)`` windows, one per call."""

    def __init__(self, windows: np.ndarray):
        self.windows = iter(np.ascontiguousarray(windows, np.float32))

    def get_next(self) -> dict[str, np.ndarray] | None:
        window = next(self.windows, None)
        return None if window is None else {ONNX_INPUT: window[None]}


def _export_int8(bundle: _Bundle, calibration: np.ndarray, validation: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Quantize ``models/model.onnx`` (which must be current) and score it against it."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from medden.io.files import atomic_write
    from medden.metrics.image_quality import psnr

    float_path, target = bundle.root / EXPORTED_FILES["onnx"], bundle.root / EXPORTED_FILES["onnx-int8"]
    with tempfile.TemporaryDirectory(prefix="medden-int8-") as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(quantized), _Windows(calibration), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax)
        noisy, clean = (torch.from_numpy(a) for a in validation)
        with torch.no_grad():
            float_out = _load_file(float_path, "onnx")(noisy)
            int8_out = _load_file(quantized, "onnx-int8")(noisy)
        float_psnr = float(psnr(float_out.clamp(0, 1), clean, data_range=1.0).mean())
        int8_psnr = float(psnr(int8_out.clamp(0, 1), clean, data_range=1.0).mean())
        atomic_write(target, lambda tmp: shutil.copyfile(quantized, tmp), overwrite=True)
    return {"calibration_windows": len(calibration), "validation_windows": len(clean),
            "max_abs_difference_vs_onnx": float((int8_out - float_out).abs().max()),
            "validation_psnr_onnx": round(float_psnr, 3), "validation_psnr_int8": round(int8_psnr, 3),
            "psnr_change_db": round(int8_psnr - float_psnr, 3), "max_psnr_loss_db": INT8_MAX_PSNR_LOSS_DB}


def export_bundle(bundle: str | os.PathLike, formats: Sequence[str] = EXPORT_FORMATS,
                  calibration: np.ndarray | None = None, validation: tuple[np.ndarray, np.ndarray] | None = None,
                  calibration_count: int = 48, noises: Sequence[str] = CALIBRATION_NOISES,
                  seed: int = 0, trust: bool = False) -> dict[str, Any]:
    """Export a bundle's network in ``formats`` and record what was measured in ``models/export.json``.

    Args:
        bundle: a bundle folder or the name of a shipped bundle.
        formats: any of :data:`EXPORT_FORMATS`; ``onnx-int8`` also (re)writes ``onnx``, which it quantizes.
        calibration: int8 calibration inputs ``(N, C, H, W)`` float32 in the network's [0, 1]
            units; default: ``calibration_count`` corrupted training windows (:func:`corrupted_windows`).
        validation: ``(noisy, clean)`` windows the int8 model is scored on; default: as many
            corrupted validation windows.
        calibration_count: how many default windows.
        noises: the noises of the default windows (see :func:`corrupted_windows`).
        seed: seed of the default windows.
        trust: export a bundle folder medden does not ship (its configs run code, see
            :mod:`medden.bundle.resolve`).

    Returns:
        The record: per format its file, size in bytes, seconds, check results; plus
        ``model_sha256``. Formats exported earlier from the same ``model.pt`` stay in it.

    Raises:
        ValueError: unknown format, or an export that fails its check (nothing is replaced).
        FileNotFoundError: no such bundle, or it has no ``models/model.pt``.
    """
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown or not formats:
        raise ValueError(f"formats must be some of {', '.join(EXPORT_FORMATS)}; got {list(formats)!r}.")
    wanted = [f for f in EXPORT_FORMATS if f in formats or (f == "onnx" and "onnx-int8" in formats)]
    info = _Bundle(bundle, trust)
    sha = model_sha256(info.weights)
    record = read_export_record(info.root)
    if record.get("model_sha256") != sha:
        record = {}
    record["model_sha256"] = sha
    default_windows = calibration is None
    for backend in wanted:
        started = time.perf_counter()
        if backend == "onnx-int8":
            if calibration is None:
                calibration = info.as_input(corrupted_windows(info.image_channels, "train", calibration_count, seed,
                                                              noises=noises)[0])
            if validation is None:
                noisy, clean = corrupted_windows(info.image_channels, "val", calibration_count, seed + 1, noises=noises)
                validation = (info.as_input(noisy), clean)
            path, details = info.root / EXPORTED_FILES[backend], _export_int8(info, calibration, validation)
            details["calibration_noises"] = list(noises) if default_windows else "given"
        else:
            writer = _export_torchscript if backend == "torchscript" else _export_onnx
            path, details = _write_checked(info, backend, lambda tmp, w=writer: w(info, tmp))
        record[backend] = {"file": str(EXPORTED_FILES[backend]), "bytes": path.stat().st_size,
                           "seconds": round(time.perf_counter() - started, 2), **details}
    from medden.io.files import atomic_write

    text = json.dumps(record, indent=2) + "\n"
    atomic_write(info.root / EXPORT_RECORD, lambda tmp: tmp.write_text(text), overwrite=True)
    return record
