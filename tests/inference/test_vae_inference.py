"""Ladder VAE inference (medden.inference.posterior): posterior statistics, inferer, NIfTI export."""

import hashlib

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.inferers import SlidingWindowInferer
from torch import nn

from medden.apps.folders import denoise_nifti_folder_with_uncertainty, denoise_nifti_with_uncertainty
from medden.inference import (
    PosteriorMeanInferer,
    denoise_image_with_uncertainty,
    posterior_statistics,
)
from medden.networks import GaussianNoiseModel, LadderVAE


def _vae(dropout: float = 0.0) -> LadderVAE:
    torch.manual_seed(0)
    return LadderVAE(n_groups=2, n_filters=8, latent_channels=2, dropout=dropout,
                     noise_model=GaussianNoiseModel(0.1)).eval()


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(shape=(2, 1, 16, 16), seed: int = 1) -> torch.Tensor:
    clean = torch.linspace(0, 1, shape[-1]).expand(shape)
    return clean + 0.1 * torch.randn(shape, generator=_gen(seed))


class _VAEAndDirect(nn.Module):
    """A wrapper holding ``vae`` and ``direct``, as VAEDirectDenoiser does."""

    def __init__(self, vae: LadderVAE) -> None:
        super().__init__()
        self.vae, self.direct = vae, nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        return self.direct(x)


@pytest.mark.parametrize("chunk", [1, 3, 7, 50])
def test_statistics_match_direct_sampling(chunk):
    vae, x = _vae(), _batch((2, 1, 13, 11))  # odd sizes: padded inside the VAE
    samples = vae.sample_posterior(x, 7, generator=_gen())
    stats = posterior_statistics(vae, x, 7, chunk=chunk, generator=_gen())
    torch.testing.assert_close(stats.mean, samples.mean(0))
    torch.testing.assert_close(stats.std, samples.std(0))
    assert torch.equal(stats.median, torch.median(samples, dim=0).values)
    assert stats.n_samples == 7 and stats.mean.shape == x.shape and stats.mean.dtype == torch.float32
    assert (stats.std >= 0).all() and (stats.std > 0).any()


def test_median_is_optional_and_one_sample_has_zero_std():
    vae, x = _vae(), _batch()
    without = posterior_statistics(vae, x, 5, chunk=2, median=False, generator=_gen())
    assert without.median is None
    torch.testing.assert_close(without.mean, posterior_statistics(vae, x, 5, generator=_gen()).mean)
    single = posterior_statistics(vae, x, 1, generator=_gen())
    assert torch.equal(single.mean, vae.sample_posterior(x, 1, generator=_gen())[0])
    assert torch.equal(single.std, torch.zeros_like(x))


def test_bad_arguments_give_clear_errors():
    vae, x = _vae(), _batch()
    with pytest.raises(ValueError, match="n_samples must be an int >= 1, got 0"):
        posterior_statistics(vae, x, 0)
    with pytest.raises(ValueError, match="chunk must be an int >= 1"):
        posterior_statistics(vae, x, 2, chunk=0)
    bad = x.clone()
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        posterior_statistics(vae, bad, 2)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        posterior_statistics(vae, x[..., None], 2)
    with pytest.raises(TypeError, match="LadderVAE"):
        posterior_statistics(nn.Conv2d(1, 1, 3), x, 2)
    with pytest.raises(ValueError, match="statistic must be one of"):
        PosteriorMeanInferer(4, statistic="mode")


def test_mean_of_many_samples_converges():
    vae, x = _vae(), _batch((1, 1, 16, 16))
    means = [posterior_statistics(vae, x, 400, chunk=100, median=False, generator=_gen(s)).mean for s in (1, 2)]
    draws = [vae.sample_posterior(x, 1, generator=_gen(s))[0] for s in (1, 2)]
    many, one = (means[0] - means[1]).norm(), (draws[0] - draws[1]).norm()
    assert one > 0
    assert many < 0.15 * one  # 1 / sqrt(400) = 0.05 expected


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_is_used_and_every_mode_restored(training):
    vae, x = _vae(dropout=0.5), _batch()
    expected = posterior_statistics(vae, x, 3, generator=_gen()).mean  # eval mode: dropout off
    vae.train(training)
    vae.noise_model.eval()  # a submodule in its own mode stays so
    modes = [m.training for m in vae.modules()]
    torch.testing.assert_close(posterior_statistics(vae, x, 3, generator=_gen()).mean, expected)
    assert [m.training for m in vae.modules()] == modes


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_inferer_through_wrapper_and_data_parallel(statistic):
    vae, x = _vae(), _batch()
    expected = getattr(posterior_statistics(vae, x, 5, generator=_gen(3)), statistic)
    networks = (vae, _VAEAndDirect(vae), nn.DataParallel(_VAEAndDirect(vae)))
    state = torch.get_rng_state()
    for network in networks:
        out = PosteriorMeanInferer(5, statistic=statistic, seed=3)(x, network)
        torch.testing.assert_close(out, expected)
    assert torch.equal(torch.get_rng_state(), state)  # the inferer's own generator, not the global one
    inferer = PosteriorMeanInferer(5, statistic=statistic, seed=3)
    first = inferer(x, vae)
    assert not torch.equal(inferer(x, vae), first)  # its generator moves on
    assert torch.equal(inferer.set_random_state(3)(x, vae), first)
    with pytest.raises(TypeError, match="LadderVAE"):
        inferer(x, nn.Identity())


def test_inferer_runs_each_window_through_a_sliding_window_base():
    vae, x = _vae(), _batch((1, 1, 32, 16))
    inferer = PosteriorMeanInferer(4, base_inferer=SlidingWindowInferer(roi_size=(16, 16), sw_batch_size=1,
                                                                        overlap=0.0), seed=5)
    out = inferer(x, _VAEAndDirect(vae))
    generator = _gen(5)  # the windows, top then bottom, draw from one generator in turn
    expected = torch.cat([posterior_statistics(vae, x[..., rows, :], 4, generator=generator).mean
                          for rows in (slice(0, 16), slice(16, 32))], dim=-2)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, posterior_statistics(vae, x, 4, generator=_gen(5)).mean)


def _write(path, data, affine) -> str:
    nib.save(nib.Nifti1Image(data, affine), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


AFFINE = np.array([[0, 0, 2.0, -30], [-1.5, 0, 0, 40], [0, 1.5, 0, 12], [0, 0, 0, 1]])


@pytest.mark.parametrize("shape", [(16, 12), (16, 12, 3)])
def test_nifti_export_keeps_affine_shape_and_input(tmp_path, shape):
    data = np.random.default_rng(0).uniform(0, 50, shape).astype(np.float32)
    src = tmp_path / "in.nii.gz"
    digest = _write(src, data, AFFINE)
    denoised_path, std_path = denoise_nifti_with_uncertainty(src, tmp_path / "out.nii.gz", _vae(), 4,
                                                             generator=_gen())
    assert (denoised_path.name, std_path.name) == ("out.nii.gz", "out_std.nii.gz")
    for written in (denoised_path, std_path):
        nii = nib.load(written)
        np.testing.assert_allclose(nii.affine, AFFINE)
        assert nii.shape == shape and np.isfinite(nii.get_fdata()).all()
    assert (nib.load(std_path).get_fdata() >= 0).all() and (nib.load(std_path).get_fdata() > 0).any()
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_outputs_are_in_the_images_units(tmp_path, statistic):
    data = np.random.default_rng(1).uniform(0.2, 1.0, (16, 16, 2)).astype(np.float32)
    results = []
    for name, scaled in (("x", data), ("y", 1000 * data + 5000)):  # y: same image in other units
        _write(tmp_path / f"{name}.nii", scaled, np.eye(4))
        paths = denoise_nifti_with_uncertainty(tmp_path / f"{name}.nii", tmp_path / f"{name}_out.nii.gz", _vae(), 6,
                                               statistic, generator=_gen())
        results.append([nib.load(p).get_fdata() for p in paths])
    (denoised, std), (denoised_y, std_y) = results
    np.testing.assert_allclose(denoised_y, 1000 * denoised + 5000, rtol=1e-4)
    np.testing.assert_allclose(std_y, 1000 * std, rtol=1e-3, atol=1e-2)  # a spread: scaled, not offset
    assert std.max() > 1e-3


def test_image_function_keeps_the_container_type():
    image = np.random.default_rng(2).uniform(0, 1, (1, 16, 16)).astype(np.float32)
    denoised, std = denoise_image_with_uncertainty(image, _vae(), 3, generator=_gen())
    assert isinstance(denoised, np.ndarray) and isinstance(std, np.ndarray)
    assert denoised.shape == std.shape == image.shape and denoised.dtype == np.float32


def test_nifti_folder_refuses_the_input_folder_and_existing_outputs(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(3)
    digests = [_write(src / "a.nii.gz", rng.uniform(0, 9, (16, 12, 2)).astype(np.float32), AFFINE),
               _write(src / "b.nii", rng.uniform(0, 9, (16, 12)).astype(np.float32), np.eye(4))]
    with pytest.raises(ValueError, match="output_dir must differ from input_dir"):
        denoise_nifti_folder_with_uncertainty(src, src, _vae(), 2)
    written = denoise_nifti_folder_with_uncertainty(src, out, _vae(), 2)
    assert [(d.name, s.name) for d, s in written] == [("a_denoised.nii.gz", "a_denoised_std.nii.gz"),
                                                      ("b_denoised.nii.gz", "b_denoised_std.nii.gz")]
    np.testing.assert_allclose(nib.load(out / "a_denoised_std.nii.gz").affine, AFFINE)
    assert sorted(p.name for p in src.iterdir()) == ["a.nii.gz", "b.nii"]
    assert [hashlib.sha256((src / n).read_bytes()).hexdigest() for n in ("a.nii.gz", "b.nii")] == digests
    (out / "a_denoised.nii.gz").unlink()  # only the std map is left: still refused, nothing half written
    with pytest.raises(FileExistsError, match="a_denoised_std.nii.gz' already exists"):
        denoise_nifti_folder_with_uncertainty(src, out, _vae(), 2)
    assert not (out / "a_denoised.nii.gz").exists()
    assert len(denoise_nifti_folder_with_uncertainty(src, out, _vae(), 2, overwrite=True)) == 2
    with pytest.raises(ValueError, match="would overwrite the input"):
        denoise_nifti_with_uncertainty(src / "b.nii", src / "b.nii", _vae(), 2)
    with pytest.raises(ValueError, match="must end in .nii or .nii.gz"):
        denoise_nifti_with_uncertainty(src / "b.nii", out / "b.png", _vae(), 2)
