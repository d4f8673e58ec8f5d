"""Training: config, data stream, the loop, exact resume, DistributedDataParallel and export.

The core knows nothing of rich or typer: progress goes through a ``hook(event, record)`` callback and
metrics go to ``RUN_DIR/metrics.jsonl``. A run folder holds::

    config.json            the resolved config of the run
    metrics.jsonl          one JSON record per log / validation event
    checkpoints/step-N.pt  model, EMA, optimiser, step, RNG and data position (the last few kept)
    val/step-N.png         validation grid: input / output (EMA, the process's default sampler) / target rows

Randomness is derived from ``(seed, rank, step)`` at every step, and the data order from
``(seed, epoch)``: a resumed run continues bit for bit as if it had never stopped.

Modules: :mod:`.config` (the config and its overrides), :mod:`.stream` (the data in a resumable
order), :mod:`.distributed` (torchrun setup), :mod:`.checkpoints` (run checkpoint files),
:mod:`.loop` (:class:`Trainer`), :mod:`.validation` (the validation grid), :mod:`.export` (model files).
The loss is the process's (:mod:`palette_cli.diffusion.process`).
"""

from ..diffusion.process import masked_loss
from .checkpoints import (
    CHECKPOINT_VERSION,
    atomic_torch_save,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    state_hash,
)
from .config import (
    OPTIMIZERS,
    PRECISIONS,
    ConfigError,
    DataConfig,
    OptimConfig,
    TrainConfig,
    apply_override,
    build_net_config,
    load_config,
    read_config_file,
)
from .distributed import Dist, init_distributed
from .export import export_checkpoint
from .loop import Hook, Trainer, ema_decay_at, ema_update, lr_at, train
from .stream import SampleStream, build_dataset, epoch_order, make_loader
from .validation import image_grid, predict

__all__ = [
    "CHECKPOINT_VERSION",
    "OPTIMIZERS",
    "PRECISIONS",
    "ConfigError",
    "DataConfig",
    "Dist",
    "Hook",
    "OptimConfig",
    "SampleStream",
    "TrainConfig",
    "Trainer",
    "apply_override",
    "atomic_torch_save",
    "build_dataset",
    "build_net_config",
    "ema_decay_at",
    "ema_update",
    "epoch_order",
    "export_checkpoint",
    "image_grid",
    "init_distributed",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_config",
    "lr_at",
    "make_loader",
    "masked_loss",
    "predict",
    "read_config_file",
    "state_hash",
    "train",
]
