"""Training and evaluation steps, built by factories (the ignite way): one closure each."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from monai.utils import CommonKeys

from medden.core.keys import Keys

__all__ = ["make_noise_map_step", "make_prepare_batch", "make_train_step", "make_vae_direct_step"]


def to_engine_device(value: Any, engine) -> Any:
    if value is None:
        return None
    return value.to(engine.state.device, non_blocking=engine.non_blocking)


def make_train_step(input_key: str = Keys.INPUT, target_key: str = Keys.TARGET,
                    mask_key: str | None = Keys.TARGET_MASK, loss_kwargs: Mapping[str, str] | None = None) -> Callable:
    """Build the ``iteration_update`` of a ``monai.engines.SupervisedTrainer``.

    The step feeds ``batch[input_key]`` through ``engine.inferer`` and ``engine.network`` and
    minimises ``engine.loss_function(pred, batch[target_key], batch.get(mask_key))`` (the
    medden loss signature, see :mod:`medden.losses`). It serves recorruption (``y' -> y``),
    Noise2Noise (``a -> b``) and supervised (``y -> x``) training alike: only the batch
    contents differ. ``loss_kwargs`` maps further loss keyword arguments to batch keys, e.g.
    ``{"input_kspace": "kspace", "input_mask": "kspace_mask"}`` for
    :class:`~medden.losses.FourierDomainLoss`. Mixed precision follows ``engine.amp``.

    Returns:
        ``step(engine, batch) -> dict`` with MONAI's ``image``, ``label``, ``pred`` and
        ``loss`` (a detached scalar tensor) so MONAI/ignite handlers read it as usual.
    """

    def step(engine, batch: dict) -> dict:
        inputs, targets = to_engine_device(batch[input_key], engine), to_engine_device(batch[target_key], engine)
        mask = to_engine_device(batch.get(mask_key) if mask_key is not None else None, engine)
        extra = {name: to_engine_device(batch[key], engine) for name, key in (loss_kwargs or {}).items()}

        def losses() -> dict:
            preds = engine.inferer(inputs, engine.network)
            return {CommonKeys.PRED: preds, CommonKeys.LOSS: engine.loss_function(preds, targets, mask, **extra)}

        return _step_output(inputs, targets, optimiser_step(engine, losses))

    return step


def _step_output(inputs: torch.Tensor, targets: torch.Tensor, out: dict) -> dict:
    """What a supervised step returns: MONAI's ``image``, ``label``, ``pred`` and a detached ``loss``."""
    return {CommonKeys.IMAGE: inputs, CommonKeys.LABEL: targets, CommonKeys.PRED: out[CommonKeys.PRED],
            CommonKeys.LOSS: out[CommonKeys.LOSS].detach()}


def optimiser_step(engine, losses: Callable[[], dict]) -> dict:
    """One optimiser step on ``losses()[CommonKeys.LOSS]``, in train mode, autocast and
    gradient scaling following ``engine.amp``; returns what ``losses()`` returned."""
    engine.network.train()
    engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
    device_type = engine.state.device.type if engine.state.device is not None else "cpu"
    with torch.autocast(device_type=device_type, enabled=bool(engine.amp)):
        out = losses()
    loss = out[CommonKeys.LOSS]
    if engine.amp and engine.scaler is not None:
        engine.scaler.scale(loss).backward()
        engine.scaler.step(engine.optimizer)
        engine.scaler.update()
    else:
        loss.backward()
        engine.optimizer.step()
    return out


def make_vae_direct_step(stage: str = "cotrain", input_key: str = Keys.INPUT) -> Callable:
    """Build the ``iteration_update`` for a :class:`~medden.networks.VAEDirectDenoiser`.

    The network computes its own losses (``network(x, stage=stage)``, see
    :meth:`~medden.networks.VAEDirectDenoiser.forward`): the ELBO of the VAE and/or the
    Direct Denoiser's L2/L1 loss towards one detached posterior sample per input. One
    optimiser steps on their sum; the two networks share no parameters, so this equals
    separate updates. Only ``batch[input_key]`` (noisy images) is read: no clean data.

    Returns:
        ``step(engine, batch) -> dict`` with MONAI's ``image`` and ``loss`` and each detached
        loss part (``elbo_loss``, ``kl``, ``log_likelihood``, ``direct_loss`` as computed).
    """

    def step(engine, batch: dict) -> dict:
        inputs = to_engine_device(batch[input_key], engine)
        out = optimiser_step(engine, lambda: engine.network(inputs, stage=stage))
        return {CommonKeys.IMAGE: inputs, **{key: value.detach() for key, value in out.items()}}

    return step


def make_noise_map_step(input_key: str = Keys.INPUT, target_key: str = Keys.TARGET, window: int = 7) -> Callable:
    """Build the supervised ``iteration_update`` for a network that also estimates a noise map
    (:class:`~medden.networks.CBDNet`: ``network(x, return_noise_map=True)``).

    The loss is called as ``loss(pred, clean, None, noise_map=estimate, true_noise_map=truth)``
    (:class:`~medden.losses.CBDNetLoss`), the truth being the local RMS of the known noise
    ``input - target`` over ``window`` x ``window`` pixels
    (:func:`~medden.losses.local_noise_level`), so any noise, even real noisy/clean pairs,
    gives the estimator a target.

    Returns:
        ``step(engine, batch) -> dict`` with MONAI's ``image``, ``label``, ``pred`` and ``loss``.
    """
    from medden.losses import local_noise_level

    def step(engine, batch: dict) -> dict:
        inputs, targets = to_engine_device(batch[input_key], engine), to_engine_device(batch[target_key], engine)
        true_map = local_noise_level(inputs, targets, window)

        def losses() -> dict:
            preds, noise_map = engine.inferer(inputs, engine.network, return_noise_map=True)
            loss = engine.loss_function(preds, targets, None, noise_map=noise_map, true_noise_map=true_map)
            return {CommonKeys.PRED: preds, CommonKeys.LOSS: loss}

        return _step_output(inputs, targets, optimiser_step(engine, losses))

    return step


def make_prepare_batch(input_key: str = Keys.INPUT, target_key: str = Keys.CLEAN,
                       network_kwargs: Mapping[str, str] | None = None) -> Callable:
    """Build a MONAI ``prepare_batch`` that reads ``(input, target)`` from named keys.

    Used by evaluators: ``batch[input_key]`` is denoised and compared with ``batch[target_key]``
    (the clean image when the validation set has one). ``network_kwargs`` maps keyword
    arguments of the network's ``forward`` to batch keys (e.g. the measured k-space and mask
    for data consistency, see :class:`~medden.networks.KspaceDenoiser`).
    """

    def prepare_batch(batch: dict, device=None, non_blocking: bool = False, **kwargs):
        inputs = batch[input_key].to(device, non_blocking=non_blocking)
        targets = batch[target_key].to(device, non_blocking=non_blocking)
        if not network_kwargs:
            return inputs, targets
        extra = {name: batch[key].to(device, non_blocking=non_blocking) for name, key in network_kwargs.items()}
        return inputs, targets, (), extra

    return prepare_batch
