"""Distributed training helpers: one process per device, gloo on CPU, nccl on GPU.

Run with ``torchrun --nproc_per_node N ...``; torchrun sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``. Without them every helper here falls back to a single process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = ["cleanup", "default_device", "init_distributed", "is_distributed", "is_main_process", "make_loader",
           "wrap_ddp"]


def is_distributed() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """True for rank 0, or when not distributed: the process that logs and writes files."""
    return not is_distributed() or dist.get_rank() == 0


def default_device() -> torch.device:
    """``cuda:<LOCAL_RANK>`` when a GPU is present, else ``cpu``."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device("cpu")


def init_distributed() -> bool:
    """Join the process group torchrun set up (nccl with GPUs, gloo without).

    Returns:
        True if running distributed (WORLD_SIZE > 1), False for a single process.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not is_distributed():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(default_device())
        dist.init_process_group(backend=backend)
    return True


def wrap_ddp(network: torch.nn.Module, device: torch.device | None = None) -> torch.nn.Module:
    """Move ``network`` to ``device`` and wrap it in DDP when distributed, else just move it."""
    device = device or default_device()
    network = network.to(device)
    if not is_distributed():
        return network
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(network, device_ids=device_ids)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader that shards ``dataset`` across ranks when distributed.

    MONAI's trainers call ``sampler.set_epoch`` at every epoch, so shuffling differs per epoch.
    """
    sampler = DistributedSampler(dataset, shuffle=shuffle) if is_distributed() else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=num_workers, drop_last=drop_last, pin_memory=torch.cuda.is_available())


def cleanup(wait_for_all: bool = False) -> None:
    """Leave the process group, if any.

    Args:
        wait_for_all: first wait (a barrier) until every rank has arrived, so that no rank tears
            its gloo/NCCL connections down while another still uses them (a rank that leaves
            early can abort in gloo's teardown). Use it at the normal end of a run; leave it
            off on an error path, where another rank may never arrive.
    """
    if is_distributed():
        if wait_for_all:
            dist.barrier()
        dist.destroy_process_group()
