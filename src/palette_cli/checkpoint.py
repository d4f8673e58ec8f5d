"""Model files: safetensors weights with their full config as JSON in the metadata.

A model file alone rebuilds a ready network: the metadata key ``palette_cli`` holds
``{"format": "palette-cli", "format_version": N, "net": {...}, "schedule": {...}, "tasks": [...],
"training": {...}}``. Files from a newer format version are refused with a clear message rather
than misread. No pickle is involved anywhere in loading.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

FORMAT = "palette-cli"
FORMAT_VERSION = 1
META_KEY = "palette_cli"
STORAGE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A model file that cannot be used; its message is one line naming the file."""


@dataclass
class ModelInfo:
    """Everything a model file says about itself besides the weights."""

    net: dict[str, Any]
    schedule: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "net": self.net,
            "schedule": self.schedule,
            "tasks": self.tasks,
            "training": self.training,
            "extra": self.extra,
        }


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(path: str | Path, info: ModelInfo, state_dict: dict[str, Tensor], dtype: str = "fp32") -> Path:
    """Write weights + config atomically; floating tensors are stored as ``dtype`` (fp32/fp16/bf16)."""
    from safetensors.torch import save

    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(STORAGE_DTYPES)}")
    target = STORAGE_DTYPES[dtype]
    tensors = {
        k: (v.detach().to("cpu", target) if v.is_floating_point() else v.detach().cpu()).contiguous().clone()
        for k, v in state_dict.items()
    }
    meta = {META_KEY: json.dumps(info.to_metadata(), sort_keys=True), "storage_dtype": dtype}
    path = Path(path)
    _atomic_write_bytes(path, _canonical_header(save(tensors, metadata=meta)))
    return path


def _canonical_header(blob: bytes) -> bytes:
    """The same safetensors file with its JSON header in one fixed key order. The serializer keeps the
    metadata in a hash map, so two saves of the same model could differ byte for byte (and in hash);
    tensor entries carry explicit data offsets, so reordering the header changes nothing else."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    ordered = {"__metadata__": dict(sorted(header.pop("__metadata__", {}).items()))}
    ordered.update(sorted(header.items()))
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data section stays 8-byte aligned, as the serializer leaves it
    return len(text).to_bytes(8, "little") + text + blob[8 + n:]


def read_info(path: str | Path) -> ModelInfo:
    """Validate a model file's header and return its config, without reading the weights."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: model file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a model file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: not a safetensors model file (too short: {size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > _MAX_HEADER or 8 + n > size:
            if path.suffix in (".pth", ".pt", ".ckpt", ".bin"):
                raise CheckpointError(
                    f"{path}: looks like a PyTorch pickle, not a safetensors model; convert it with `palette convert`"
                )
            raise CheckpointError(f"{path}: not a safetensors model file (or truncated)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{path}: corrupt safetensors header") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header")
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if 8 + n + max(ends, default=0) > size:
        raise CheckpointError(f"{path}: file is truncated ({size} bytes, needs {8 + n + max(ends)})")
    raw = (header.get("__metadata__") or {}).get(META_KEY)
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without a palette-cli config (not a palette-cli model)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: corrupt palette-cli config in the metadata") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a palette-cli model (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: model format version {version} is newer than this palette-cli understands "
            f"({FORMAT_VERSION}); upgrade palette-cli"
        )
    if not isinstance(meta.get("net"), dict):
        raise CheckpointError(f"{path}: model config has no network section")
    return ModelInfo(
        net=meta["net"],
        schedule=meta.get("schedule") or {},
        tasks=list(meta.get("tasks") or []),
        training=meta.get("training") or {},
        extra=meta.get("extra") or {},
        format_version=version,
    )


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The raw tensors of a (validated) model file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: cannot read weights ({str(e).splitlines()[0]})") from None


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild the network of a model file, weights loaded, in eval mode, as float32.

    Returns ``(net, info)``.
    """
    from .nets import UNet, UNetConfig

    info = read_info(path)
    try:
        config = UNetConfig.from_dict(info.net)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid network config ({e})") from None
    state = load_state_dict(path)
    net = UNet(config)
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the network config ({str(e).splitlines()[0]})") from None
    return net.to(device).eval(), info


def file_hash(path: str | Path, length: int = 12) -> str:
    """Short SHA-256 of a file, recorded in outputs so they can be traced to their model."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]
