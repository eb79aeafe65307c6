"""medden: denoising medical images without clean training data, built on MONAI.

Package-wide array conventions (every docstring refers back to these):

* **Images** are channel-first: ``(C, H, W)`` for 2D and ``(C, H, W, D)`` for 3D, as
  ``numpy.ndarray``, ``torch.Tensor`` or ``monai.data.MetaTensor``. Batched tensors add a
  leading ``B``. Transforms return the input's container type (a ``MetaTensor`` keeps its
  meta, including the affine) and a floating dtype (float32 unless the input is float64).
* **Intensities** are in whatever units the caller chooses; corruption transforms that need a
  range (Poisson, impulse, text) say so. Samples load in modality units (DICOM modality LUT
  applied).
* **Complex data** (k-space, complex images) follows MONAI's reconstruction layout: a real
  array with a trailing dimension of size 2 holding (real, imaginary), i.e. ``(C, H, W, 2)``
  or ``(C, H, W, D, 2)``. k-space is centred (DC in the middle) and orthonormal, as computed
  by ``monai.data.fft_utils.fftn_centered``.
* **Masks** are float32 arrays of 0 and 1 with the image's spatial shape (k-space masks:
  broadcastable to it), 1 where a pixel or frequency is observed.
* **Randomness** comes only from each transform's own ``self.R`` (seed it with
  ``set_random_state``); the global numpy and torch generators are never touched.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("medden")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
