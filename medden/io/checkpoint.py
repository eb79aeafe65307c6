"""Saving and loading checkpoints: atomic writes, ``weights_only`` loads, clear errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medden.io.files import atomic_write

__all__ = ["CheckpointError", "load_checkpoint", "load_network_weights", "publish_model", "save_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or that does not fit the network."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (tensors, numbers, strings, nested dicts/lists) atomically with torch.save.

    The folder is created if needed; an existing file is replaced only once the new one is
    complete, so an interrupted save never leaves a torn checkpoint.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: torch.save(state, tmp), overwrite=True)


def _unpickling_reason(err: Exception) -> str:
    """The line of torch's weights_only refusal that says what it met (not its advice to load unrestricted)."""
    paragraphs = [" ".join(p.split()) for p in str(err).split("\n\n") if p.strip()]
    reasons = [p for p in paragraphs if not p.startswith(("Weights only load failed", "Check the documentation"))]
    return (reasons or paragraphs or ["no detail"])[0][:200]


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is not a readable PyTorch checkpoint (truncated, corrupt,
            or holding arbitrary Python objects that ``weights_only`` refuses).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; train the model or give the right path.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # weights_only met something that is not a tensor or a plain value
        raise CheckpointError(
            f"refusing to load checkpoint {str(path)!r}: it holds Python objects that are not weights (torch.load "
            f"with weights_only=True stopped at: {_unpickling_reason(err)}); loading such a file unrestricted can "
            "run arbitrary code, so medden never does. Use a checkpoint that holds only a state dict of tensors."
        ) from None
    except Exception as err:  # torch raises many types for damaged files (IndexError, EOFError, ...)
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable PyTorch weights file ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); it may be truncated or corrupt."
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(state).__name__}, expected a dict of tensors.")
    return state


def load_network_weights(network: nn.Module, checkpoint: str | os.PathLike | dict[str, Any],
                         key: str | None = None) -> nn.Module:
    """Load weights into ``network`` strictly, explaining any mismatch.

    Args:
        network: the module to fill (a ``DistributedDataParallel`` wrapper is unwrapped).
        checkpoint: a path, or an already loaded dict.
        key: the entry holding the network's state dict (e.g. ``"network"`` in a training
            checkpoint); None if the checkpoint is the state dict itself.

    Raises:
        CheckpointError: the checkpoint lacks ``key`` or does not match the architecture.
    """
    name = str(checkpoint) if not isinstance(checkpoint, dict) else "the given state"
    state = load_checkpoint(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
    if key is not None:
        if key not in state:
            raise CheckpointError(f"checkpoint {name!r} has no entry {key!r}; it holds {sorted(state)}.")
        state = state[key]
    target = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
    own = target.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state)
                        if hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or mismatched:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

        details = [f"{label}: {few(keys)}" for label, keys in
                   (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)) if keys]
        raise CheckpointError(
            f"checkpoint {name!r} was saved from a different network than {type(target).__name__} "
            f"({'; '.join(details)}); use the network definition it was trained with."
        )
    target.load_state_dict(state)
    return network


def publish_model(source: str | os.PathLike, destination: str | os.PathLike) -> Path | None:
    """Copy trained weights (e.g. ``best.pt``) to a bundle's ``models/model.pt``, atomically.

    The weights are checked to load with ``weights_only=True`` first. Under
    ``torch.distributed`` only rank 0 writes; other ranks return None.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return None  # rank 0 wrote the source; other ranks need not (and must not race to) read it
    return save_checkpoint(load_checkpoint(source), destination)
