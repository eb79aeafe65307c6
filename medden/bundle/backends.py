"""Run a bundle's network from an exported file: TorchScript, ONNX or int8 ONNX.

``medden export`` (:mod:`medden.apps.export`) writes these files next to a bundle's
``models/model.pt``; this module only loads them. Every backend gives a ``torch.nn.Module``
that takes and returns ``(B, C, H, W)`` float32 tensors, exactly like the PyTorch network, so
MONAI's inferers (``SliceInferer``, ``SlidingWindowInferer``) and medden's
``RefinementInferer`` run unchanged on top of it.

The backends are listed in :mod:`medden.bundle.exports` and their files in
:mod:`medden.bundle.layout`; the loader (:func:`medden.bundle.loading.load_bundle`) checks that
a file exists and is current before it hands it here.

onnxruntime runs on the CUDA execution provider when the device is ``cuda`` and that
provider is installed (``onnxruntime-gpu``), else on the CPU with as many threads as PyTorch
uses (``torch.get_num_threads()``), so backends compare at the same thread count, and
without busy-waiting between calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["ONNX_INPUT", "ONNX_OUTPUT", "OnnxNetwork", "load_exported_network"]

#: the ONNX graph's input and output names (written by :mod:`medden.apps.export`)
ONNX_INPUT, ONNX_OUTPUT = "image", "denoised"


class OnnxNetwork(torch.nn.Module):
    """An ONNX model in an onnxruntime session, called like the PyTorch network it came from.

    Args:
        path: the ``.onnx`` file (one input ``image``, one output ``denoised``).
        device: ``cpu`` or ``cuda``; ``cuda`` uses the CUDA execution provider when installed.
        threads: onnxruntime intra-op threads; default ``torch.get_num_threads()``.

    Raises:
        ModuleNotFoundError: onnxruntime is not installed.
        ValueError: the file is not a loadable ONNX model with that input and output.
    """

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu", threads: int | None = None):
        super().__init__()
        import onnxruntime as ort

        self.path = Path(path)
        self.device = torch.device(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3  # errors only: the QDQ graph's "could not fuse" notes are noise here
        # no busy-waiting between runs: the inferer's own torch work (padding, blending windows) runs between
        # network calls, and spinning onnxruntime threads would take its cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types for unreadable graphs
            raise ValueError(f"{str(self.path)!r} is not a loadable ONNX model ({err}); export it again with "
                             "'medden export'.") from err
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [ONNX_INPUT] or outputs[:1] != [ONNX_OUTPUT]:
            raise ValueError(f"{str(self.path)!r} has inputs {inputs} and outputs {outputs}; medden needs one input "
                             f"{ONNX_INPUT!r} and the output {ONNX_OUTPUT!r} (export it with 'medden export').")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise a batch.

        Args:
            x: ``(B, C, H, W)`` float tensor, any device (copied to the host for onnxruntime).

        Returns:
            ``(B, C, H, W)`` float32 tensor on ``x``'s device.

        Raises:
            ValueError: onnxruntime rejects the input (wrong channel count, or a size the
                network cannot take; the bundle's inferer pads windows to a size it can).
        """
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        try:
            out = self.session.run([ONNX_OUTPUT], {ONNX_INPUT: array})[0]
        except Exception as err:  # onnxruntime's InvalidArgument / RuntimeException
            raise ValueError(f"{self.path.name} could not run on an input of shape {tuple(x.shape)}: {err}") from err
        return torch.from_numpy(out).to(x.device)


def load_exported_network(path: str | os.PathLike, backend: str, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The exported network in ``path`` for ``backend`` (``torchscript``, ``onnx`` or ``onnx-int8``), in eval mode.

    ``path`` is already checked: it exists and was exported from the bundle's current weights
    (:func:`medden.bundle.exports.checked_export`).

    Raises:
        ValueError: a file that does not load.
    """
    path = Path(path)
    if backend == "torchscript":
        try:
            module = torch.jit.load(str(path), map_location=torch.device(device)).eval()
        except RuntimeError as err:
            raise ValueError(f"{str(path)!r} is not a loadable TorchScript model ({err}); export it again.") from err
        # freezing inlines the weights and optimize_for_inference fuses and re-lays-out the convolutions:
        # without it the profiling executor spends the first calls on each new input shape re-optimizing
        return torch.jit.optimize_for_inference(torch.jit.freeze(module))
    return OnnxNetwork(path, device).eval()
