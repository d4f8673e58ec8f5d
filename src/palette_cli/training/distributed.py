"""Distributed training: torchrun's ranks (the shared :mod:`palette_cli.scale.distributed`), rank-0 decisions."""

from __future__ import annotations

import platform

import torch

from ..scale.distributed import Dist, barrier
from ..scale.distributed import init_distributed as _init_distributed
from .config import ConfigError

__all__ = ["Dist", "all_reduce_mean", "any_rank", "barrier", "hardware", "init_distributed"]


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK; gloo on CPU, NCCL on CUDA."""
    try:
        return _init_distributed(device_name)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def any_rank(d: Dist, flag: bool, device: torch.device) -> bool:
    """True on every rank if the flag is set on rank 0 (decisions based on clocks / signals)."""
    if d.world == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


def hardware(device: torch.device, world: int) -> str:
    """The hardware of a stint, as a run records it (e.g. ``2× NVIDIA H100``)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    return f"{world}× {name}" if world > 1 else name


def all_reduce_mean(d: Dist, tensor: torch.Tensor) -> None:
    """Average ``tensor`` over the ranks, in place (gradients of a module DistributedDataParallel does not wrap)."""
    if d.world == 1:
        return
    import torch.distributed as dist

    dist.all_reduce(tensor)
    tensor.div_(d.world)
