"""Noisier2Noise's closed-form bias correction (Moran et al., CVPR 2020) and its inferer.

Notation. ``x`` is the clean image, ``y = x + n`` the noisy image we have, and
``z = y + m`` a doubly-noisy image made by adding extra noise ``m`` whose standard deviation
is ``alpha`` times that of ``n`` (``sigma' = alpha * sigma``). A network ``f`` trained to map
``z -> y`` (recorruption / Noisier2Noise training) learns ``E[y | z]``, which is biased
towards its input. The clean estimate is

    ``E[x | z] = ((1 + alpha^2) * E[y | z] - z) / alpha^2``.

It is exact for additive zero-mean Gaussian noise independent of the signal (``n`` and
``m`` Gaussian, variances in ratio ``alpha^2``), and holds for other additive noise whenever
``E[m | z] = alpha^2 E[n | z]``. It does not apply to Poisson or masking (Bernoulli)
corruptions, and it needs the ``alpha`` used in training: a network trained with a range of
``sigma'`` has no single ``alpha``.

The correction takes the network's *input* ``z``, not the singly-noisy ``y``. At test time
the paper recorrupts ``y`` into ``z`` the same way as in training and feeds ``z``;
:class:`Noisier2NoiseInferer` does this when given ``recorruption`` and can average several
draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type, convert_to_tensor

from medden.inference.checks import (
    check_batch,
    check_network,
    evaluate,
    resolve_inferer,
)
from medden.core.validation import check_int, check_positive
from medden.inference.progress import progress_part, run_base_inferer

__all__ = ["noisier2noise_correction", "Noisier2NoiseInferer"]


def noisier2noise_correction(
    prediction: NdarrayOrTensor, noisy_input: NdarrayOrTensor, alpha: float
) -> NdarrayOrTensor:
    """Return ``((1 + alpha^2) * prediction - noisy_input) / alpha^2``.

    Args:
        prediction: network output ``f(z)`` (an estimate of ``E[y | z]``), any shape,
            numpy or torch, floating dtype.
        noisy_input: the doubly-noisy ``z`` that was fed to the network, same shape.
        alpha: extra-noise std over original-noise std, ``sigma' / sigma``, > 0.

    Returns:
        The clean estimate, with ``prediction``'s container type, shape and device.

    Raises:
        TypeError: an input is not an array or tensor, or ``alpha`` is not a number.
        ValueError: ``alpha <= 0`` or the shapes differ.

    Example:
        >>> import numpy as np
        >>> noisier2noise_correction(np.array([1.0]), np.array([3.0]), alpha=1.0)
        array([-1.])
    """
    for name, arr in (("prediction", prediction), ("noisy_input", noisy_input)):
        if not isinstance(arr, (np.ndarray, torch.Tensor)):
            raise TypeError(f"{name} must be a numpy.ndarray or torch.Tensor, got {type(arr).__name__}.")
    if tuple(prediction.shape) != tuple(noisy_input.shape):
        raise ValueError(
            f"prediction shape {tuple(prediction.shape)} differs from noisy_input shape "
            f"{tuple(noisy_input.shape)}; pass the exact tensor that was fed to the network as noisy_input."
        )
    a2 = check_positive(alpha, "alpha") ** 2
    z, *_ = convert_to_dst_type(noisy_input, prediction)
    return ((1.0 + a2) * prediction - z) / a2


class Noisier2NoiseInferer(Inferer):
    """MONAI inferer: (optionally recorrupt,) run the network, apply the Noisier2Noise correction.

    Two modes, stated in terms of the module notation (``y`` noisy, ``z`` doubly noisy):

    * ``recorruption=None`` (default): ``inputs`` are taken to be ``z`` already. The network
      is fed ``inputs`` and the correction uses ``inputs`` as ``z``. Exact only when the
      inputs carry the noise level the network saw as input in training
      (``sqrt(1 + alpha^2) * sigma``); fed a singly-noisy ``y`` it over-corrects.
    * ``recorruption`` given: ``inputs`` are ``y``. Each batch item is recorrupted,
      ``z = recorruption(y)`` with ``y`` of shape ``(C, *spatial)``, exactly as in training
      (e.g. ``medden.transforms.RandGaussianSigmaNoise(sigma_range=alpha * sigma)`` with
      ``prob=1``); the network is fed ``z``, the correction uses that ``z``, and the
      corrected estimates of ``n_samples`` independent draws are averaged.

    Each network evaluation goes through ``base_inferer`` (e.g. MONAI's
    ``SlidingWindowInferer``). Runs under ``torch.no_grad()``. Randomness comes only from
    ``recorruption``'s own generator; seed it with :meth:`set_random_state`.

    Args:
        alpha: extra-noise std over original-noise std used in training, > 0.
        base_inferer: how each network evaluation is run; None means ``SimpleInferer()``.
        recorruption: callable adding the extra noise to one ``(C, *spatial)`` image, or None.
        n_samples: number of recorruptions to average, int >= 1; > 1 needs ``recorruption``.

    Example:
        >>> import torch
        >>> inferer = Noisier2NoiseInferer(alpha=1.0)
        >>> inferer(torch.full((1, 1, 2, 2), 3.0), lambda z: z / 3).flatten().tolist()
        [-1.0, -1.0, -1.0, -1.0]
    """

    def __init__(
        self,
        alpha: float,
        base_inferer: Inferer | Callable | None = None,
        recorruption: Callable[[NdarrayOrTensor], NdarrayOrTensor] | None = None,
        n_samples: int = 1,
    ) -> None:
        self.alpha = check_positive(alpha, "alpha")
        self.base_inferer = resolve_inferer(base_inferer)
        if recorruption is not None:
            check_network(recorruption, "recorruption")
        self.recorruption = recorruption
        self.n_samples = check_int(n_samples, "n_samples", 1)
        if recorruption is None and self.n_samples > 1:
            raise ValueError(
                f"n_samples={n_samples} needs a recorruption to draw different inputs from; "
                "pass recorruption=... or use n_samples=1."
            )

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Seed ``recorruption`` (which must have ``set_random_state``) and return ``self``."""
        if self.recorruption is None or not hasattr(self.recorruption, "set_random_state"):
            raise TypeError("set_random_state needs a recorruption with a set_random_state method.")
        self.recorruption.set_random_state(seed=seed, state=state)
        return self

    def recorrupt(self, inputs: torch.Tensor) -> torch.Tensor:
        """Apply ``recorruption`` to each ``(C, *spatial)`` item of ``inputs`` (``(B, C, *spatial)``)."""
        items = [
            convert_to_tensor(self.recorruption(item), dtype=inputs.dtype, device=inputs.device, track_meta=False)
            for item in inputs
        ]
        z = torch.stack(items)
        if z.shape != inputs.shape:
            raise ValueError(
                f"recorruption changed an item's shape from {tuple(inputs.shape[1:])} to "
                f"{tuple(z.shape[1:])}; it must return an image of the shape it was given."
            )
        return z

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Return the corrected clean estimate of ``inputs``.

        Args:
            inputs: ``(B, C, H, W)`` or ``(B, C, H, W, D)`` floating batch: ``z`` without
                ``recorruption``, ``y`` with it (see the class docstring).
            network: model trained ``z -> y`` (image in, same-shape image out).
            args: extra positional arguments passed to ``network`` by the base inferer.
            kwargs: extra keyword arguments passed to ``network`` by the base inferer.

        Returns:
            A new tensor with ``inputs``' shape, dtype and container type. Values can leave the input range
            (the correction extrapolates); clip afterwards if the range is known.
        """
        check_network(network)
        check_batch(inputs, "inputs")
        total = None
        with torch.no_grad():
            for sample in range(self.n_samples):
                z = inputs if self.recorruption is None else self.recorrupt(inputs)
                with progress_part(sample, self.n_samples):
                    pred = evaluate(lambda t: run_base_inferer(self.base_inferer, t, network, *args, **kwargs), z)
                estimate = noisier2noise_correction(pred, z, self.alpha)
                total = estimate if total is None else total + estimate
        mean = total if self.n_samples == 1 else total / self.n_samples
        out, *_ = convert_to_dst_type(mean, inputs, dtype=inputs.dtype)  # a MetaTensor input keeps its meta
        return out
