"""Classical denoisers every learned one is measured against, behind one callable interface.

A *denoiser* is a callable object ``denoiser(image) -> np.ndarray`` with a short ``name`` for
tables. ``image`` is a ``(C, H, W)`` float numpy array, ``C = 1`` (grey) or ``3`` (RGB), values
nominally in [0, 1]; the result is float32 of the same shape; the input is never modified.

* :class:`ClassicalDenoiser` subclasses (:mod:`~medden.anchors.denoisers`): :class:`NLMDenoiser`,
  :class:`BM3DDenoiser`, :class:`TVDenoiser` and :class:`RicianNLMDenoiser` (grey magnitude
  MRI). ``sigma`` is the Gaussian noise std in the image's units; None estimates it per image.
  :func:`classical_denoiser` builds one by name from :data:`CLASSICAL_DENOISERS`.
* :class:`AnscombeDenoiser` (:mod:`~medden.anchors.poisson`) turns a Gaussian denoiser into a
  Poisson(-Gaussian) one: variance-stabilise, denoise at unit sigma, invert with the exact
  unbiased inverse (:mod:`medden.core.variance_stabilization`).
* :func:`l1_wavelet_recon` (:mod:`~medden.anchors.reconstruction`): compressed-sensing
  reconstruction of undersampled single-coil k-space, the anchor for MRI reconstruction.
* :func:`nlm_denoise`, :func:`bm3d_denoise` and :func:`with_anscombe` are the function forms
  (``anchor(image, sigma)``) that scripts use; they call the classes.

BM3D needs the ``bm3d`` package (the ``bench`` extra) and Rician NLM needs ``dipy`` (the
``samples`` extra); both are imported only when used.
"""

from medden.anchors.base import Anchor, ClassicalDenoiser
from medden.anchors.denoisers import (
    CLASSICAL_DENOISERS,
    BM3DDenoiser,
    NLMDenoiser,
    RicianNLMDenoiser,
    TVDenoiser,
    bm3d_denoise,
    classical_denoiser,
    nlm_denoise,
)
from medden.anchors.poisson import AnscombeDenoiser, anscombe, inverse_anscombe, with_anscombe
from medden.anchors.reconstruction import l1_wavelet_recon

__all__ = [
    "CLASSICAL_DENOISERS",
    "Anchor",
    "AnscombeDenoiser",
    "BM3DDenoiser",
    "ClassicalDenoiser",
    "NLMDenoiser",
    "RicianNLMDenoiser",
    "TVDenoiser",
    "anscombe",
    "bm3d_denoise",
    "classical_denoiser",
    "inverse_anscombe",
    "l1_wavelet_recon",
    "nlm_denoise",
    "with_anscombe",
]
