"""MONAI-style transforms: corruptions, training pairs, recorruption and k-space undersampling.

Array classes do the maths; each ``Xd`` dictionary twin (aliases ``XD``, ``XDict``) routes keys.
"""

from medden.transforms.corruption import (
    RandBernoulliNoise,
    RandCorruption,
    RandGaussianSigmaNoise,
    RandImpulseNoise,
    RandPoissonGaussianNoise,
    RandPoissonNoise,
    RandRicianSigmaNoise,
)
from medden.transforms.corruption_dict import *  # noqa: F401,F403  (the Xd/XD/XDict names)
from medden.transforms.corruption_dict import __all__ as _corruption_dict_all
from medden.transforms.ct_noise import *  # noqa: F401,F403
from medden.transforms.ct_noise import __all__ as _ct_noise_all
from medden.transforms.intensity import *  # noqa: F401,F403
from medden.transforms.intensity import __all__ as _intensity_all
from medden.transforms.kspace import *  # noqa: F401,F403
from medden.transforms.kspace import __all__ as _kspace_all
from medden.transforms.kspace_masks import *  # noqa: F401,F403
from medden.transforms.kspace_masks import __all__ as _kspace_masks_all
from medden.transforms.pairs import *  # noqa: F401,F403
from medden.transforms.pairs import __all__ as _pairs_all
from medden.transforms.recorruption import *  # noqa: F401,F403
from medden.transforms.recorruption import __all__ as _recorruption_all
from medden.transforms.scanner_noise import *  # noqa: F401,F403
from medden.transforms.scanner_noise import __all__ as _scanner_noise_all
from medden.transforms.scanner_noise_dict import *  # noqa: F401,F403
from medden.transforms.scanner_noise_dict import __all__ as _scanner_noise_dict_all
from medden.transforms.stacks import *  # noqa: F401,F403
from medden.transforms.stacks import __all__ as _stacks_all
from medden.transforms.registry import CORRUPTIONS, make_corruption
from medden.transforms.text_overlay import RandTextOverlay

__all__ = [
    "RandCorruption",
    "RandGaussianSigmaNoise",
    "RandPoissonNoise",
    "RandBernoulliNoise",
    "RandImpulseNoise",
    "RandPoissonGaussianNoise",
    "RandRicianSigmaNoise",
    "RandTextOverlay",
    "CORRUPTIONS",
    "make_corruption",
    *_corruption_dict_all,
    *_pairs_all,
    *_intensity_all,
    *_recorruption_all,
    *_ct_noise_all,
    *_scanner_noise_all,
    *_scanner_noise_dict_all,
    *_kspace_masks_all,
    *_kspace_all,
    *_stacks_all,
]
