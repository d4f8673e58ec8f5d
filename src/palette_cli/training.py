"""Training: config, loss, EMA, the loop, exact resume and DistributedDataParallel.

The core knows nothing of rich or typer: progress goes through a ``hook(event, record)`` callback and
metrics go to ``RUN_DIR/metrics.jsonl``. A run folder holds::

    config.json            the resolved config of the run
    metrics.jsonl          one JSON record per log / validation event
    checkpoints/step-N.pt  model, EMA, optimiser, step, RNG and data position (the last few kept)
    val/step-N.png         validation grid: input / output (EMA, DPM-Solver++ 20 steps) / target rows

Randomness is derived from ``(seed, rank, step)`` at every step, and the data order from
``(seed, epoch)``: a resumed run continues bit for bit as if it had never stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import math
import os
import platform
import random
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from .process import masked_loss  # noqa: F401  (re-exported: part of the training API)
from .schedule import PAPER_TRAIN, ScheduleConfig

OBJECTIVES = ("diffusion", "regression", "bridge")
LOSSES = ("l2", "l1")
PREDICTIONS = ("eps", "v")
OPTIMIZERS = ("adam", "adamw")
PRECISIONS = ("auto", "bf16", "fp32")
CHECKPOINT_VERSION = 2  # 2: "position" counts samples (1 counted micro-batches)

Hook = Callable[[str, dict], None]


class ConfigError(ValueError):
    """A user mistake in a training config or override; the message is one line."""


# --------------------------------------------------------------------------------------------- config


@dataclass
class DataConfig:
    """Where training images come from and how they are cropped."""

    source: str | list[str] = ""
    heldout: str | list[str] | None = None
    size: int = 64
    crop: str = "random"
    options: dict[str, Any] = field(default_factory=dict)  # passed on to ImageDataset


@dataclass
class OptimConfig:
    name: str = "adam"
    lr: float = 2e-4
    warmup_steps: int = 500
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float | None = 1.0


@dataclass
class TrainConfig:
    """Everything a training run needs; loadable from TOML / YAML / JSON with dotted-key overrides."""

    task: str = "colorize+inpaint+uncrop+jpeg"
    data: DataConfig = field(default_factory=DataConfig)
    net: str | dict[str, Any] = "small"
    schedule: dict[str, Any] = field(default_factory=lambda: PAPER_TRAIN.to_dict())
    objective: str = "diffusion"
    loss: str = "l2"
    prediction: str = "eps"  # what the network predicts in a diffusion model: the noise ε, or v = √γ·ε − √(1−γ)·y0
    process: dict[str, Any] = field(default_factory=dict)  # bridge settings: sigma, p_start
    batch_size: int = 32
    grad_accum: int = 1
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema_decay: float = 0.999
    steps: int = 100_000
    max_minutes: float | None = None
    precision: str = "auto"  # auto: bf16 autocast where the device computes bf16 natively, else fp32
    channels_last: bool = True
    device: str = "auto"
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    ckpt_every: int = 1000
    ckpt_minutes: float | None = 5.0
    keep_ckpts: int = 3
    val_every: int = 1000
    val_images: int = 6
    val_steps: int = 20
    threads: int | None = None
    adaptive_threads: bool = False  # shared CPU: 1 thread while other processes keep a core busy
    init: str | None = None  # a palette-cli model file to start from when there is no checkpoint to resume

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def schedule_config(self) -> ScheduleConfig:
        return ScheduleConfig.from_dict(self.schedule)

    def validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}")
        if self.prediction not in PREDICTIONS:
            raise ConfigError(f"prediction must be one of {', '.join(PREDICTIONS)}, not {self.prediction!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.optim.name not in OPTIMIZERS:
            raise ConfigError(f"optim.name must be one of {', '.join(OPTIMIZERS)}, not {self.optim.name!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        for name in ("batch_size", "grad_accum", "steps", "log_every", "ckpt_every", "val_every", "keep_ckpts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError("ema_decay must be in [0, 1)")
        if not self.data.source:
            raise ConfigError("data.source is not set (a folder, an image list file or a list of paths)")
        try:
            ScheduleConfig.from_dict(self.schedule)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"schedule: {e}") from None
        try:
            self.build_process()
        except (TypeError, ValueError) as e:
            raise ConfigError(f"process: {e}") from None

    def build_process(self):
        """The :class:`~palette_cli.process.Process` this config trains."""
        from .process import process_from_metadata

        return process_from_metadata({"objective": self.objective, "prediction": self.prediction,
                                      "process": self.process}, schedule=self.schedule)

    def autocast(self, device: torch.device) -> bool:
        """Whether to train under bf16 autocast: ``auto`` asks whether the device computes bf16 natively
        (on a CPU without AVX512-BF16/AMX, emulated bf16 made training ~10× slower than fp32)."""
        if self.precision != "auto":
            return self.precision == "bf16"
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        if device.type == "cpu":
            from .nets import cpu_has_fast_bf16

            return cpu_has_fast_bf16()
        return False


def _from_dict(cls: type, d: dict[str, Any], where: str = "") -> Any:
    """Build a (nested) config dataclass from a dict, refusing unknown keys."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where or 'config'} must be a table, not {type(d).__name__}")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in d.items():
        if key not in known:
            raise ConfigError(f"unknown config key {where + key!r}; known: {', '.join(known)}")
        default = known[key].default_factory() if known[key].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            value = _from_dict(type(default), value, f"{where}{key}.")
        kwargs[key] = value
    return cls(**kwargs)


def _parse_value(text: str) -> Any:
    """A TOML value (number, bool, string, array, inline table), or the raw text as a string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` to a raw config dict (before it becomes a :class:`TrainConfig`)."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} is not of the form key=value")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {assignment!r} has an empty key")
    node = raw
    for p in parts[:-1]:
        child = node.get(p)
        if p == "net" and node is raw and (child is None or isinstance(child, str)):
            child = {"preset": child or TrainConfig.net}  # a preset name becomes a table of overrides
        if child is None:
            child = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a table")
        node[p] = child
        node = child
    node[parts[-1]] = _parse_value(text.strip())


def read_config_file(path: str | Path) -> dict[str, Any]:
    """TOML, JSON, or YAML (if PyYAML is installed) → a raw dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ConfigError(f"{path}: YAML configs need PyYAML (pip install pyyaml)") from None
            return yaml.safe_load(text) or {}
    except ConfigError:
        raise
    except Exception as e:  # parse errors of any of the three formats
        raise ConfigError(f"{path}: cannot parse config ({str(e).splitlines()[0]})") from None
    raise ConfigError(f"{path}: config files must be .toml, .json, .yaml or .yml")


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                base: dict[str, Any] | None = None) -> TrainConfig:
    """Config file (optional) + ``key=value`` overrides → a validated :class:`TrainConfig`.

    Relative data paths in a config file are resolved against the current directory.
    """
    raw = copy.deepcopy(base) if base is not None else {}
    if path is not None:
        raw.update(read_config_file(path))
    for o in overrides:
        apply_override(raw, o)
    try:
        config = _from_dict(TrainConfig, raw)
    except TypeError as e:
        raise ConfigError(f"bad config: {e}") from None
    config.validate()
    return config


# ------------------------------------------------------------------------------------------- building


def build_net_config(spec: str | dict[str, Any]):
    """A preset name, ``{"preset": name, **overrides}``, or a full UNetConfig table."""
    from .nets import UNetConfig, preset

    try:
        if isinstance(spec, str):
            return preset(spec)
        spec = dict(spec)
        if "preset" in spec:
            base = preset(spec.pop("preset")).to_dict()
            base.update(spec)
            return UNetConfig.from_dict(base)
        return UNetConfig.from_dict(spec)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"net: {e}") from None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but no CUDA GPU is available")
    return torch.device(name)


def _task_names(spec: str) -> list[str]:
    from .tasks import task_names

    return task_names(spec)


def build_dataset(config: TrainConfig, source: Any, mode: str, seed: int):
    from .data import ImageDataset
    from .tasks import parse_task_spec

    try:
        task = parse_task_spec(config.task)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"task: {e}") from None
    try:
        return ImageDataset(source, task, config.data.size, mode=mode, seed=seed, **config.data.options)
    except FileNotFoundError as e:
        raise ConfigError(f"data: {e}") from None
    except TypeError as e:
        raise ConfigError(f"data.options: {e}") from None


# ------------------------------------------------------------------------------------------ pieces


def lr_at(step: int, config: OptimConfig) -> float:
    """Linear warm-up over ``warmup_steps``, constant afterwards (as in the paper)."""
    if config.warmup_steps <= 0:
        return config.lr
    return config.lr * min(1.0, (step + 1) / config.warmup_steps)


def ema_decay_at(step: int, decay: float) -> float:
    """EMA decay with warm-up: min(decay, (1+t)/(10+t)), so short runs still average usefully."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach().to(e.dtype), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def training_loss(net: Callable[[Tensor, Tensor, Tensor], Tensor], batch: dict[str, Tensor],
                  schedule: ScheduleConfig, generator: torch.Generator, *, objective: str = "diffusion",
                  loss: str = "l2", autocast: bool = False, prediction: str = "eps",
                  process: dict[str, Any] | None = None) -> Tensor:
    """The loss of one batch under the process that ``objective``/``prediction``/``process`` describe
    (see :mod:`palette_cli.process`)."""
    from .process import process_from_metadata

    proc = process_from_metadata({"objective": objective, "prediction": prediction, "process": process or {}},
                                 schedule=schedule.to_dict())
    return proc.loss(net, batch, generator, loss=loss, autocast=autocast)


def _rank_seed(seed: int, *parts: int) -> int:
    h = hashlib.sha256(repr((seed,) + parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The sample order of one epoch, derived from (seed, epoch) only."""
    g = torch.Generator().manual_seed(_rank_seed(seed, 0x0DA7A, epoch))
    return torch.randperm(n, generator=g).tolist()


class SampleStream(torch.utils.data.Dataset):
    """A flat view of endless epochs: global position p → (epoch p // n, its p % n-th sample).

    Every rank reads the positions of its share of each global batch, so all ranks together see each
    epoch's permutation exactly once, like a DistributedSampler, and a position alone resumes the data.
    """

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed, self.n = dataset, seed, len(dataset)
        self._orders: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return 1 << 62

    def locate(self, position: int) -> tuple[int, int]:
        return divmod(position, self.n)

    def __getitem__(self, position: int) -> dict[str, Tensor]:
        epoch, j = self.locate(position)
        if epoch not in self._orders:
            self._orders = {epoch: epoch_order(self.n, self.seed, epoch)}
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[self._orders[epoch][j]]


class _Positions(torch.utils.data.Sampler):
    """Stream positions of this rank's micro-batches: global batch m holds the ``world × batch``
    samples after ``start + m·world·batch``, rank r taking the r-th ``batch`` of them."""

    def __init__(self, start: int, batch: int, rank: int, world: int):
        self.start, self.batch, self.rank, self.world = start, batch, rank, world

    def __iter__(self) -> Iterator[int]:
        m = 0
        while True:
            base = self.start + (m * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)
            m += 1


def make_loader(stream: SampleStream, start: int, batch: int, rank: int, world: int,
                num_workers: int) -> Iterator[dict[str, Tensor]]:
    sampler = _Positions(start, batch, rank, world)
    if num_workers <= 0:
        def gen() -> Iterator[dict[str, Tensor]]:
            it = iter(sampler)
            while True:
                items = [stream[next(it)] for _ in range(batch)]
                yield {k: torch.stack([x[k] for x in items]) for k in items[0]}
        return gen()
    loader = torch.utils.data.DataLoader(stream, batch_size=batch, sampler=sampler, num_workers=num_workers,
                                         persistent_workers=True, prefetch_factor=2)
    return iter(loader)


# ----------------------------------------------------------------------------------------- distributed


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
    device = resolve_device(device_name)
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local), device


def _barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


def _any_rank(d: Dist, flag: bool, device: torch.device) -> bool:
    """True on every rank if the flag is set on rank 0 (decisions based on clocks / signals)."""
    if d.world == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


# ------------------------------------------------------------------------------------------ checkpoints


def atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"{path}: cannot read training checkpoint ({str(e).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "palette-cli-train":
        raise ConfigError(f"{path}: not a palette-cli training checkpoint")
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise ConfigError(f"{path}: training checkpoint version {ckpt.get('version')} is newer than this palette-cli")
    return ckpt


def _hardware(device: torch.device, world: int) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    return f"{world}× {name}" if world > 1 else name


def state_hash(module: nn.Module) -> str:
    """SHA-256 over a module's state (names, dtypes and bytes): equal hashes = identical weights."""
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(str(v.dtype).encode())
        h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()


# ------------------------------------------------------------------------------------------- the loop


class Trainer:
    """One training run in ``run_dir``; ``run()`` trains until ``config.steps`` (or max_minutes)."""

    def __init__(self, config: TrainConfig, run_dir: str | Path, *, resume: bool = False,
                 hook: Hook | None = None):
        self.config, self.run_dir, self.hook = config, Path(run_dir), hook
        self.dist, self.device = init_distributed(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.schedule = ScheduleConfig.from_dict(config.schedule)
        self.process = config.build_process()
        self.autocast = config.autocast(self.device)
        self.net_config = build_net_config(config.net)
        if config.objective == "bridge" and self.net_config.gamma_embedding != "time":
            raise ConfigError('net: a bridge model needs gamma_embedding = "time" (its level is the bridge time t)')

        from .nets import UNet

        torch.manual_seed(_rank_seed(config.seed, 0xBEEF))  # same initial weights on every rank
        model = UNet(self.net_config).to(self.device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.ema = copy.deepcopy(model).eval().requires_grad_(False)
        self.optimizer = self._make_optimizer()
        self.step = 0
        self.warmup_from = 0  # the step the learning-rate warm-up (re)started at
        self.position = 0  # samples consumed by all ranks together: the data position
        self.wall_s = 0.0
        self.stints: list[dict[str, Any]] = []

        self.dataset = build_dataset(config, config.data.source, config.data.crop, config.seed)
        if len(self.dataset) == 0:
            raise ConfigError(f"data.source: no images found in {config.data.source}")

        ckpts = list_checkpoints(self.run_dir) if resume else []
        if ckpts:
            self._restore(load_checkpoint(ckpts[-1]))
        elif config.init:
            self._init_from_model_file(config.init)
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp: nn.Module = DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.ddp = self.model
        self._stop_requested = False

    # -- setup
    def _make_optimizer(self) -> torch.optim.Optimizer:
        o = self.config.optim
        cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        return cls(self.model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        if ckpt["net"] != self.net_config.to_dict():
            raise ConfigError("--resume: the checkpoint's network differs from the config's network")
        self.model.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.step, self.position = int(ckpt["step"]), int(ckpt["position"])
        if ckpt.get("version", 1) < 2:
            self.position = int(ckpt["images_seen"])
        if "optimizer" in ckpt:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.warmup_from = int(ckpt.get("warmup_from", 0))
        else:  # a portable checkpoint: Adam's moments start afresh, so warm the learning rate up again
            self.warmup_from = self.step
        self.wall_s = float(ckpt.get("wall_s", 0.0))
        self.stints = list(ckpt.get("stints", []))
        rng = ckpt.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "python" in rng:
            random.setstate(_python_state_from(rng["python"]))

    def _init_from_model_file(self, path: str) -> None:
        """Continue from an exported model file (e.g. the shipped weights): its EMA weights seed both the
        model and the EMA, the step count and training record carry on, Adam starts afresh (warm-up again)."""
        from .checkpoint import CheckpointError, load_model

        try:
            net, info = load_model(path)
        except CheckpointError as e:
            raise ConfigError(f"init: {e}") from None
        if info.net != self.net_config.to_dict():
            raise ConfigError(f"init: {path} holds a different network than the config's")
        state = net.state_dict()
        self.model.load_state_dict(state)
        self.ema.load_state_dict(state)
        facts = info.training
        self.step = self.warmup_from = int(facts.get("steps") or 0)
        self.position = int(facts.get("images_seen") or 0)
        self.wall_s = float(facts.get("wall_time_s") or 0.0)
        self.stints = list(facts.get("stints") or [])

    # -- checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        epoch, index = divmod(self.position, len(self.dataset))
        return {
            "format": "palette-cli-train",
            "version": CHECKPOINT_VERSION,
            "config": self.config.to_dict(),
            "net": self.net_config.to_dict(),
            "schedule": self.schedule.to_dict(),
            "tasks": _task_names(self.config.task),
            "step": self.step,
            "warmup_from": self.warmup_from,
            "position": self.position,
            "epoch": epoch,
            "index_in_epoch": index,
            "images_seen": self.images_seen,
            "wall_s": self.wall_s,
            "stints": self.stints,
            "data": self.data_description(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": _python_state_to(random.getstate())},
        }

    def save_checkpoint(self) -> Path | None:
        """Rank 0 writes ``checkpoints/step-N.pt`` atomically and prunes old ones; all ranks wait."""
        _barrier(self.dist)
        path = None
        if self.dist.main:
            self._close_stint()
            path = self.run_dir / "checkpoints" / f"step-{self.step:08d}.pt"
            atomic_torch_save(self.checkpoint_state(), path)
            for old in list_checkpoints(self.run_dir)[:-self.config.keep_ckpts]:
                old.unlink(missing_ok=True)
            self._emit("checkpoint", {"step": self.step, "path": str(path)})
        _barrier(self.dist)
        return path

    @property
    def images_seen(self) -> int:
        return self.position

    def data_description(self) -> str:
        src = self.config.data.source
        src = ", ".join(src) if isinstance(src, list) else str(src)
        return f"{len(self.dataset)} images from {src}; {self.config.data.size}² {self.config.data.crop} crops"

    def _close_stint(self) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        stint = {"start": self._stint_start, "end": now, "from_step": self._stint_from, "to_step": self.step,
                 "wall_s": round(self.wall_s - self._stint_wall0, 1), "hardware": _hardware(self.device, self.dist.world)}
        if self.stints and self.stints[-1].get("start") == self._stint_start:
            self.stints[-1] = stint
        else:
            self.stints.append(stint)

    # -- logging
    def _emit(self, event: str, record: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        if event in ("log", "val"):
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"event": event, **record}) + "\n")
        if self.hook is not None:
            self.hook(event, record)

    def request_stop(self, *_: Any) -> None:
        """Checkpoint and stop after the current step (SIGTERM / SIGINT handler)."""
        self._stop_requested = True

    # -- one step
    def train_step(self) -> float:
        c = self.config
        lr = lr_at(self.step - self.warmup_from, c.optim)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(c.grad_accum):
            seed = _rank_seed(c.seed, self.dist.rank, self.step, micro)
            torch.manual_seed(seed)  # dropout and anything else drawing from the global generator
            gen = torch.Generator().manual_seed(seed)
            batch = {k: v.to(self.device, non_blocking=True) for k, v in next(self.loader).items()}
            if c.channels_last:
                batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
            last = micro == c.grad_accum - 1
            sync = self.ddp.no_sync() if (self.dist.world > 1 and not last) else _nullcontext()
            with sync:
                loss = self.process.loss(self.ddp, batch, gen, loss=c.loss, autocast=self.autocast)
                (loss / c.grad_accum).backward()
            total += float(loss.detach()) / c.grad_accum
            self.position += c.batch_size * self.dist.world
        if c.optim.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), c.optim.grad_clip)
        self.optimizer.step()
        self.step += 1
        ema_update(self.ema, self.model, ema_decay_at(self.step - 1, c.ema_decay))
        return total

    # -- the loop
    def run(self) -> dict[str, Any]:
        c = self.config
        self._stint_start = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._stint_from, self._stint_wall0 = self.step, self.wall_s
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(c.to_dict(), indent=2))
        stream = SampleStream(self.dataset, c.seed)
        self.loader = make_loader(stream, self.position, c.batch_size, self.dist.rank, self.dist.world,
                                  c.num_workers)
        self.model.train()
        start_wall, wall0 = time.monotonic(), self.wall_s
        last_ckpt = time.monotonic()
        window_t, window_imgs, window_losses = time.monotonic(), 0, []
        self._emit("start", {"step": self.step, "steps": c.steps, "images_seen": self.images_seen})
        loss = float("nan")
        governor = ThreadGovernor(torch.get_num_threads())
        while self.step < c.steps:
            if c.adaptive_threads and self.device.type == "cpu":
                threads = governor()
                if threads != torch.get_num_threads():
                    torch.set_num_threads(threads)
            loss = self.train_step()
            self.wall_s = wall0 + time.monotonic() - start_wall  # all of it: steps, validation, checkpoints
            window_losses.append(loss)
            window_imgs += c.batch_size * c.grad_accum * self.dist.world
            if self.step % c.log_every == 0 or self.step == c.steps:
                dt = max(time.monotonic() - window_t, 1e-9)
                rec = {"step": self.step, "loss": sum(window_losses) / len(window_losses),
                       "images_per_s": window_imgs / dt, "steps_per_s": len(window_losses) / dt,
                       "lr": lr_at(self.step - 1 - self.warmup_from, c.optim), "images_seen": self.images_seen,
                       "epoch": self.images_seen // len(self.dataset), "wall_s": round(self.wall_s, 1)}
                self._emit("log", rec)
                window_t, window_imgs, window_losses = time.monotonic(), 0, []
            else:
                self._emit("step", {"step": self.step, "loss": loss})
            if self.step % c.val_every == 0:
                self.validate()
            out_of_time = c.max_minutes is not None and time.monotonic() - start_wall > 60 * c.max_minutes
            stop = _any_rank(self.dist, self._stop_requested or out_of_time, self.device)
            due = self.step % c.ckpt_every == 0 or self.step == c.steps
            timed = _any_rank(self.dist, c.ckpt_minutes is not None
                              and time.monotonic() - last_ckpt > 60 * c.ckpt_minutes, self.device)
            if due or timed or stop:
                self.save_checkpoint()
                last_ckpt = time.monotonic()
            if stop:
                break
        self._emit("end", {"step": self.step, "loss": loss})
        return {"step": self.step, "loss": loss, "images_seen": self.images_seen, "wall_s": self.wall_s}

    # -- validation
    def validation_batch(self) -> dict[str, Tensor]:
        """Fixed held-out examples (or the first training images): same crops and degradations every
        time. A task mixture shows every image under each of its tasks, grouped by task."""
        if not hasattr(self, "_val_batch"):
            c = self.config
            source = c.data.heldout or c.data.source
            ds = build_dataset(c, source, "center", seed=12345)
            n = min(c.val_images, len(ds))
            indices = [i * len(ds) // n for i in range(n)]
            subtasks = getattr(ds.task, "tasks", None)
            if subtasks:
                items = [t.make_example(ds.image(i), torch.Generator().manual_seed(1000 * k + i)).as_dict()
                         for k, t in enumerate(subtasks) for i in indices]
            else:
                items = [ds[i] for i in indices]
            self._val_batch = {k: torch.stack([x[k] for x in items]) for k in items[0]}
        return self._val_batch

    @torch.no_grad()
    def validate(self) -> dict[str, Any] | None:
        """Rank 0: EMA validation loss and a PNG grid (input / output / target rows)."""
        if not self.dist.main:
            return None
        c = self.config
        batch = {k: v.to(self.device) for k, v in self.validation_batch().items()}
        gen = torch.Generator().manual_seed(777)  # the same 8 (level, noise) draws per example at every validation
        val_loss = sum(float(self.process.loss(self.ema, batch, gen, loss=c.loss, autocast=self.autocast))
                       for _ in range(8)) / 8
        output = predict(self.ema, self.process, batch, steps=c.val_steps, seed=0, autocast=self.autocast)
        grid = image_grid([batch["cond"], output, batch["target"]])
        path = self.run_dir / "val" / f"step-{self.step:08d}.png"
        _atomic_save_png(grid, path)
        rec = {"step": self.step, "val_loss": val_loss, "grid": str(path.relative_to(self.run_dir))}
        self._emit("val", rec)
        return rec


def others_running() -> float:
    """How many threads of other processes are runnable right now (Linux: /proc; else the load average)."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        ours = 0
        for stat in Path("/proc/self/task").glob("*/stat"):
            try:
                ours += stat.read_text().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                continue
        return max(0.0, float(running - ours))
    except (OSError, IndexError, ValueError):
        return max(0.0, os.getloadavg()[0] - torch.get_num_threads())


class ThreadGovernor:
    """Threads for the next CPU step: all of them, unless other processes keep a core busy.

    A team of intra-op threads waits for its slowest member, so while another process holds a core,
    two threads run several times slower than one. The others' demand is sampled before every step
    and smoothed over a few steps. (Results then depend on the thread count: a run using this is
    not bit-reproducible.)
    """

    def __init__(self, max_threads: int, smoothing: float = 0.3):
        self.max_threads, self.smoothing, self.demand = max_threads, smoothing, 0.0

    def __call__(self) -> int:
        self.demand += self.smoothing * (others_running() - self.demand)
        cores = os.cpu_count() or self.max_threads
        return max(1, min(self.max_threads, cores - math.ceil(self.demand - 0.25)))


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def _python_state_to(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _python_state_from(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])


@torch.no_grad()
def predict(net: Callable[[Tensor, Tensor, Tensor], Tensor], process, batch: dict[str, Tensor], *,
            steps: int | None = None, seed: int = 0, autocast: bool = False) -> Tensor:
    """The model's output for a validation batch: the process's default sampler with ``steps`` model calls,
    known pixels imposed (the same sampling code the pipeline runs)."""
    from .process import SamplerSettings

    cond, target, mask = batch["cond"], batch["target"], batch["mask"]

    def run(y: Tensor, level: Tensor, c: Tensor) -> Tensor:
        with torch.autocast(y.device.type, dtype=torch.bfloat16, enabled=autocast):
            return net(y, level, c).float()

    def impose(y: Tensor, _level: float) -> Tensor:
        return mask * y + (1 - mask) * target

    return process.sample(run, cond, batch.get("start", cond), SamplerSettings(steps=steps),
                          torch.Generator().manual_seed(seed), impose=impose)


def image_grid(rows: list[Tensor], pad: int = 2) -> Tensor:
    """Rows of (B,3,H,W) images in [-1,1] → one (3, H', W') tensor in [0,1] with a white gutter."""
    b, _, h, w = rows[0].shape
    grid = torch.ones(3, len(rows) * (h + pad) + pad, b * (w + pad) + pad)
    for r, imgs in enumerate(rows):
        for i in range(b):
            y, x = pad + r * (h + pad), pad + i * (w + pad)
            grid[:, y:y + h, x:x + w] = (imgs[i].float().cpu().clamp(-1, 1) + 1) / 2
    return grid


def _atomic_save_png(img01: Tensor, path: Path) -> None:
    from PIL import Image

    arr = (img01.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype("uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(arr).save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False, hook: Hook | None = None,
          handle_signals: bool = False) -> dict[str, Any]:
    """Train (or resume) a run; returns the final step, loss, images seen and wall time."""
    trainer = Trainer(config, run_dir, resume=resume, hook=hook)
    if handle_signals:
        signal.signal(signal.SIGTERM, trainer.request_stop)
    return trainer.run()


# ------------------------------------------------------------------------------ portable checkpoints

PORTABLE_PART_BYTES = 15 * 1024 * 1024


def pack_checkpoint(source: str | Path, folder: str | Path, part_bytes: int = PORTABLE_PART_BYTES,
                    model_dtype: str = "bf16") -> list[Path]:
    """Newest checkpoint → a folder of parts ≤ ``part_bytes`` plus ``manifest.json`` (for moving runs
    between machines with file-size limits). The EMA weights travel in float32, the raw model weights
    in ``model_dtype`` (bf16 halves them); the optimiser state stays behind, so the resumed run starts
    Adam's moments afresh and re-warms its learning rate."""
    ckpt = load_checkpoint(latest_checkpoint(source))
    slim = {k: v for k, v in ckpt.items() if k not in ("optimizer", "rng")}
    cast = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[model_dtype]
    slim["model"] = {k: v.to(cast) if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    buf = io.BytesIO()
    torch.save(slim, buf)
    data = buf.getvalue()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*.bin"):
        old.unlink()
    parts = []
    for i in range(0, len(data), part_bytes):
        p = folder / f"part-{i // part_bytes:03d}.bin"
        p.write_bytes(data[i:i + part_bytes])
        parts.append(p)
    manifest = {"step": ckpt["step"], "parts": [p.name for p in parts], "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return parts


def unpack_checkpoint(folder: str | Path, run_dir: str | Path) -> Path:
    """Parts folder → ``run_dir/checkpoints/step-N.pt`` (verified against the manifest's SHA-256)."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    data = b"".join((folder / name).read_bytes() for name in manifest["parts"])
    if len(data) != manifest["bytes"] or hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise ConfigError(f"{folder}: checkpoint parts are incomplete or corrupt")
    ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    path = Path(run_dir) / "checkpoints" / f"step-{int(ckpt['step']):08d}.pt"
    atomic_torch_save(ckpt, path)
    return path


# ---------------------------------------------------------------------------------------------- export


def export_checkpoint(source: str | Path, out: str | Path, dtype: str = "fp16", extra: dict | None = None) -> Path:
    """A run folder (newest checkpoint) or checkpoint file → a slim EMA-only safetensors model file."""
    from .checkpoint import ModelInfo, save_model

    path = latest_checkpoint(source)
    ckpt = load_checkpoint(path)
    cfg = ckpt["config"]
    stints = ckpt.get("stints", [])
    training = {
        "steps": ckpt["step"],
        "images_seen": ckpt.get("images_seen"),
        "wall_time_s": round(float(ckpt.get("wall_s", 0.0)), 1),
        "hardware": sorted({s.get("hardware", "") for s in stints if s.get("hardware")}),
        "stints": stints,
        "data": ckpt.get("data", ""),
        "objective": cfg.get("objective", "diffusion"),
        "loss": cfg.get("loss", "l2"),
        "prediction": cfg.get("prediction", "eps"),
        "process": cfg.get("process", {}),
        "resolution": cfg.get("data", {}).get("size"),
        "batch_size": cfg.get("batch_size"),
        "lr": cfg.get("optim", {}).get("lr"),
        "ema_decay": cfg.get("ema_decay"),
        "precision": cfg.get("precision"),
        "task": cfg.get("task"),
    }
    from .process import process_from_metadata

    process = process_from_metadata({"objective": training["objective"], "prediction": training["prediction"],
                                     "process": training["process"]}, schedule=ckpt["schedule"])
    info = ModelInfo(net=ckpt["net"], schedule=ckpt["schedule"], tasks=list(ckpt["tasks"]), training=training,
                     extra={**process.metadata(), **(extra or {})})
    return save_model(out, info, ckpt["ema"], dtype=dtype)
