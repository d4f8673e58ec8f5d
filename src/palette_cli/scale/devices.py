"""Which torch device a ``--device`` option or a training config's ``device`` names."""

from __future__ import annotations

import torch

DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` name
    one, which must be present. A bad or missing device is a ``ValueError`` with a one-line message."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, colon, index = name.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (colon and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"unknown device {name!r}; choose {', '.join(DEVICE_NAMES)}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name} was asked for but no CUDA GPU is available")
        if colon and int(index) >= torch.cuda.device_count():
            raise ValueError(f"device {name} was asked for but there are only {torch.cuda.device_count()} CUDA GPU(s)")
    if kind == "mps" and not _mps_available():
        raise ValueError("device mps was asked for but Apple MPS is not available")
    return torch.device(name)
