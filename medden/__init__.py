"""medden: denoising medical images without clean training data, built on MONAI.

Layers; a module imports only from its own layer or lower ones (``tests/test_layers.py``):

1. ``medden.core``: validation, keys, Fourier operators, noise estimation, variance
   stabilisation, protocol constants.
2. The library: ``io`` (every file format, the input dispatcher, the output guard),
   ``transforms``, ``losses``, ``networks``, ``metrics``, ``data`` (datasets and the sample
   images), ``anchors`` (classical denoisers).
3. ``engines`` (training: steps from factories, the rest handlers) and ``inference``
   (algorithms: refinement, bias correction, tuning, posterior sampling).
4. ``medden.bundle``: one object that resolves, loads and runs a trained MONAI bundle.
5. ``medden.apps``: the commands (batch denoising, fit, demo, export, serve, benchmark, CLI).

Package-wide array conventions (every docstring refers back to these):

* **Images** are channel-first: ``(C, H, W)`` for 2D and ``(C, H, W, D)`` for 3D, as
  ``numpy.ndarray``, ``torch.Tensor`` or ``monai.data.MetaTensor``. Batched tensors add a
  leading ``B``. Transforms return the input's container type (a ``MetaTensor`` keeps its
  meta, including the affine) and a floating dtype (float32 unless the input is float64).
* **Axes** ``H, W, D`` name the first, second and third spatial *array* axes, not display
  directions. Files load in MONAI/ITK index order: ``H`` is NIfTI ``i`` and the DICOM column
  index (it runs along a row), ``W`` is NIfTI ``j`` and the DICOM row index (down the
  columns), ``D`` is NIfTI ``k``, the slices or frames; PNG/TIFF through MONAI's reader
  likewise. A DICOM image of Rows x Columns = 512 x 400 loads as ``(1, 400, 512)`` and
  ``img[0].T`` shows it as stored; affines are RAS. One exception: RGB patch tiles
  (:mod:`medden.io.tiles`, Camelyon16) load rows first, ``H`` down the image as viewed. Raw
  layouts a format has before loading (fastMRI k-space, JSRT ``.IMG``) are described where read.
* **Intensities** are in whatever units the caller chooses; corruption transforms that need a
  range (Poisson, impulse, text) say so. Samples load in modality units (DICOM modality LUT
  applied).
* **Complex data** (k-space, complex images) follows MONAI's reconstruction layout: a real
  array with a trailing dimension of size 2 holding (real, imaginary), i.e. ``(C, H, W, 2)``
  or ``(C, H, W, D, 2)``. k-space is centred (DC in the middle) and orthonormal, as computed
  by ``monai.data.fft_utils.fftn_centered``.
* **Masks** are float32 arrays of 0 and 1 with the image's spatial shape (k-space masks:
  broadcastable to it), 1 where a pixel or frequency is observed.
* **Randomness** comes only from each transform's own ``self.R`` (or, for a transform that
  draws with torch, its own ``torch.Generator``); seed it with ``set_random_state``. The
  global numpy and torch generators are never touched.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("medden")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
