"""The unpaired-denoising objective with a learned image prior (Kattakinda & Rajagopalan).

A denoiser ``D = g(N)`` is trained on noisy images ``N`` alone against

    (B(D) - B(N))^2 - lambda * log f_C(D)

with ``f_C`` a density of clean images learned from *unpaired* clean data (a normalizing
flow, :class:`~medden.networks.ImageFlow`) and ``B`` a blur. Without the blur this is the MAP
estimate under Gaussian noise of std ``sigma``: minimising ``|N - D|^2 / (2 sigma^2) -
log f_C(D)`` is minimising ``|N - D|^2 - 2 sigma^2 log f_C(D)``, so ``lambda = 2 sigma^2``.
The blur makes the data term keep only the low frequencies, which the noise barely touches,
and leaves the high frequencies to the prior.
"""

from __future__ import annotations

import torch
from monai.networks.layers import separable_filtering
from monai.networks.layers.convutils import gaussian_1d
from torch import nn

from medden.losses.checks import check_loss_inputs
from medden.losses.pixelwise import masked_mean
from medden.core.noise_estimation import wavelet_noise_sigma
from medden.core.validation import check_number, check_odd_int, check_positive

__all__ = ["BLURS", "FlowPriorLoss", "blur_images"]

#: blur kernels ``B``: a Gaussian (``width`` its std in pixels), a box (``width`` pixels a side,
#: odd), or none (the plain MAP data term)
BLURS = ("gaussian", "box", "none")


def _kernel(blur: str, width: float) -> torch.Tensor | None:
    if blur not in BLURS:
        raise ValueError(f"blur must be one of {BLURS}, got {blur!r}.")
    if blur == "none":
        return None
    if blur == "gaussian":
        return gaussian_1d(torch.tensor(check_positive(width, "blur_width")), truncated=4.0, normalize=True)
    size = check_odd_int(width, "blur_width", hint="a box blur is an odd number of pixels wide")
    return torch.full((size,), 1.0 / size)


def blur_images(images: torch.Tensor, blur: str = "gaussian", width: float = 1.0) -> torch.Tensor:
    """Blur every channel of ``(B, C, H, W)`` images with a separable kernel (MONAI's
    ``separable_filtering``, borders replicated); ``blur="none"`` returns the input.

    Example:
        >>> x = torch.zeros(1, 1, 5, 5); x[0, 0, 2, 2] = 9.0
        >>> blur_images(x, "box", 3)[0, 0, 1:4, 1:4]
        tensor([[1., 1., 1.],
                [1., 1., 1.],
                [1., 1., 1.]])
    """
    kernel = _kernel(blur, width)
    if kernel is None:
        return images
    kernel = kernel.to(device=images.device, dtype=images.dtype)
    return separable_filtering(images, [kernel, kernel], mode="replicate")


class FlowPriorLoss(nn.Module):
    """``mean((B(D) - B(N))^2) + lambda * (-log f_C(D)) / n_values``, averaged over the batch.

    Both terms are per image value, so ``lambda = lambda_scale * 2 sigma^2`` is the MAP
    weight (see the module docstring) whatever the patch size. ``sigma`` is the noise std of
    each input, in the images' units: given to the call, fixed at construction, or else
    estimated blind from each noisy image (:func:`~medden.core.noise_estimation.wavelet_noise_sigma`),
    so one model trains on a range of noise levels without knowing any of them.

    The prior is frozen: its parameters get no gradient and it stays in eval mode; the
    gradient flows through it to ``D`` only.

    Args:
        prior: a module mapping ``(B, C, H, W)`` images to ``(B,)`` log densities in nats
            (:class:`~medden.networks.ImageFlow` trained on clean images).
        blur: ``"gaussian"``, ``"box"`` or ``"none"`` (see :data:`BLURS`).
        blur_width: Gaussian std or box width in pixels.
        lambda_scale: multiplies the MAP weight ``2 sigma^2`` (1 is the seed's derivation;
            above 1 trusts the prior more).
        noise_sigma: a fixed noise std for every image; None estimates it per image.

    Called as ``loss(pred, target, mask=None, noise_sigma=None)`` (the package's loss
    signature): ``pred`` the denoised ``D`` and ``target`` the noisy input ``N``, both
    ``(B, C, H, W)`` float in [0, 1] with ``H, W`` sizes the prior accepts; ``mask``
    restricts the data term to observed pixels; ``noise_sigma`` a float or ``(B,)`` tensor.
    Returns a 0-dim tensor (may be negative: ``-log f_C`` of a continuous density is).
    """

    def __init__(self, prior: nn.Module, blur: str = "gaussian", blur_width: float = 1.0,
                 lambda_scale: float = 1.0, noise_sigma: float | None = None) -> None:
        super().__init__()
        if not isinstance(prior, nn.Module):
            raise TypeError(f"prior must be a torch.nn.Module giving log densities, got {type(prior).__name__}.")
        _kernel(blur, blur_width)  # validate now, not at the first batch
        self.prior = prior.requires_grad_(False).eval()
        self.blur, self.blur_width = blur, blur_width
        self.lambda_scale = check_number(lambda_scale, "lambda_scale", 0.0, hint="use 0 for no prior term")
        self.noise_sigma = None if noise_sigma is None else check_positive(noise_sigma, "noise_sigma")

    def train(self, mode: bool = True) -> FlowPriorLoss:
        super().train(mode)
        self.prior.eval()
        return self

    def prior_weight(self, target: torch.Tensor, noise_sigma: float | torch.Tensor | None = None) -> torch.Tensor:
        """``lambda`` per image, ``(B,)``: ``lambda_scale * 2 sigma^2`` with ``sigma`` given,
        fixed or estimated from ``target``."""
        sigma = noise_sigma if noise_sigma is not None else self.noise_sigma
        if sigma is None:
            sigma = wavelet_noise_sigma(target)
        sigma = torch.as_tensor(sigma, dtype=target.dtype, device=target.device).reshape(-1)
        return self.lambda_scale * 2.0 * sigma.expand(target.shape[0]) ** 2

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                noise_sigma: float | torch.Tensor | None = None) -> torch.Tensor:
        mask = check_loss_inputs(pred, target, mask, spatial_dims=(2,))
        residual = blur_images(pred, self.blur, self.blur_width) - blur_images(target, self.blur, self.blur_width)
        data = torch.stack([masked_mean(residual[i:i + 1] ** 2, None if mask is None else mask[i:i + 1])
                            for i in range(pred.shape[0])])
        nll_per_value = -self.prior(pred) / pred[0].numel()
        return (data + self.prior_weight(target, noise_sigma) * nll_per_value).mean()
