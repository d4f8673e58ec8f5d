"""Distributed setup: torchrun's environment, the process group, barriers and rank-0 decisions."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import torch

from ..devices import resolve_device
from .config import ConfigError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK; gloo on CPU, NCCL on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    try:
        device = resolve_device(device_name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local), device


def barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


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
