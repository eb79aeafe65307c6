"""Networks: thin additions to ``monai.networks`` (reuse MONAI's U-Nets where they fit)."""

from medden.networks.direct_denoiser import DirectDenoiser
from medden.networks.general import GENERAL_CHANNELS, FastResUNet, general_denoiser_net
from medden.networks.kspace import KspaceDenoiser
from medden.networks.ladder_vae import LadderVAE, VAEKeys, gaussian_kl
from medden.networks.noise_models import (
    NOISE_MODELS,
    GaussianMixtureNoiseModel,
    GaussianNoiseModel,
    NoiseModel,
    PoissonGaussianNoiseModel,
    build_noise_model,
    estimate_poisson_gaussian,
)
from medden.networks.residual import ResidualDenoiser
from medden.networks.stabilized import VarianceStabilized

__all__ = [
    "GENERAL_CHANNELS",
    "NOISE_MODELS",
    "DirectDenoiser",
    "FastResUNet",
    "GaussianMixtureNoiseModel",
    "GaussianNoiseModel",
    "KspaceDenoiser",
    "LadderVAE",
    "NoiseModel",
    "PoissonGaussianNoiseModel",
    "ResidualDenoiser",
    "VAEKeys",
    "VarianceStabilized",
    "build_noise_model",
    "estimate_poisson_gaussian",
    "gaussian_kl",
    "general_denoiser_net",
]
