"""A MONAI bundle as one object: its files, its configs, its network and its backends.

Load a bundle once and denoise with it::

    from medden.bundle import load_bundle

    bundle = load_bundle("general_denoiser", device="cpu", backend="auto")
    denoised = bundle.denoise(image)  # (C, H, W[, D]) float in modality units -> same shape
    bundle.name, bundle.backend, bundle.parameters  # what a derived series records

One module per job:

* :mod:`~medden.bundle.layout`: every path inside a bundle folder (``models/model.pt``, ...).
* :mod:`~medden.bundle.resolve`: a name or folder to a bundle folder; the shipped bundles; which
  folders may be loaded at all (bundles are code: shipped or trusted ones only).
* :mod:`~medden.bundle.config`: the ``ConfigParser`` with ``bundle_root``, and the checked
  inference settings (intensity percentiles, smoothing, channels, batch size).
* :mod:`~medden.bundle.exports`: the backends, the export record and the ``auto`` choice.
* :mod:`~medden.bundle.backends`: running an exported network (TorchScript, ONNX, int8 ONNX).
* :mod:`~medden.bundle.loading`: :func:`load_bundle`, the one loader, and :func:`bundle_network`.
* :mod:`~medden.bundle.bundle`: the :class:`Bundle` object and its ``denoise``.
* :mod:`~medden.bundle.denoiser_interface`: a bundle or a classical anchor as ``denoiser(image)``.

Importing this package loads neither torch nor MONAI (the command line stays fast); they load
with the first bundle.
"""

from medden.bundle.bundle import Bundle, ChannelError
from medden.bundle.config import bundle_config
from medden.bundle.exports import BACKENDS
from medden.bundle.loading import NotAnImageBundleError, bundle_network, load_bundle
from medden.bundle.resolve import (DEFAULT_BUNDLE, UntrustedBundleError, is_shipped, resolve_bundle, shipped_bundles,
                                  shipped_bundles_dir)

__all__ = ["BACKENDS", "DEFAULT_BUNDLE", "Bundle", "ChannelError", "NotAnImageBundleError", "UntrustedBundleError",
           "bundle_config", "bundle_network", "is_shipped", "load_bundle", "resolve_bundle", "shipped_bundles",
           "shipped_bundles_dir"]
