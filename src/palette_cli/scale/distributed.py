"""torchrun's environment and the process group, shared by training (DDP) and sharded inference.

torchrun starts one process per device and tells each its place through ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``; without torchrun a process is rank 0 of 1. A CUDA rank runs on
``cuda:LOCAL_RANK``; CPU ranks on one machine split its cores between them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from .devices import resolve_device


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> Dist:
    """This process's place as torchrun describes it (rank 0 of 1 without torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")), local_world)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def init_distributed(device_name: str, *, backend: str | None = None,
                     timeout: timedelta | None = None) -> tuple[Dist, torch.device]:
    """Join torchrun's process group (when there is more than one rank) and pick this rank's device.

    The backend defaults to NCCL on CUDA and gloo on CPUs; a CUDA rank gets ``cuda:LOCAL_RANK``. A bad or
    missing device is a ``ValueError`` with a one-line message.
    """
    d = dist_from_env()
    device = resolve_device(device_name)
    if d.world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            if d.local_rank >= torch.cuda.device_count():
                raise ValueError(f"local rank {d.local_rank} runs on cuda:{d.local_rank} but this machine has only "
                                 f"{torch.cuda.device_count()} CUDA GPU(s): start at most that many processes on it")
            device = torch.device("cuda", d.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            kwargs = {"timeout": timeout} if timeout is not None else {}
            dist.init_process_group(backend or ("nccl" if device.type == "cuda" else "gloo"), **kwargs)
    return d, device


def split_cpu_threads(d: Dist) -> int:
    """Give this CPU rank its share of the machine's cores (torchrun otherwise leaves each rank one thread)."""
    threads = max(1, usable_cores() // max(1, d.local_world))
    torch.set_num_threads(threads)
    return threads


def barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(d: Dist, obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if d.world == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def gather_objects(d: Dist, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if d.world == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def close(d: Dist) -> None:
    """Leave the process group (nothing without one)."""
    if d.world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
