"""Networks: thin additions to ``monai.networks`` (reuse MONAI's U-Nets where they fit)."""

from medden.networks.residual import ResidualDenoiser

__all__ = ["ResidualDenoiser"]
