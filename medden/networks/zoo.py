"""The supervised-denoising network zoo: every network by name, and model-size and device helpers.

Each entry builds a module mapping ``(B, C, H, W)`` float to the same shape for any
``H, W`` (networks that pool are padded internally or by :class:`PadToMultiple`), with
``C = in_channels``. Keyword arguments go to the constructor, so a bundle can shrink the
paper-sized defaults for CPU training::

    net = denoiser_network("ridnet", in_channels=1, features=16, n_blocks=2)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.networks.nets import BasicUNet
from torch import nn

from medden.networks.autoencoder import ConvAutoencoder
from medden.networks.cbdnet import CBDNet
from medden.networks.direct_denoiser import DirectDenoiser
from medden.networks.dncnn import DnCNN
from medden.networks.general import GENERAL_CHANNELS, general_denoiser_net
from medden.networks.padding import PadToMultiple
from medden.networks.pridnet import PRIDNet
from medden.networks.residual import ResidualDenoiser
from medden.networks.resnet import ResNetDenoiser
from medden.networks.ridnet import RIDNet
from medden.core.validation import check_int, lookup_by_name

__all__ = ["DENOISER_NETWORKS", "count_parameters", "denoiser_network", "model_size_bytes", "network_device"]

#: MONAI BasicUNet's default widths (four halvings, so inputs are padded to a multiple of 16)
BASIC_UNET_FEATURES = (32, 32, 64, 128, 256, 32)


def fast_resunet(in_channels: int = 1, channels: Sequence[int] = GENERAL_CHANNELS, blocks: int = 1) -> nn.Module:
    """The general denoiser's residual :class:`~medden.networks.FastResUNet`, blind, padded
    to a multiple of ``2 ** len(channels)`` so any size works."""
    net = general_denoiser_net(channels=channels, blocks=blocks, image_channels=in_channels)
    return PadToMultiple(net, 2 ** len(tuple(channels)))


def residual_basic_unet(in_channels: int = 1, features: Sequence[int] = BASIC_UNET_FEATURES, **kwargs) -> nn.Module:
    """``x + BasicUNet(x)`` (MONAI, 2D), padded to a multiple of 16. ``kwargs`` go to
    ``BasicUNet`` (e.g. ``norm``, ``dropout``). With its default instance norm, inputs must
    be larger than 16 pixels on each side so the bottom level keeps more than one pixel."""
    unet = BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=in_channels, features=features, **kwargs)
    return PadToMultiple(ResidualDenoiser(unet), 16)


def direct_unet(in_channels: int = 1, **kwargs) -> nn.Module:
    """:class:`~medden.networks.DirectDenoiser` with as many outputs as inputs; it pads
    itself. ``kwargs`` (``depth``, ``base_filters``) go to its constructor."""
    return DirectDenoiser(in_channels=in_channels, out_channels=in_channels, **kwargs)


#: name -> constructor taking ``in_channels`` and the network's keyword arguments
DENOISER_NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "autoencoder": ConvAutoencoder,
    "dncnn": DnCNN,
    "ridnet": RIDNet,
    "cbdnet": CBDNet,
    "pridnet": PRIDNet,
    "fast_resunet": fast_resunet,
    "basic_unet": residual_basic_unet,
    "direct_unet": direct_unet,
    "resnet": ResNetDenoiser,
}


def denoiser_network(name: str, in_channels: int = 1, **kwargs) -> nn.Module:
    """Build the zoo network ``name`` for ``in_channels``-channel images.

    Args:
        name: a key of :data:`DENOISER_NETWORKS`.
        in_channels: image channels, >= 1 (1 for grey-scale, 3 for RGB).
        kwargs: the network's constructor arguments (widths, depths).

    Returns:
        A module mapping ``(B, in_channels, H, W)`` float to the same shape.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid ones), or ``in_channels < 1``.

    Example:
        >>> import torch
        >>> net = denoiser_network("dncnn", in_channels=3, depth=3, features=8)
        >>> net(torch.zeros(2, 3, 9, 11)).shape
        torch.Size([2, 3, 9, 11])
    """
    build = lookup_by_name(DENOISER_NETWORKS, name, "denoiser network")
    in_channels = check_int(in_channels, "in_channels", hint="pass 1 for grey-scale or 3 for RGB images")
    return build(in_channels=in_channels, **kwargs)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values in ``module`` (shared parameters counted once).

    Example:
        >>> count_parameters(nn.Conv2d(1, 4, 3))  # 4 * 1 * 3 * 3 weights + 4 biases
        40
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def model_size_bytes(module: nn.Module) -> int:
    """Bytes of ``module``'s state dict: ``numel * element_size`` summed over its tensors
    (parameters and buffers; 4 bytes per float32 value), about the size of a saved checkpoint.

    Example:
        >>> model_size_bytes(nn.Conv2d(1, 4, 3))
        160
    """
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def network_device(network: nn.Module) -> torch.device:
    """Where ``network`` runs: its first parameter's device, else its ``device`` attribute (an
    exported stand-in such as :class:`medden.bundle.backends.OnnxNetwork`), else the CPU.

    Example:
        >>> network_device(nn.Conv2d(1, 4, 3))
        device(type='cpu')
    """
    first = next(network.parameters(), None)
    if first is not None:
        return first.device
    return torch.device(getattr(network, "device", "cpu"))
