"""Networks: thin additions to ``monai.networks`` (reuse MONAI's U-Nets where they fit)."""

from medden.networks.general import GENERAL_CHANNELS, FastResUNet, general_denoiser_net
from medden.networks.kspace import KspaceDenoiser
from medden.networks.residual import ResidualDenoiser
from medden.networks.stabilized import VarianceStabilized

__all__ = ["GENERAL_CHANNELS", "FastResUNet", "KspaceDenoiser", "ResidualDenoiser", "VarianceStabilized", "general_denoiser_net"]
