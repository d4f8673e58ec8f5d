"""Ready-to-run networks for fast inference: channels_last weights and a mixed-precision autocast."""

from __future__ import annotations

import contextlib
import functools
import time
from pathlib import Path
from typing import Callable, ContextManager

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 / AMX), so bf16 autocast is a speed-up.

    Reads the CPU flags where the OS lists them; elsewhere times a bf16 against a float32 matmul.
    """
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        flags = set()
        for line in cpuinfo.read_text(errors="ignore").splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
                break
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    return _bf16_matmul_is_faster()


def _bf16_matmul_is_faster(n: int = 512, repeats: int = 5) -> bool:
    a = torch.randn(n, n)

    def best(x: torch.Tensor) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            x @ x
            times.append(time.perf_counter() - t0)
        return min(times)

    try:
        return best(a.bfloat16()) * 1.3 < best(a)
    except RuntimeError:
        return False


def resolve_precision(device: str | torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None``: plain float32).

    ``auto``: bf16 on CUDA GPUs that support it, else fp16; bf16 on CPUs with native bf16;
    float32 elsewhere (older CPUs, Apple MPS).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    kind = torch.device(device).type
    if precision != "auto":
        if precision == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("this CUDA GPU does not support bf16; use --precision fp16")
        return _DTYPES[precision]
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if kind == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


def inference_mode(net: nn.Module, device: str | torch.device = "cpu",
                   precision: str = "auto") -> tuple[nn.Module, Callable[[], ContextManager]]:
    """Move ``net`` to ``device`` in eval mode (channels_last on CPU/CUDA) and give its autocast.

    Returns ``(net, autocast)``; call the network inside ``with autocast():``. The output keeps
    the input's dtype. GroupNorm runs in float32 under any precision.
    """
    device = torch.device(device)
    dtype = resolve_precision(device, precision)
    net = net.to(device).eval()
    if device.type in ("cpu", "cuda"):
        net = net.to(memory_format=torch.channels_last)
    if dtype is None:
        return net, contextlib.nullcontext
    return net, functools.partial(torch.autocast, device_type=device.type, dtype=dtype)
