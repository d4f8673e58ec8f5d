"""The training config: :class:`TrainConfig` and its parts, read from TOML / JSON / YAML with dotted-key
``key=value`` overrides, and the network config it names."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..diffusion.schedule import PAPER_TRAIN, ScheduleConfig
from ..nets.efficientnet_lite import VARIANTS

OPTIMIZERS = ("adam", "adamw")
PRECISIONS = ("auto", "bf16", "fp32")


class ConfigError(ValueError):
    """A user mistake in a training config or override; the message is one line."""


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
    # a pretrained encoder that is fine-tuned (``net.train_encoder``) learns at ``lr × encoder_lr_scale``
    encoder_lr_scale: float = 1.0


@dataclass
class TrainConfig:
    """Everything a training run needs; loadable from TOML / YAML / JSON with dotted-key overrides."""

    task: str = "colorize+inpaint+uncrop+jpeg"
    # per-task build options, e.g. { jpeg = { high = 95, scale = 30 } } (tasks/jpeg.py: the quality law)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    net: str | dict[str, Any] = "small"
    schedule: dict[str, Any] = field(default_factory=lambda: PAPER_TRAIN.to_dict())
    # The process: its objective and what the network predicts (palette_cli.diffusion.registry.PROCESSES:
    # diffusion eps / v, regression x0, bridge residual / chroma-bins; "": the objective's first), and its
    # settings table (the process class's ``settings``, e.g. a bridge's sigma and p_start).
    objective: str = "diffusion"
    prediction: str = ""
    process: dict[str, Any] = field(default_factory=dict)
    loss: str = "l2"  # one of the process's losses: l2, l1; ce (cross-entropy) for chroma-bins
    # plus feature_loss × a perceptual loss on the clean estimate (training/feature_loss.py), on the ImageNet
    # features of feature_net (a frozen EfficientNet-Lite; not one the evaluation judges with); 0: none
    feature_loss: float = 0.0
    feature_net: str = "lite1"
    # plus adversarial_loss × a patch critic's generator term on the clean estimate's made pixels
    # (training/adversarial.py); the critic trains side by side at adversarial_lr (Adam); 0: none
    adversarial_loss: float = 0.0
    adversarial_lr: float = 1e-4
    # plus class_loss × KL(ImageNet classes of the photo ‖ of the clean estimate) on feature_net's classifier
    # (training/class_loss.py; the colorizer's chroma-bins process); 0: none
    class_loss: float = 0.0
    # a fill's fine stage trained for a coarse stage (training/layout_guess.py): this fraction of the examples
    # starts its bridge state, at t <= layout_max_time, from the unknown part's layout (shrunk by one of
    # layout_factors and enlarged) instead of the photo; 0: none
    layout_training: float = 0.0
    layout_factors: list[int] = field(default_factory=lambda: [4, 8])
    layout_max_time: float = 0.5
    # "photo": the layout is the photo's own; a model file: its coarse stage's samples of the known part
    layout_source: str = "photo"
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
        from ..tasks import parse_task_spec, task_names

        process = self.build_process()
        try:
            tasks = task_names(parse_task_spec(self.task, self.task_options))
        except ValueError as e:
            raise ConfigError(f"task: {e}") from None
        try:
            process.check_training(tasks, self.loss)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        for name in ("feature_loss", "adversarial_loss", "adversarial_lr", "class_loss"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        if self.feature_loss and not process.feature_loss:
            raise ConfigError(f"feature_loss: the {process.kind} process takes no feature loss "
                              "(the bridge processes do)")
        if self.adversarial_loss and not process.feature_loss:
            raise ConfigError(f"adversarial_loss: the {process.kind} process takes no loss on its clean estimate "
                              "(the bridge processes do)")
        if self.class_loss and not process.class_loss:
            raise ConfigError(f"class_loss: the {process.kind} process takes no class-consistency loss "
                              "(the chroma-bins colorizer does)")
        if not (isinstance(self.layout_training, (int, float)) and 0 <= self.layout_training <= 1):
            raise ConfigError(f"layout_training must be a fraction in [0, 1], got {self.layout_training!r}")
        if self.layout_training:
            from ..diffusion.bridge import BridgeProcess

            if not (isinstance(process, BridgeProcess) and process.tasks is None
                    and {"inpaint", "uncrop"} & set(tasks)):
                raise ConfigError(f"layout_training: only a bridge fill (inpaint / uncrop) starts from a guess, "
                                  f"not the {process.kind} process on {self.task!r}")
            factors = self.layout_factors
            if not (isinstance(factors, list) and factors
                    and all(isinstance(f, int) and not isinstance(f, bool) and f >= 2 for f in factors)):
                raise ConfigError(f"layout_factors must be a list of whole numbers >= 2, got {factors!r}")
            if not (isinstance(self.layout_max_time, (int, float)) and 0 < self.layout_max_time <= 1):
                raise ConfigError(f"layout_max_time must be in (0, 1], got {self.layout_max_time!r}")
            if not isinstance(self.layout_source, str) or not self.layout_source:
                raise ConfigError(f"layout_source must be \"photo\" or a model file, got {self.layout_source!r}")
            if self.layout_source != "photo" and not Path(self.layout_source).is_file():
                raise ConfigError(f"layout_source: no model file at {self.layout_source}")
        if self.adversarial_loss and not self.adversarial_lr > 0:
            raise ConfigError("adversarial_lr must be > 0 when adversarial_loss is on")
        if (self.feature_loss or self.class_loss) and self.feature_net not in VARIANTS:
            raise ConfigError(f"feature_net must be one of {', '.join(VARIANTS)}, got {self.feature_net!r}")

    def build_process(self):
        """The :class:`~palette_cli.diffusion.process.Process` this config trains; ``ConfigError`` (one line) for an
        objective, prediction or setting this version does not know."""
        from ..diffusion.registry import process_class

        try:
            cls = process_class(self.objective, self.prediction)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        try:
            return cls.from_spec(self.process, self.schedule_config(), strict=True)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"process: {e}") from None

    def autocast(self, device: torch.device) -> bool:
        """Whether to train under bf16 autocast: ``auto`` asks whether the device computes bf16 natively
        (on a CPU without AVX512-BF16/AMX, emulated bf16 made training ~10× slower than fp32)."""
        if self.precision != "auto":
            return self.precision == "bf16"
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        if device.type == "cpu":
            from ..nets import cpu_has_fast_bf16

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
    from ..imageio import check_regular_file, os_reason

    path = Path(path)
    check_regular_file(path, ConfigError, "config file")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json", ".yaml", ".yml"):
        raise ConfigError(f"{path}: config files must be .toml, .json, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({os_reason(e)})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot parse config (not UTF-8 text)") from None
    try:
        if suffix == ".toml":
            import tomllib

            raw = tomllib.loads(text)
        elif suffix == ".json":
            raw = json.loads(text)
        else:
            try:
                import yaml
            except ImportError:
                raise ConfigError(f"{path}: YAML configs need PyYAML (pip install pyyaml)") from None
            raw = yaml.safe_load(text)
            raw = {} if raw is None else raw
    except ConfigError:
        raise
    except Exception as e:  # parse errors of any of the three formats
        raise ConfigError(f"{path}: cannot parse config ({(str(e).splitlines() or [type(e).__name__])[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config holds a table of settings (key = value), not a "
                          f"{type(raw).__name__}")
    return raw


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


def build_net_config(spec: str | dict[str, Any]):
    """A preset name, ``{"preset": name, **overrides}``, or a full network table (``arch`` names the
    architecture; default the U-Net)."""
    from ..nets import network_config, preset

    try:
        if isinstance(spec, str):
            return preset(spec)
        spec = dict(spec)
        if "preset" in spec:
            base = preset(spec.pop("preset")).to_dict()
            base.update(spec)
            return network_config(base)
        return network_config(spec)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"net: {e}") from None
