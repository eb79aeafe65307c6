"""Small shared helpers for the tests (not fixtures: plain functions)."""

import numpy as np
import torch


def as_numpy(x):
    """Return ``x`` (numpy or torch, MetaTensor included) as a numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_backend(x: np.ndarray, backend: str):
    """``x`` as numpy (``"numpy"``) or as a plain torch tensor (``"torch"``)."""
    return torch.as_tensor(x) if backend == "torch" else x
