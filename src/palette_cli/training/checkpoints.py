"""Run checkpoints: ``RUN_DIR/checkpoints/step-N.pt``, written atomically, listed, read back.

A checkpoint is a dict of plain types and tensors (read with ``weights_only``): the config, network and
schedule, step, data position, wall time and stints, model / EMA / optimiser state and the RNG states.
(Model files for inference are another format: :mod:`palette_cli.checkpoint`.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ConfigError

CHECKPOINT_VERSION = 2  # 2: "position" counts samples (1 counted micro-batches)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through the project's atomic writer: a killed run never leaves half a checkpoint."""
    from ..imageio.writing import atomic_write  # looked up where tests patch it

    atomic_write(path, lambda f: torch.save(obj, f))


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    d = Path(run_dir) / "checkpoints"
    found = []
    for p in d.glob("step-*.pt") if d.is_dir() else []:
        try:
            found.append((int(p.stem.split("-", 1)[1]), p))
        except ValueError:
            continue
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir_or_file: str | Path) -> Path:
    """A checkpoint file itself, or the newest checkpoint of a run folder."""
    p = Path(run_dir_or_file)
    if p.is_file():
        return p
    if not p.exists():
        raise ConfigError(f"{p}: no such run folder or checkpoint")
    ckpts = list_checkpoints(p)
    if not ckpts:
        raise ConfigError(f"{p}: no checkpoints in this run folder")
    return ckpts[-1]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint (weights_only: no arbitrary code runs)."""
    from ..pickles import PickleLoadError, load_plain

    try:
        ckpt = load_plain(path, "training checkpoint")
    except PickleLoadError as e:
        raise ConfigError(str(e)) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "palette-cli-train":
        raise ConfigError(f"{path}: not a palette-cli training checkpoint")
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise ConfigError(f"{path}: training checkpoint version {ckpt.get('version')} is newer than this palette-cli")
    return ckpt


def state_hash(module: nn.Module) -> str:
    """SHA-256 over a module's state (names, dtypes and bytes): equal hashes = identical weights."""
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(str(v.dtype).encode())
        h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()


def python_state_to_list(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def python_state_from_list(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])
