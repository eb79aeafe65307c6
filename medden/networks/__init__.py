"""Networks: thin additions to ``monai.networks`` (reuse MONAI's U-Nets where they fit)."""

from medden.networks.autoencoder import ConvAutoencoder
from medden.networks.cbdnet import CBDNet
from medden.networks.direct_denoiser import DirectDenoiser
from medden.networks.flow import (
    COUPLINGS,
    FlowEncoding,
    ImageFlow,
    bits_per_dim,
    dequantize,
    dequantized_bits_per_dim,
)
from medden.networks.dncnn import DnCNN
from medden.networks.general import ARCHITECTURES, GENERAL_CHANNELS, BilinearResUNet, FastResUNet, general_denoiser_net
from medden.networks.kspace import KspaceDenoiser
from medden.networks.ladder_vae import LadderVAE, VAEKeys, gaussian_kl
from medden.networks.noise_models import (
    NOISE_MODELS,
    GaussianMixtureNoiseModel,
    GaussianNoiseModel,
    NoiseModel,
    PoissonGaussianNoiseModel,
    build_noise_model,
    calibrated_noise_model,
    estimate_poisson_gaussian,
    noise_model_template,
)
from medden.networks.padding import PadToMultiple
from medden.networks.pridnet import PRIDNet
from medden.networks.residual import ResidualDenoiser
from medden.networks.resnet import ResNetDenoiser
from medden.networks.ridnet import RIDNet
from medden.networks.stack import SliceStackDenoiser, stack_denoiser_net, widen_to_stack
from medden.networks.stabilized import VarianceStabilized
from medden.networks.vae_direct import DIRECT_LOSSES, STAGES, PairingError, VAEDirectDenoiser, check_pairing, load_teacher_vae
from medden.networks.zoo import DENOISER_NETWORKS, count_parameters, denoiser_network, model_size_bytes, network_device

__all__ = [
    "DIRECT_LOSSES",
    "GENERAL_CHANNELS",
    "NOISE_MODELS",
    "STAGES",
    "DirectDenoiser",
    "FastResUNet",
    "BilinearResUNet",
    "SliceStackDenoiser",
    "stack_denoiser_net",
    "widen_to_stack",
    "ARCHITECTURES",
    "GaussianMixtureNoiseModel",
    "GaussianNoiseModel",
    "KspaceDenoiser",
    "LadderVAE",
    "NoiseModel",
    "PairingError",
    "PoissonGaussianNoiseModel",
    "ResidualDenoiser",
    "VAEDirectDenoiser",
    "VAEKeys",
    "VarianceStabilized",
    "build_noise_model",
    "calibrated_noise_model",
    "check_pairing",
    "estimate_poisson_gaussian",
    "gaussian_kl",
    "load_teacher_vae",
    "noise_model_template",
    "general_denoiser_net",
    "CBDNet",
    "ConvAutoencoder",
    "DENOISER_NETWORKS",
    "DnCNN",
    "PRIDNet",
    "PadToMultiple",
    "RIDNet",
    "count_parameters",
    "denoiser_network",
    "model_size_bytes",
    "network_device",
    "COUPLINGS",
    "FlowEncoding",
    "ImageFlow",
    "ResNetDenoiser",
    "bits_per_dim",
    "dequantize",
    "dequantized_bits_per_dim",
]
