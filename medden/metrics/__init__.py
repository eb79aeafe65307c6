"""Image-quality and fidelity measures.

``image_quality``: PSNR / SSIM with an explicit data range (computed by ``monai.metrics``) and
residual statistics; ``fidelity``: method-noise correlation and small-structure contrast; ``harm``:
no-reference checks that a denoiser made an image worse.
"""

from medden.metrics.harm import HarmFlag, change_to_noise, harm_flags, pattern_powers
from medden.metrics.fidelity import SmallStructures, contrast_to_noise, find_small_structures, method_noise_correlation
from medden.metrics.image_quality import mean_residual_statistics, psnr, residual_statistics, ssim

__all__ = ["HarmFlag", "SmallStructures", "change_to_noise", "contrast_to_noise", "find_small_structures", "harm_flags",
           "mean_residual_statistics", "method_noise_correlation", "pattern_powers", "psnr", "residual_statistics", "ssim"]
