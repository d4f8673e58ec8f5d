"""The training loop: :class:`Trainer` (setup, one step, the run, checkpoints and validation) and its
learning-rate and EMA rules."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import random
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..checkpoint import CheckpointError
from ..diffusion.registry import process_from_metadata
from ..nets.efficientnet_lite import LiteWeightsError
from ..nets.unet import adds_attention, with_added_attention
from ..diffusion.schedule import ScheduleConfig
from ..scale.threads import ThreadGovernor
from ..tasks.starts import restart_fills
from .layout_guess import add_layout_guesses, load_layout_source
from .checkpoints import (
    CHECKPOINT_VERSION,
    atomic_torch_save,
    list_checkpoints,
    load_checkpoint,
    python_state_from_list,
    python_state_to_list,
)
from .class_loss import ClassLoss
from .config import ConfigError, OptimConfig, TrainConfig, build_net_config
from .distributed import all_reduce_mean, any_rank, barrier, hardware, init_distributed
from .feature_loss import FeatureLoss
from .stream import SampleStream, build_dataset, make_loader, rank_seed
from .validation import atomic_save_png, image_grid, predict

Hook = Callable[[str, dict], None]


def _task_names(spec: str) -> list[str]:
    from ..tasks import task_names

    return task_names(spec)


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
        self.loss_extra: dict[str, Any] = {}
        for key, name, cls in (("feature", "feature_loss", FeatureLoss), ("classes", "class_loss", ClassLoss)):
            if getattr(config, name):
                self.loss_extra[key] = (getattr(config, name), self._frozen_network(name, cls))
        self.critic = None
        if config.adversarial_loss:
            from .adversarial import AdversarialLoss

            torch.manual_seed(rank_seed(config.seed, 0xC0DE))  # the same critic on every rank
            self.critic = AdversarialLoss(config.adversarial_lr).to(self.device)
            self.loss_extra["adversarial"] = (config.adversarial_loss, self.critic)
        self.layout_source = None
        if config.layout_training and config.layout_source != "photo":
            try:
                self.layout_source = load_layout_source(config.layout_source, self.device)
            except (CheckpointError, ValueError, OSError) as e:
                raise ConfigError(f"layout_source: {e}") from None
        self.net_config = build_net_config(config.net)
        try:
            self.process.check_network(self.net_config)
        except ValueError as e:
            raise ConfigError(f"net: {e}") from None

        from ..nets import build_network

        torch.manual_seed(rank_seed(config.seed, 0xBEEF))  # same initial weights on every rank
        model = build_network(self.net_config).to(self.device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.ema = copy.deepcopy(model).eval().requires_grad_(False)
        self.optimizer = self._make_optimizer()
        self.step = 0
        self.warmup_from = 0  # the step the learning-rate warm-up (re)started at
        self.ema_from = 0  # the step the EMA's warm-up (re)started at (a new output head: its EMA starts afresh)
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
        elif hasattr(self.model, "load_pretrained_encoder") or _has_context(self.net_config):
            self._load_pretrained()
            self.ema.load_state_dict(self.model.state_dict())
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp: nn.Module = DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.ddp = self.model
        self._stop_requested = False

    # -- setup
    def _frozen_network(self, name: str, cls: type[nn.Module]) -> nn.Module:
        """The frozen ImageNet network of one extra loss, built on ``feature_net`` with the installed package's
        weights; a missing package is a one-line ConfigError."""
        try:
            net = cls(self.config.feature_net)
        except LiteWeightsError as e:
            raise ConfigError(f"{name}: {e}") from None
        net = net.to(self.device)
        return net.to(memory_format=torch.channels_last) if self.config.channels_last else net

    def _make_optimizer(self) -> torch.optim.Optimizer:
        o = self.config.optim
        cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        # a frozen pretrained encoder is not trained; a fine-tuned one learns at its own scale of the learning
        # rate (a U-Net's own "encoder" blocks are not a pretrained encoder)
        pretrained = {id(p) for p in self.model.encoder.parameters()} \
            if hasattr(self.model, "load_pretrained_encoder") else set()
        trained = [p for p in self.model.parameters() if p.requires_grad]
        encoder = [p for p in trained if id(p) in pretrained]
        groups = [{"params": [p for p in trained if id(p) not in pretrained], "lr_scale": 1.0}]
        if encoder:
            groups.append({"params": encoder, "lr_scale": o.encoder_lr_scale})
        return cls(groups, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        if _weights_layout(_network_config(ckpt["net"])) != _weights_layout(self.net_config):
            raise ConfigError("--resume: the checkpoint's network differs from the config's network")
        self.model.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.step, self.position = int(ckpt["step"]), int(ckpt["position"])
        if ckpt.get("version", 1) < 2:
            self.position = int(ckpt["images_seen"])
        if "optimizer" in ckpt:
            try:
                self.optimizer.load_state_dict(ckpt["optimizer"])
            except (ValueError, KeyError) as e:
                raise ConfigError(f"--resume: the checkpoint's optimiser state does not fit this run ({e})") from None
            self.warmup_from = int(ckpt.get("warmup_from", 0))
        else:  # a checkpoint without optimiser state: Adam's moments start afresh, so warm the learning rate up again
            self.warmup_from = self.step
        if self.critic is not None and "critic" in ckpt:  # else (a run without one so far) the critic starts afresh
            try:
                self.critic.load_state(ckpt["critic"])
            except (ValueError, KeyError, RuntimeError) as e:
                raise ConfigError(f"--resume: the checkpoint's critic does not fit this run ({e})") from None
        self.ema_from = int(ckpt.get("ema_from", 0))
        self.wall_s = float(ckpt.get("wall_s", 0.0))
        self.stints = list(ckpt.get("stints", []))
        rng = ckpt.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "python" in rng:
            random.setstate(python_state_from_list(rng["python"]))

    def _load_pretrained(self) -> None:
        """The installed packages' ImageNet weights into the network's pretrained encoder or context encoder."""
        try:
            if hasattr(self.model, "load_pretrained_encoder"):
                self.model.load_pretrained_encoder()
            else:
                self.model.load_pretrained_context()
        except (ValueError, OSError) as e:
            raise ConfigError(f"net: {e}") from None

    def _init_from_model_file(self, path: str) -> None:
        """Continue from an exported model file (e.g. the shipped weights): its EMA weights seed both the
        model and the EMA, the step count and training record carry on, Adam starts afresh (warm-up again)."""
        from ..checkpoint import load_model

        try:
            net, info = load_model(path)
        except CheckpointError as e:
            raise ConfigError(f"init: {e}") from None
        theirs, ours = _weights_layout(_network_config(info.net)), _weights_layout(self.net_config)
        # a U-Net without a context encoder can start a run of the same U-Net with one (its MLP starts at zero,
        # so the network starts as the file's)
        new_context = _has_context(ours) and not _has_context(theirs) and \
            dataclasses.replace(ours, context="none", context_size=0) == theirs
        # a U-Net can also start a run of itself with attention at more resolutions (each new block starts
        # as the identity)
        new_attention = adds_attention(theirs, ours)
        new_head = theirs != ours and not new_context and not new_attention
        if new_head and not _same_body(theirs, ours):
            raise ConfigError(f"init: {path} holds a different network than the config's")
        state = net.state_dict()
        if new_attention:
            try:
                state = with_added_attention(state, net, self.model)
            except ValueError as e:
                raise ConfigError(f"init: {path}: {e}") from None
        if new_context:
            self._load_pretrained()
            state.update({k: v for k, v in self.model.state_dict().items() if k.startswith("context_")})
        self.model.load_state_dict(_with_fresh_head(state, self.model) if new_head else state)
        self.ema.load_state_dict(self.model.state_dict())
        facts = info.training
        self.step = self.warmup_from = int(facts.get("steps") or 0)
        try:
            same_process = process_from_metadata(info.extra, facts).metadata() == self.process.metadata()
        except ValueError:
            same_process = False
        if new_head or new_context or new_attention or not same_process:
            # the EMA must not average in for long a fresh head's (or attention's) zero start, nor weights made for another
            # process (a bridge with another start or noise): its warm-up starts again
            self.ema_from = self.step
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
            "ema_from": self.ema_from,
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
            **({"critic": self.critic.state()} if self.critic is not None else {}),
            "rng": {"torch": torch.get_rng_state(), "python": python_state_to_list(random.getstate())},
        }

    def save_checkpoint(self) -> Path | None:
        """Rank 0 writes ``checkpoints/step-N.pt`` atomically and prunes old ones; all ranks wait."""
        barrier(self.dist)
        path = None
        if self.dist.main:
            self._close_stint()
            path = self.run_dir / "checkpoints" / f"step-{self.step:08d}.pt"
            atomic_torch_save(self.checkpoint_state(), path)
            for old in list_checkpoints(self.run_dir)[:-self.config.keep_ckpts]:
                old.unlink(missing_ok=True)
            self._emit("checkpoint", {"step": self.step, "path": str(path)})
        barrier(self.dist)
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
                 "wall_s": round(self.wall_s - self._stint_wall0, 1), "hardware": hardware(self.device, self.dist.world)}
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
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(c.grad_accum):
            seed = rank_seed(c.seed, self.dist.rank, self.step, micro)
            torch.manual_seed(seed)  # dropout and anything else drawing from the global generator
            gen = torch.Generator().manual_seed(seed)
            batch = {k: v.to(self.device, non_blocking=True) for k, v in next(self.loader).items()}
            # a start that draws (the patch synthesis) has its own generator: the training draws stay as they are
            batch = restart_fills(batch, self.process.fill_start, torch.Generator().manual_seed(seed + 1))
            if c.channels_last:
                batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
            if c.layout_training:  # its own generator: the process's draws stay as they are
                batch = add_layout_guesses(batch, c.layout_training, c.layout_factors, c.layout_max_time,
                                           torch.Generator().manual_seed(seed + 2), self.layout_source)
            last = micro == c.grad_accum - 1
            sync = self.ddp.no_sync() if (self.dist.world > 1 and not last) else contextlib.nullcontext()
            with sync:
                loss = self.process.loss(self.ddp, batch, gen, loss=c.loss, autocast=self.autocast, **self.loss_extra)
                (loss / c.grad_accum).backward()
            total += float(loss.detach()) / c.grad_accum
            self.position += c.batch_size * self.dist.world
        if c.optim.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), c.optim.grad_clip)
        self.optimizer.step()
        if self.critic is not None:  # the critic's step on this step's (last micro-batch's) fill
            self.critic.update(lr / c.optim.lr if c.optim.lr else 1.0, functools.partial(all_reduce_mean, self.dist))
        self.step += 1
        ema_update(self.ema, self.model, ema_decay_at(self.step - 1 - self.ema_from, c.ema_decay))
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
                if self.critic is not None:
                    rec.update(self.critic.last)  # the critic's loss at its last step (log 2 = a coin toss each side)
                self._emit("log", rec)
                window_t, window_imgs, window_losses = time.monotonic(), 0, []
            else:
                self._emit("step", {"step": self.step, "loss": loss})
            if self.step % c.val_every == 0:
                self.validate()
            out_of_time = c.max_minutes is not None and time.monotonic() - start_wall > 60 * c.max_minutes
            stop = any_rank(self.dist, self._stop_requested or out_of_time, self.device)
            due = self.step % c.ckpt_every == 0 or self.step == c.steps
            timed = any_rank(self.dist, c.ckpt_minutes is not None
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
            self._val_batch = restart_fills({k: torch.stack([x[k] for x in items]) for k in items[0]},
                                            self.process.fill_start, torch.Generator().manual_seed(0))
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
        atomic_save_png(grid, path)
        rec = {"step": self.step, "val_loss": val_loss, "grid": str(path.relative_to(self.run_dir))}
        self._emit("val", rec)
        return rec


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False, hook: Hook | None = None,
          handle_signals: bool = False) -> dict[str, Any]:
    """Train (or resume) a run; returns the final step, loss, images seen and wall time."""
    trainer = Trainer(config, run_dir, resume=resume, hook=hook)
    if handle_signals:
        signal.signal(signal.SIGTERM, trainer.request_stop)
    return trainer.run()


def _with_fresh_head(state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """``state`` with its output head (``conv_out``) replaced by ``model``'s freshly initialised one."""
    state = {k: v for k, v in state.items() if not k.startswith("conv_out.")}
    state.update({k: v for k, v in model.state_dict().items() if k.startswith("conv_out.")})
    return state


def _has_context(config) -> bool:
    """Whether a network config has a context encoder (:class:`~palette_cli.nets.unet.UNetConfig`'s ``context``)."""
    return getattr(config, "context", "none") != "none"


def _same_body(a, b) -> bool:
    """Whether two U-Net configs differ at most in their output head (pixels or ``num_classes`` logits)."""
    if a is None or b is None or not (hasattr(a, "num_classes") and hasattr(b, "num_classes")):
        return False
    return dataclasses.replace(a, num_classes=0) == dataclasses.replace(b, num_classes=0)


# network settings that change how it trains but not its weights
# settings that leave the weights' names and shapes alone: how it trains (a fine-tuned encoder, dropout) and
# the working resolution (no weight of either network depends on it), so a run at 64² can start from a 256² file
_TRAINING_ONLY_FIELDS = {"train_encoder": False, "dropout": 0.0, "image_size": 256}


def _weights_layout(config):
    """``config`` without the settings that change how it trains but not its weights (whether a pretrained
    encoder is fine-tuned, dropout), so a frozen-encoder model file can start a fine-tuning run and a run
    can go on with more or less dropout."""
    if config is None:
        return None
    fields = {k: v for k, v in _TRAINING_ONLY_FIELDS.items() if hasattr(config, k)}
    return dataclasses.replace(config, **fields) if fields else config


def _network_config(d: dict[str, Any]):
    """The config a checkpoint's or model file's network table describes (None if it describes none), so
    that files written before a field or the architecture name existed compare by meaning."""
    from ..nets import network_config

    try:
        return network_config(d)
    except (TypeError, ValueError):
        return None
