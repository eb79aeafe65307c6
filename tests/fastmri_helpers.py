"""fastMRI single-coil test files, written with h5py directly (not medden's writer), shared by the
reader tests (tests/io) and the dataset tests (tests/data)."""

import h5py
import numpy as np

SHAPE = (3, 40, 24)  # slices, H (readout), W (phase encode)
CROP = (16, 16)
PATIENT_ID = "a1b2c3-secret-patient"


def fft2c(image):
    """fastMRI's centred orthonormal FFT (ifftshift -> fft2 -> fftshift), in numpy."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def ifft2c(kspace):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def complex_volume(seed, shape=SHAPE):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 5, shape) * np.exp(1j * rng.uniform(-np.pi, np.pi, shape))).astype(np.complex64)


def write_fastmri(path, kspace, mask=None, **datasets):
    """A file in fastMRI's single-coil layout, written with h5py directly (not the module's writer)."""
    with h5py.File(path, "w") as f:
        if kspace is not None:
            f.create_dataset("kspace", data=kspace)
        f.create_dataset("ismrmrd_header", data=np.bytes_(b"<ismrmrdHeader/>"))
        for name, value in datasets.items():
            f.create_dataset(name, data=value)
        f.attrs.update(acquisition="CORPD_FBK", max=1.0, norm=2.0, patient_id=PATIENT_ID)
        if mask is not None:
            f.create_dataset("mask", data=mask)
            f.attrs.update(acceleration=4, num_low_frequency=4)
    return path


def crop(image):
    top, left = (image.shape[-2] - CROP[0]) // 2, (image.shape[-1] - CROP[1]) // 2
    return image[..., top:top + CROP[0], left:left + CROP[1]]


def column_mask(width=SHAPE[2]):
    mask = np.zeros(width, bool)
    mask[::4] = True
    mask[width // 2 - 2:width // 2 + 2] = True
    return mask


def write_full_volumes(folder):
    """Three fully sampled volumes ``file{i}.h5`` in ``folder``, each the centred FFT of a known
    complex image; returns {name: image}."""
    images = {}
    for i in range(3):
        images[f"file{i}.h5"] = complex_volume(i)
        write_fastmri(folder / f"file{i}.h5", fft2c(images[f"file{i}.h5"]).astype(np.complex64),
                      reconstruction_esc=np.abs(crop(images[f"file{i}.h5"])).astype(np.float32))
    return images
