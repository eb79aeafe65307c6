"""Named dictionary keys used by medden's dictionary transforms and engines.

Keys are plain strings so they interoperate with MONAI dictionaries; use these constants
rather than spelling the strings, so a rename happens in one place.
"""


class Keys:
    """Default keys of the data dictionaries medden produces."""

    IMAGE = "image"
    CLEAN = "clean"
    INPUT = "input"
    TARGET = "target"
    INPUT_MASK = "input_mask"
    TARGET_MASK = "target_mask"
    KSPACE = "kspace"
    KSPACE_MASK = "kspace_mask"
    ZERO_FILLED = "zero_filled"
    TARGET_KSPACE = "target_kspace"
    TARGET_KSPACE_MASK = "target_kspace_mask"
    TARGET_ZERO_FILLED = "target_zero_filled"
    #: an image's noise standard deviation (a number), e.g. for :class:`~medden.transforms.R2RPaird`
    NOISE_SIGMA = "noise_sigma"


#: Suffix added to a key to name the key that receives that image's observation mask.
MASK_SUFFIX = "_mask"
