"""Perceptual (content) loss on VGG16 features, with weights from a local file only.

The feature extractor is built here as an ``nn.Sequential`` whose indices match
torchvision's ``vgg16().features`` exactly, so a torchvision-format state dict loads into it
without torchvision being installed. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from medden.losses.checks import check_loss_inputs
from medden.core.validation import lookup_by_name

__all__ = ["PerceptualLoss", "VGG16_ENV_VAR", "VGG16_LAYERS", "MissingPerceptualWeightsWarning", "build_vgg16_features",
           "perceptual_weight_if_available"]

#: the environment variable naming a local VGG16 weights file when none is passed
VGG16_ENV_VAR = "MEDDEN_VGG16_WEIGHTS"

# torchvision's VGG16 configuration "D": output channels of each 3x3 conv, "M" = 2x2 max-pool
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _relu_layer_indices() -> dict[str, int]:
    """Map ``"reluB_K"`` (block B, conv K) to the index of that ReLU in ``features``."""
    names, index, block, conv = {}, 0, 1, 1
    for item in _VGG16_CFG:
        if item == "M":
            index, block, conv = index + 1, block + 1, 1
        else:
            names[f"relu{block}_{conv}"] = index + 1
            index, conv = index + 2, conv + 1
    return names


#: ``"relu2_2"`` -> index of that ReLU in torchvision's ``vgg16().features`` (here 8)
VGG16_LAYERS: dict[str, int] = _relu_layer_indices()


def build_vgg16_features(layer: str = "relu2_2") -> nn.Sequential:
    """VGG16 ``features`` up to and including ``layer``, with torchvision's module indices.

    Args:
        layer: a key of :data:`VGG16_LAYERS`, e.g. ``"relu2_2"`` (``features[:9]``).

    Returns:
        Randomly initialised ``nn.Sequential``: convs at the indices torchvision uses, so
        its ``state_dict`` keys are ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ...

    Example:
        >>> build_vgg16_features("relu2_2")[4]
        MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    """
    last = lookup_by_name(VGG16_LAYERS, layer, "VGG16 layer")
    modules: list[nn.Module] = []
    in_channels = 3
    for item in _VGG16_CFG:
        if len(modules) > last:  # build no deeper than needed: the later convs are large
            break
        if item == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(in_channels, item, kernel_size=3, padding=1)
            modules += [conv, nn.ReLU(inplace=True)]
            in_channels = item
    return nn.Sequential(*modules[: last + 1])


def _missing_weights_message(detail: str, env_var: str) -> str:
    return (
        f"PerceptualLoss needs pretrained VGG16 weights and will not download them: {detail}. "
        "Provide torchvision's ImageNet file vgg16-397923af.pth (or any torchvision-format "
        "VGG16 state dict, keys 'features.0.weight', ...) by passing weights='/path/to/file.pth' "
        f"or setting the environment variable {env_var}=/path/to/file.pth; or set the "
        "perceptual loss weight to 0 in the config (and leave the term out) to train without it."
    )


class MissingPerceptualWeightsWarning(UserWarning):
    """A perceptual loss term was switched off because no VGG16 weights were configured."""


def perceptual_weight_if_available(weight: float, weights: str | os.PathLike | Mapping | None = None,
                                   setting: str = "vgg16_weights", env_var: str = VGG16_ENV_VAR) -> float:
    """``weight``, or 0.0 with a loud warning when the perceptual term would need VGG16 weights nobody configured.

    For configs that must run as written on a fresh machine (a bundle's train.json): with
    neither ``weights`` nor ``env_var`` set, the term is turned off and
    :class:`MissingPerceptualWeightsWarning` says so, what it changes and how to turn it on.
    Weights that *were* configured are not checked here: a wrong path still fails in
    :class:`PerceptualLoss`, loudly, rather than being dropped.

    Args:
        weight: the perceptual term's weight in the loss, >= 0.
        weights: what :class:`PerceptualLoss` would load (a path, a state dict or None).
        setting: the config id of ``weights``, named in the warning.
        env_var: the environment variable consulted when ``weights`` is None.

    Returns:
        ``weight``, or 0.0 when ``weight > 0`` and no weights are configured.
    """
    if weight <= 0 or weights is not None or os.environ.get(env_var):
        return weight
    warnings.warn(
        f"THE PERCEPTUAL LOSS TERM IS OFF: its weight {weight} was set to 0 because no VGG16 weights are configured "
        f"({setting} is null and {env_var} is not set), and medden never downloads them. Training runs on MSE "
        "alone, which is NOT the published recipe. To turn it on, give torchvision's ImageNet file "
        f"vgg16-397923af.pth: --{setting} /path/to/vgg16-397923af.pth (or {env_var}=/path/to/file.pth); to train "
        "without it and silence this warning, set --perceptual_weight 0.",
        MissingPerceptualWeightsWarning, stacklevel=2)
    return 0.0


def _resolve_weights(weights: str | os.PathLike | Mapping | None, env_var: str) -> Mapping:
    """Return the state dict given directly, by path, or by the environment variable."""
    if isinstance(weights, Mapping):
        return weights
    if weights is None:
        from_env = os.environ.get(env_var, "")
        if not from_env:
            detail = f"weights=None and {env_var} is not set"
            raise FileNotFoundError(_missing_weights_message(detail, env_var))
        source, weights = f"{env_var}={from_env!r}", from_env
    elif isinstance(weights, (str, os.PathLike)):
        source = f"weights={os.fspath(weights)!r}"
    else:
        raise TypeError(
            f"weights must be a path, a state dict or None, got {type(weights).__name__}."
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        detail = f"{source} is not an existing file"
        raise FileNotFoundError(_missing_weights_message(detail, env_var))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError(
            f"could not load VGG16 weights from {source} with torch.load(weights_only=True): "
            f"{err}. Save a state dict (torch.save(model.state_dict(), path)), not a model."
        ) from err
    if not isinstance(state, Mapping):
        raise ValueError(
            f"{source} holds a {type(state).__name__}, not a state dict; save "
            "torch.save(vgg16.state_dict(), path)."
        )
    return state


def _load_features(features: nn.Sequential, state: Mapping, layer: str) -> None:
    """Copy the ``features.N.*`` (or ``N.*``) entries of ``state`` into ``features``."""
    prefix = "features." if any(str(k).startswith("features.") for k in state) else ""
    wanted = features.state_dict()
    picked = {key: state[prefix + key] for key in wanted if prefix + key in state}
    missing = sorted(prefix + key for key in wanted if key not in picked)
    if missing:
        raise ValueError(
            f"the VGG16 weights lack {len(missing)} key(s) needed up to {layer}: {missing}; "
            "use a torchvision-format VGG16 state dict such as vgg16-397923af.pth."
        )
    bad = [
        f"{prefix + key}: {tuple(getattr(value, 'shape', ())) or type(value).__name__} "
        f"(expected {tuple(wanted[key].shape)})"
        for key, value in picked.items()
        if not isinstance(value, torch.Tensor) or value.shape != wanted[key].shape
    ]
    if bad:
        raise ValueError(f"the VGG16 weights have mis-shaped entries: {bad}; is this a VGG16 file?")
    features.load_state_dict(picked)


class PerceptualLoss(nn.Module):
    """Content loss: mean squared difference of VGG16 feature maps of ``pred`` and ``target``.

    Used next to MSE to keep edges crisp (Jena 2019, section 3.2, relu2_2 of an
    ImageNet-trained VGG16), e.g. ``WeightedSumLoss([(MaskedMSELoss(), 1.0),
    (PerceptualLoss(), 0.5)])``. The VGG16 parameters are frozen (``requires_grad`` False)
    and the extractor stays in eval mode; gradients flow to ``pred`` only.

    ``forward(pred, target, mask=None)`` follows the package's loss convention (see
    :mod:`medden.losses`) with these differences: 2D only, ``pred`` and ``target`` are
    ``(B, C, H, W)`` float with ``C`` = 1 (repeated to RGB) or 3, intensities in [0, 1]
    (they are normalised with the ImageNet mean and std inside), and the result is the mean
    over feature values. A ``mask`` is applied by multiplying both images by it before the
    features are computed. That is an approximation (features near a masked pixel still see
    the zero), and the recorruption paper did not combine perceptual loss with Bernoulli
    masks.

    Args:
        weights: a local file holding a torchvision-format VGG16 state dict (keys
            ``features.0.weight``, ...; extra keys such as ``classifier.*`` are ignored), the
            state dict itself, or None to read the path from the environment variable
            ``env_var``.
        layer: the ReLU whose output is compared, a key of :data:`VGG16_LAYERS`.
        env_var: environment variable consulted when ``weights`` is None.

    Raises:
        FileNotFoundError: no weights configured, or the file does not exist; the message
            says what to provide.
        ValueError: the file is not a state dict, or lacks or mis-shapes needed keys; or
            ``layer`` is unknown.

    Example:
        In practice: ``PerceptualLoss(weights="/models/vgg16-397923af.pth")``. Here, random
        weights in torchvision's format stand in for the ImageNet file:

        >>> state = {f"features.{k}": v for k, v in build_vgg16_features().state_dict().items()}
        >>> loss = PerceptualLoss(weights=state)
        >>> img = torch.rand(2, 1, 32, 32)
        >>> loss(img, img).item()
        0.0
    """

    def __init__(
        self,
        weights: str | os.PathLike | Mapping | None = None,
        layer: str = "relu2_2",
        env_var: str = VGG16_ENV_VAR,
    ) -> None:
        super().__init__()
        self.layer = layer
        features = build_vgg16_features(layer)
        _load_features(features, _resolve_weights(weights, env_var), layer)
        self.features = features.eval().requires_grad_(False)
        for name, value in (("mean", _IMAGENET_MEAN), ("std", _IMAGENET_STD)):
            self.register_buffer(name, torch.tensor(value).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Set training mode on this module; the frozen VGG16 always stays in eval mode."""
        super().train(mode)
        self.features.eval()
        return self

    def _embed(self, img: torch.Tensor) -> torch.Tensor:
        """``(B, 1 or 3, H, W)`` in [0, 1] -> VGG16 features ``(B, K, H', W')``."""
        img = img.to(self.mean.dtype)
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        return self.features((img - self.mean) / self.std)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the mean squared feature difference, a 0-dim tensor (see the class docstring)."""
        if isinstance(pred, torch.Tensor) and pred.ndim == 5:
            raise ValueError(
                f"PerceptualLoss is 2D only, got pred of shape {tuple(pred.shape)} "
                "(B, C, H, W, D); fold depth into the batch (x.movedim(-1, 1).flatten(0, 1)) "
                "or drop the term for 3D."
            )
        mask = check_loss_inputs(pred, target, mask, spatial_dims=(2,))
        if pred.shape[1] not in (1, 3):
            raise ValueError(
                f"PerceptualLoss needs 1 or 3 channels, got pred of shape {tuple(pred.shape)}; "
                "compute it per channel or drop the term for multi-channel images."
            )
        if mask is not None:  # unobserved target values are never read, as in the pixel losses
            pred, target = pred * mask, torch.where(mask > 0, target, 0.0) * mask
        return (self._embed(pred) - self._embed(target)).square().mean().to(pred.dtype)
