"""Model files: safetensors weights with their full config as JSON in the metadata.

A model file alone rebuilds a ready network: the metadata key ``palette_cli`` holds
``{"format": "palette-cli", "format_version": N, "net": {...}, "schedule": {...}, "tasks": [...],
"training": {...}}``. Files from a newer format version are refused with a clear message rather
than misread. No pickle is involved anywhere in loading.
"""

from __future__ import annotations

import hashlib
import json
import struct
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
# Architecture sanity limits: a model file whose config asks for more is refused before a network is built
# (a header claiming num_res_blocks=100000 would otherwise take hours to build). Far above any real model.
NET_LIMITS = {"image_size": 16384, "cond_channels": 64, "out_channels": 64, "model_channels": 4096,
              "num_res_blocks": 32, "num_heads": 1024, "num_head_channels": 4096, "num_groups": 4096,
              "num_classes": 4096}
MAX_LEVELS = 8  # entries of channel_mult
MAX_CHANNEL_MULT = 64
# A two-stage fill's coarse network (palette_cli.tasks.coarse): its tensors' prefix, its config's key in ``extra``.
COARSE_PREFIX = "coarse."
COARSE_KEY = "coarse"


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

    @classmethod
    def from_metadata(cls, meta: dict[str, Any], format_version: int = FORMAT_VERSION) -> "ModelInfo":
        """The inverse of :meth:`to_metadata` for a checked config (absent sections empty)."""
        return cls(net=meta["net"], schedule=meta.get("schedule") or {}, tasks=list(meta.get("tasks") or []),
                   training=meta.get("training") or {}, extra=meta.get("extra") or {}, format_version=format_version)

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
    from .imageio import write_bytes_atomic

    write_bytes_atomic(path, _canonical_header(save(tensors, metadata=meta)))
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(value: Any, length: int | None = None) -> bool:
    return (isinstance(value, list) and all(_is_int(v) and v >= 0 for v in value)
            and (length is None or len(value) == length))


def _read_header(path: Path) -> dict[str, Any]:
    """The safetensors header of a model file, checked for shape and types (every tensor entry has a
    dtype, a shape and data offsets inside the file; ``__metadata__`` maps strings to strings)."""
    from .imageio import check_regular_file

    check_regular_file(path, CheckpointError, "model file")
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
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: corrupt safetensors header (__metadata__ is not a map of strings)")
    ends = [0]
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str) and _int_list(entry.get("shape"))
                and _int_list(entry.get("data_offsets"), 2) and entry["data_offsets"][0] <= entry["data_offsets"][1]):
            raise CheckpointError(f"{path}: corrupt safetensors header (tensor {name!r} lacks a valid dtype, shape "
                                  "or data_offsets)")
        ends.append(entry["data_offsets"][1])
    if 8 + n + max(ends) > size:
        raise CheckpointError(f"{path}: file is truncated ({size} bytes, needs {8 + n + max(ends)})")
    return header


def _check_net(path: Path, net: dict[str, Any]) -> None:
    """Types and sanity limits of a network config, so that building it can neither crash nor run away.
    Other architectures than the U-Net check their own fields and limits when their config is built."""
    if net.get("arch", "unet") != "unet":
        return
    for key, limit in NET_LIMITS.items():
        value = net.get(key, 1)
        if key == "num_head_channels" and value is None:
            continue
        low = 0 if key == "num_classes" else 1
        if not _is_int(value) or not low <= value <= limit:
            raise CheckpointError(f"{path}: invalid network config ({key} = {value!r}; expected an integer "
                                  f"from {low} to {limit})")
    mult, attention = net.get("channel_mult", [1]), net.get("attention_resolutions", [])
    if not (_int_list(mult) and 1 <= len(mult) <= MAX_LEVELS and all(1 <= m <= MAX_CHANNEL_MULT for m in mult)):
        raise CheckpointError(f"{path}: invalid network config (channel_mult = {mult!r}; expected 1 to "
                              f"{MAX_LEVELS} integers from 1 to {MAX_CHANNEL_MULT})")
    if not _int_list(attention):
        raise CheckpointError(f"{path}: invalid network config (attention_resolutions = {attention!r})")
    for key in ("resblock_updown", "conv_resample", "use_scale_shift_norm"):
        if not isinstance(net.get(key, True), bool):
            raise CheckpointError(f"{path}: invalid network config ({key} = {net[key]!r}; expected true or false)")
    if not isinstance(net.get("dropout", 0.0), (int, float)) or isinstance(net.get("dropout"), bool):
        raise CheckpointError(f"{path}: invalid network config (dropout = {net['dropout']!r})")


def read_info(path: str | Path) -> ModelInfo:
    """Validate a model file's header and return its config, without reading the weights."""
    path = Path(path)
    raw = (_read_header(path).get("__metadata__") or {}).get(META_KEY)
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without a palette-cli config (not a palette-cli model)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: corrupt palette-cli config in the metadata") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: corrupt palette-cli config in the metadata (not a JSON object)")
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
    _check_sections(path, meta)
    coarse = (meta.get("extra") or {}).get(COARSE_KEY)
    if coarse is not None:
        if not (isinstance(coarse, dict) and isinstance(coarse.get("net"), dict) and _is_int(coarse.get("size"))
                and 8 <= coarse["size"] <= NET_LIMITS["image_size"]):
            raise CheckpointError(f"{path}: corrupt palette-cli config (its coarse stage needs a network section "
                                  "and a working size from 8 px)")
        _check_sections(path, coarse, "the coarse stage's ")
    return ModelInfo.from_metadata(meta, format_version=version)


def _check_sections(path: Path, meta: dict[str, Any], whose: str = "") -> None:
    """The types of a config's sections (of the model, or ``whose`` = its coarse stage's) and its network."""
    for key, kind in (("schedule", dict), ("training", dict), ("extra", dict), ("tasks", list)):
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise CheckpointError(f"{path}: corrupt palette-cli config ({whose}{key} is a {type(meta[key]).__name__}, "
                                  f"not a {'JSON object' if kind is dict else 'list'})")
    if not all(isinstance(t, str) for t in meta.get("tasks") or []):
        raise CheckpointError(f"{path}: corrupt palette-cli config ({whose}tasks must be names)")
    _check_net(path, meta["net"])


def storage_dtype(path: str | Path) -> str:
    """The precision a model file's floating tensors are stored in (``fp32``, ``fp16`` or ``bf16``), as its
    header records it, else as its first floating tensor shows."""
    header = _read_header(Path(path))
    recorded = (header.get("__metadata__") or {}).get("storage_dtype")
    if recorded in STORAGE_DTYPES:
        return recorded
    names = {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}
    for key, entry in header.items():
        if key != "__metadata__" and isinstance(entry, dict) and entry.get("dtype") in names:
            return names[entry["dtype"]]
    return "fp32"


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

    Returns ``(net, info)``. A file with a coarse stage (:mod:`palette_cli.tasks.coarse`) keeps that
    network's tensors under ``coarse.``: they are checked and read by :func:`load_coarse`, not here.
    """
    info = read_info(path)
    net = _build_and_load(Path(path), info.net, "", COARSE_PREFIX if COARSE_KEY in info.extra else None)
    return net.to(device).eval(), info


def load_coarse(path: str | Path, info: ModelInfo, device: str | torch.device = "cpu"):
    """The coarse stage of a model file whose header ``info`` records one: ``(net, coarse_info, size)``,
    the network in eval mode as float32; None for a file without a coarse stage."""
    record = info.extra.get(COARSE_KEY)
    if record is None:
        return None
    coarse_info = ModelInfo.from_metadata(record)
    net = _build_and_load(Path(path), coarse_info.net, COARSE_PREFIX, None)
    return net.to(device).eval(), coarse_info, int(record["size"])


def _build_and_load(path: Path, net_config: dict[str, Any], prefix: str, exclude: str | None) -> torch.nn.Module:
    """The network of ``net_config`` with the file's tensors under ``prefix`` (less those under ``exclude``)."""
    from .nets import build_network, network_config

    try:
        config = network_config(net_config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid network config ({e})") from None
    _check_tensors(path, config, prefix, exclude)
    state = {k[len(prefix):]: v for k, v in load_state_dict(path).items()
             if k.startswith(prefix) and not (exclude and k.startswith(exclude))}
    broken = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if broken is not None:
        raise CheckpointError(f"{path}: tensor {prefix + broken!r} holds NaN or infinite values; the model file "
                              "is damaged")
    net = build_network(config)
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the network config ({str(e).splitlines()[0]})") from None
    return net


def _check_tensors(path: Path, config, prefix: str = "", exclude: str | None = None) -> None:
    """Compare the file's tensor names and shapes (those under ``prefix``, less those under ``exclude``)
    with those of the network its config describes, before any weight is read: a network built on the
    ``meta`` device allocates nothing."""
    from .nets import build_network

    with torch.device("meta"):
        expected = {prefix + k: list(v.shape) for k, v in build_network(config).state_dict().items()}
    found = {k: v["shape"] for k, v in _read_header(Path(path)).items()
             if k != "__metadata__" and k.startswith(prefix) and not (exclude and k.startswith(exclude))}

    def more(names: list[str]) -> str:
        return f" (and {len(names) - 1} more)" if len(names) > 1 else ""

    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing:
        raise CheckpointError(f"{path}: weights do not match the network config: tensor {missing[0]!r} is "
                              f"missing{more(missing)}")
    if unexpected:
        raise CheckpointError(f"{path}: weights do not match the network config: unexpected tensor "
                              f"{unexpected[0]!r}{more(unexpected)}")
    wrong = [k for k in sorted(expected) if expected[k] != found[k]]
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"{path}: weights do not match the network config: tensor {k!r} has shape "
                              f"{found[k]} in the file, the config expects {expected[k]}{more(wrong)}")


def file_hash(path: str | Path, length: int = 12) -> str:
    """Short SHA-256 of a file, recorded in outputs so they can be traced to their model."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]
