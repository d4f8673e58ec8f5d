"""What a network predicts and how its output becomes an image: one object per kind of process.

A process owns, for its kind, everything that depends on what the network's output means:

- the training target and its loss (:meth:`Process.loss`),
- the clean-image estimate from a network output (:meth:`Process.denoiser`),
- the state sampling starts from (:meth:`Process.initial_state`),
- the levels a sampler setting visits (:meth:`Process.levels`) and the sampling loop itself.

Kinds:

- ``eps``: Palette's diffusion: ``y_t = √γ·y0 + √(1−γ)·ε``, the network predicts ε. Starts from noise.
- ``v``: the same diffusion, the network predicts ``v = √γ·ε − √(1−γ)·y0``.
- ``regression``: one pass from ``(0, γ = 1, cond)`` to the target; no sampler, no randomness.
- ``bridge``: a Brownian bridge from the degraded image to the clean one (InDI / I2SB style):
  ``x_t = (1−t)·y0 + t·d + σ·√(t(1−t))·ε`` for t in [0, 1], where d is the task's starting image (the
  JPEG, the gray photo, a classical fill). The network sees ``(x_t, t, cond)`` and its output is a
  residual on ``x_t``: ``ŷ0 = x_t + net(...)``. Sampling starts at t = 1, i.e. *at the degraded image*;
  one step is the regression baseline, more steps add the diversity the noise σ allows.
- ``bridge`` with ``prediction = "chroma-bins"`` (:class:`ChromaBridgeProcess`): the same bridge from the
  gray photo, but the network classifies each p×p block's colour into a grid of chroma bins; the clean
  estimate is the input's luma with the distribution's annealed-mean chroma (colorization only).

A model file records its process in ``extra`` (``objective``, ``prediction``, ``process``); files from
before processes existed read as ``eps`` (or what their ``objective``/``prediction`` say), with the
schedule the file records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from . import sampling
from .chroma import ChromaGrid, coherent_gumbel, joint_bilateral_upsample, rgb_to_ycc, ycc_to_rgb
from .schedule import (
    PAPER_TRAIN,
    ScheduleConfig,
    inference_gammas,
    q_sample,
    sample_training_gamma,
    v_target,
    x0_from_eps,
)

#: ``net(y, level, cond) -> output``: the network with its condition and precision settings bound.
NetFn = Callable[[Tensor, Tensor, Tensor], Tensor]
#: ``denoise(state, level) -> clean-image estimate`` (level of shape (B,)): what every sampler takes.
X0Denoiser = sampling.Denoiser
StepCallback = Callable[[int, int], None]
Impose = Callable[[Tensor, float], Tensor]


def masked_loss(pred: Tensor, target: Tensor, mask: Tensor, kind: str = "l2") -> Tensor:
    """Mean L2 / L1 error over the masked elements (mask 1 = unknown pixels, where the loss counts)."""
    err = (pred.float() - target.float())
    err = err.square() if kind == "l2" else err.abs()
    mask = mask.float().expand_as(err)
    return (err * mask).sum() / mask.sum().clamp(min=1.0)


def _no_temperature(settings: SamplerSettings) -> None:
    if settings.temperature is not None:
        raise ValueError("this model does not decode a colour distribution: an annealing temperature "
                         "(--anneal) applies to chroma-bin colorization models only")


def _bcast(x: Tensor, like: Tensor) -> Tensor:
    return x.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def _run(net: NetFn, y: Tensor, level: Tensor, cond: Tensor, autocast: bool) -> Tensor:
    with torch.autocast(y.device.type, dtype=torch.bfloat16, enabled=autocast):
        return net(y, level, cond).float()


@dataclass(frozen=True)
class SamplerSettings:
    """Which sampler, how many model calls, which level spacing, how much fresh noise per step (η: DDIM's,
    default 0; the bridge's, default 1). None: the model's / sampler's default."""

    sampler: str | None = None
    steps: int | None = None
    spacing: str | None = None
    eta: float | None = None
    temperature: float | None = None  # the chroma-bin colorizer's annealed-mean temperature


class Process:
    """The shared interface; see the module docstring."""

    kind: str = ""
    #: The tasks this kind of process can run at all; None: any image-to-image task.
    tasks: tuple[str, ...] | None = None
    #: Where a fill (inpainting, uncropping) starts: a name in :data:`palette_cli.tasks.fill.FILL_STARTS`.
    fill_start: str = "mirror"
    #: The settings ``palette export --decode KEY=VALUE`` may record as the model file's sampling defaults.
    decoding_keys: tuple[str, ...] = ()

    # -- description
    def metadata(self) -> dict[str, Any]:
        """What a model file records in ``extra`` so that :func:`process_from_metadata` rebuilds this process."""
        return {"objective": "diffusion", "prediction": self.kind}

    def samplers(self) -> tuple[str, ...]:
        """The sampler names this process can run (the first is its default)."""
        from .defaults import DEFAULT_SAMPLER

        return (DEFAULT_SAMPLER, *(name for name in sampling.SAMPLERS if name != DEFAULT_SAMPLER))

    def default_steps(self, sampler: str) -> int:
        return sampling.DEFAULT_STEPS[sampler]

    def resolve(self, settings: SamplerSettings) -> SamplerSettings:
        """Fill in the defaults of a sampler setting and check it; ``ValueError`` names what is wrong."""
        sampler = settings.sampler or self.samplers()[0]
        if sampler not in self.samplers():
            raise ValueError(f"this model samples with {', '.join(self.samplers())}, not {sampler!r}")
        steps = settings.steps or self.default_steps(sampler)
        if steps < 1:
            raise ValueError("steps must be at least 1")
        _no_temperature(settings)
        return SamplerSettings(sampler, steps, settings.spacing, settings.eta)

    def describe(self, settings: SamplerSettings) -> dict[str, str]:
        s = self.resolve(settings)
        return {"sampler": s.sampler, "sampling_steps": str(s.steps),
                "spacing": s.spacing or sampling.DEFAULT_SPACING.get(s.sampler, "uniform")}

    def model_calls(self, settings: SamplerSettings) -> int:
        """Network evaluations per sample (per window or tile)."""
        return self.resolve(settings).steps

    def keeps_start_detail(self, settings: SamplerSettings) -> bool:
        """Whether a fill (an example with known pixels) takes its start's detail on the sampled local
        means (:func:`sample_known`); no by default."""
        return False

    # -- training
    def loss(self, net: NetFn, batch: dict[str, Tensor], generator: torch.Generator, *, loss: str = "l2",
             autocast: bool = False) -> Tensor:
        raise NotImplementedError

    # -- sampling
    def levels(self, settings: SamplerSettings) -> Tensor:
        raise NotImplementedError

    def initial_state(self, cond: Tensor, start: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def denoiser(self, net: NetFn, cond: Tensor) -> X0Denoiser:
        raise NotImplementedError

    def sample(self, net: NetFn, cond: Tensor, start: Tensor, settings: SamplerSettings,
               generator: torch.Generator, *, impose: Impose | None = None,
               on_step: StepCallback | None = None, samples_of_one: bool = False) -> Tensor:
        """Sample targets for a (B,C,h,w) condition; ``start`` is the task's starting image (bridge) and
        ``impose`` re-imposes known pixels after every step. ``samples_of_one``: the batch holds several
        samples of one input (``-n``); a process with a point estimate (the chroma process's annealed
        mean) gives it as the first and draws the others, and gives it for every item otherwise. Returns values clamped to [-1, 1]."""
        raise NotImplementedError

    def is_deterministic(self, settings: SamplerSettings) -> bool:
        """Whether every sample of one input is the same under ``settings`` (then ``-n`` would give copies)."""
        return False


class DiffusionProcess(Process):
    """Palette's Gaussian diffusion over γ (ε or v prediction) with the γ samplers of :mod:`sampling`."""

    def __init__(self, kind: str = "eps", schedule: ScheduleConfig = PAPER_TRAIN):
        if kind not in ("eps", "v"):
            raise ValueError(f"unknown prediction {kind!r}")
        self.kind, self.schedule = kind, schedule

    def loss(self, net, batch, generator, *, loss="l2", autocast=False):
        """Palette's loss: ``y_t = mask·q_sample(y0, γ, ε) + (1−mask)·y0``, ``‖net − ε‖`` (or v) on the
        masked pixels, γ drawn from the training schedule."""
        cond, target, mask = batch["cond"], batch["target"], batch["mask"]
        device = target.device
        gamma = sample_training_gamma(self.schedule, target.shape[0], generator).float().to(device)
        noise = torch.randn(target.shape, generator=generator, dtype=target.dtype).to(device)
        y_in = mask * q_sample(target, gamma, noise) + (1 - mask) * target
        goal = noise if self.kind == "eps" else v_target(target, gamma, noise)
        return masked_loss(_run(net, y_in, gamma, cond, autocast), goal, mask, loss)

    def levels(self, settings):
        s = self.resolve(settings)
        return inference_gammas(s.steps, s.spacing or sampling.DEFAULT_SPACING[s.sampler], train=self.schedule)

    def initial_state(self, cond, start, generator):
        return sampling.initial_noise(tuple(start.shape), generator, cond.device)

    def denoiser(self, net, cond):
        def denoise(y: Tensor, gamma: Tensor) -> Tensor:
            out = net(y, gamma, cond)
            g = _bcast(gamma, y)
            if self.kind == "v":  # x0 = √γ·y_t − √(1−γ)·v
                return g.sqrt() * y - (1 - g).sqrt() * out
            return x0_from_eps(y, g, out)
        return denoise

    def sample(self, net, cond, start, settings, generator, *, impose=None, on_step=None, samples_of_one=False):
        s = self.resolve(settings)
        cb = (lambda i, n, _y, _x0: on_step(i + 1, n)) if on_step else None
        y = self.initial_state(cond, start, generator)
        out = sampling.get_sampler(s.sampler)(
            self.denoiser(net, cond), y, self.levels(s), generator=generator, callback=cb, impose=impose,
            clip_denoised=1.0, **({"eta": s.eta or 0.0} if s.sampler == "ddim" else {}))
        return out.clamp(-1, 1)


class RegressionProcess(Process):
    """The paper's regression baseline: ``net(0, γ = 1, cond)`` is the target."""

    kind = "regression"

    def metadata(self) -> dict[str, Any]:
        return {"objective": "regression", "prediction": "x0"}

    def samplers(self) -> tuple[str, ...]:
        return ("regression",)

    def default_steps(self, sampler: str) -> int:
        return 1

    def describe(self, settings):
        return {"sampler": "regression (one pass)"}

    def model_calls(self, settings):
        return 1

    def resolve(self, settings):
        return SamplerSettings("regression", 1)

    def is_deterministic(self, settings):
        return True

    def loss(self, net, batch, generator, *, loss="l2", autocast=False):
        cond, target, mask = batch["cond"], batch["target"], batch["mask"]
        ones = torch.ones(target.shape[0], device=target.device)
        return masked_loss(_run(net, torch.zeros_like(target), ones, cond, autocast), target, mask, loss)

    def levels(self, settings):
        return torch.ones(1, dtype=torch.float64)

    def initial_state(self, cond, start, generator):
        return torch.zeros_like(start)

    def denoiser(self, net, cond):
        return lambda y, level: net(torch.zeros_like(y), torch.ones_like(level), cond)

    def sample(self, net, cond, start, settings, generator, *, impose=None, on_step=None, samples_of_one=False):
        out = self.denoiser(net, cond)(self.initial_state(cond, start, generator),
                                       torch.ones(cond.shape[0], device=cond.device))
        if impose is not None:
            out = impose(out, 1.0)
        if on_step:
            on_step(1, 1)
        return out.clamp(-1, 1)


class BridgeProcess(Process):
    """A Brownian bridge from the task's starting image d (t = 1) to the clean image (t = 0).

    ``x_t = (1−t)·y0 + t·d + σ·√(t(1−t))·ε``; the network output is a residual on x_t (zero-initialised
    last layer: an untrained network returns its input). Training draws t uniformly in (0, 1], with
    probability ``p_start`` exactly 1 (the first sampling step, which decides most of the result).
    """

    kind = "bridge"

    #: The starts a fill may take: ``mirror`` (the known part reflected into the unknown one: the model
    #: refines a copy) or ``smooth`` (local mean colours only: the model must make every detail).
    FILL_STARTS = ("mirror", "smooth")
    decoding_keys = ("steps", "time_power")

    def __init__(self, sigma: float = 0.1, p_start: float = 0.25, start: str = "mirror", steps: int = 1,
                 time_power: float = 1.0):
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"bridge sigma must be a finite number >= 0, got {sigma!r}")
        if not 0 <= p_start <= 1:
            raise ValueError(f"bridge p_start must be in [0, 1], got {p_start!r}")
        if start not in self.FILL_STARTS:
            raise ValueError(f"bridge start must be one of {', '.join(self.FILL_STARTS)}, got {start!r}")
        if isinstance(steps, bool) or not float(steps).is_integer() or steps < 1:
            raise ValueError(f"bridge steps must be a whole number >= 1, got {steps!r}")
        if not (math.isfinite(time_power) and time_power > 0):
            raise ValueError(f"bridge time_power must be a finite number > 0, got {time_power!r}")
        self.sigma, self.p_start = float(sigma), float(p_start)
        self.fill_start, self.steps, self.time_power = start, int(steps), float(time_power)

    def metadata(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": "bridge", "sigma": self.sigma, "p_start": self.p_start}
        if self.fill_start != "mirror" or self.steps != 1 or self.time_power != 1:
            # (files of the first bridge models stay as they were)
            spec.update(start=self.fill_start, steps=self.steps, time_power=self.time_power)
        return {"objective": "bridge", "prediction": "residual", "process": spec}

    def samplers(self) -> tuple[str, ...]:
        return ("bridge",)

    def default_steps(self, sampler: str) -> int:
        """The model's own default (chosen by measurement when it was exported; 1 for the first models)."""
        return self.steps

    def describe(self, settings):
        s = self.resolve(settings)
        return {"sampler": "bridge", "sampling_steps": str(s.steps),
                "spacing": "uniform" if self.time_power == 1 else f"t = u^{self.time_power:g}",
                "bridge_sigma": f"{self.sigma:g}"}

    def resolve(self, settings):
        sampler = settings.sampler or "bridge"
        if sampler not in self.samplers():
            raise ValueError(f"this model samples with {', '.join(self.samplers())}, not {sampler!r}")
        steps = settings.steps or self.default_steps(sampler)
        if steps < 1:
            raise ValueError("steps must be at least 1")
        _no_temperature(settings)
        return SamplerSettings(sampler, steps, "uniform", settings.eta)

    def is_deterministic(self, settings):
        """One step returns the network's estimate at the start; more steps add noise σ (scaled by η)."""
        s = self.resolve(settings)
        return s.steps == 1 or self.sigma == 0 or (s.eta is not None and s.eta == 0)

    def keeps_start_detail(self, settings: SamplerSettings) -> bool:
        """Yes for one step. That step is the conditional mean E[photo | start]: the right local colours,
        but the reflected texture of the start averaged away where the model is unsure. Chosen on training
        photos, where it lowered the perceptual distance of centre holes, free-form holes and uncropping
        (docs/RESULTS.md, Study 6). Never for a smooth start: it has no detail, the model makes it."""
        return self.fill_start == "mirror" and self.resolve(settings).steps == 1

    def noisy(self, y0: Tensor, start: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """``x_t`` for clean images ``y0``, starting images ``start`` and times ``t`` of shape (B,)."""
        tt = _bcast(t, y0)
        return (1 - tt) * y0 + tt * start + self.sigma * (tt * (1 - tt)).clamp(min=0).sqrt() * noise

    def draw_times(self, batch: int, generator: torch.Generator) -> Tensor:
        """t in (0, 1]: uniform, or exactly 1 with probability ``p_start`` (float32, shape (B,))."""
        u = 1 - torch.rand(batch, generator=generator, dtype=torch.float64)  # (0, 1]
        at_start = torch.rand(batch, generator=generator, dtype=torch.float64) < self.p_start
        return torch.where(at_start, torch.ones_like(u), u).float()

    def training_state(self, batch: dict[str, Tensor], generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """A random time t (B,) and the state x_t of a training batch (known pixels kept clean)."""
        cond, target, mask = batch["cond"], batch["target"], batch["mask"]
        start = batch.get("start", cond)
        t = self.draw_times(target.shape[0], generator).to(target.device)
        noise = torch.randn(target.shape, generator=generator, dtype=target.dtype).to(target.device)
        return t, mask * self.noisy(target, start, t, noise) + (1 - mask) * target

    def loss(self, net, batch, generator, *, loss="l2", autocast=False):
        t, x_t = self.training_state(batch, generator)
        pred = x_t + _run(net, x_t, t, batch["cond"], autocast)
        return masked_loss(pred, batch["target"], batch["mask"], loss)

    def levels(self, settings):
        """Times from 1 (the starting image) down to 0 (clean): ``t = u^time_power`` for ``u`` evenly spaced,
        ``steps`` model calls. A power above 1 puts more steps near the clean end, where the bridge's noise
        (σ·√(t(1−t))) falls fastest and the finest detail is made."""
        steps = self.resolve(settings).steps
        return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64) ** self.time_power

    def initial_state(self, cond, start, generator):
        return start.to(cond.device).clone()

    def denoiser(self, net, cond, settings: SamplerSettings | None = None):
        return lambda x, t: x + net(x, t, cond)

    def sample(self, net, cond, start, settings, generator, *, impose=None, on_step=None, samples_of_one=False):
        return sample_bridge(self.denoiser(net, cond, settings), self.initial_state(cond, start, generator),
                             start.to(cond.device), self.levels(settings), self.sigma, generator=generator,
                             impose=impose, on_step=on_step,
                             eta=1.0 if settings.eta is None else float(settings.eta))


class ChromaBridgeProcess(BridgeProcess):
    """The gray→colour bridge with a classifying network (``prediction = "chroma-bins"``).

    The network (``num_classes`` = bins²) gives logits over a :class:`~palette_cli.chroma.ChromaGrid` per
    p×p block of x_t. Training minimises the soft cross-entropy against the clean image's block-mean
    chroma; the clean estimate is the condition's luma (exact) with the annealed-mean chroma at
    ``temperature``, upsampled bilinearly. An L1/L2 regressor predicts a median/mean colour, muted where
    an object could have several; the annealed mean keeps the likeliest colours' saturation.
    ``rebalance`` (0: none, 0.5: Zhang et al.'s) weighs each pixel by the rarity of its colour in the
    batch: without it the likeliest colour is mostly the commonest (gray-brown) and the annealed mean
    moves *towards* gray.
    """

    kind = "chroma-bins"
    tasks = ("colorize",)
    decoding_keys = ("temperature", "draw_strength", "draw_cells", "guide_radius")

    def __init__(self, sigma: float = 0.25, p_start: float = 0.5, bins: int = 17, extent: float = 0.8,
                 temperature: float = 0.38, rebalance: float = 0.0, draw_strength: float = 0.5,
                 draw_cells: int = 2, guide_radius: int = 0):
        super().__init__(sigma, p_start)
        if not (math.isfinite(draw_strength) and 0 <= draw_strength <= 4):
            raise ValueError(f"chroma draw_strength must be in [0, 4], got {draw_strength!r}")
        if not 1 <= int(draw_cells) <= 64:
            raise ValueError(f"chroma draw_cells must be in [1, 64], got {draw_cells!r}")
        self.draw_strength, self.draw_cells = float(draw_strength), int(draw_cells)
        if not 0 <= int(guide_radius) <= 64:
            raise ValueError(f"chroma guide_radius must be in [0, 64], got {guide_radius!r}")
        self.guide_radius = int(guide_radius)
        self.grid = ChromaGrid(int(bins), float(extent))
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"chroma temperature must be a finite number > 0, got {temperature!r}")
        if not 0 <= rebalance < 1:
            raise ValueError(f"chroma rebalance must be in [0, 1) (0: none), got {rebalance!r}")
        self.temperature, self.rebalance = float(temperature), float(rebalance)

    def metadata(self) -> dict[str, Any]:
        return {"objective": "bridge", "prediction": "chroma-bins",
                "process": {"kind": "bridge", "sigma": self.sigma, "p_start": self.p_start,
                            "chroma_bins": self.grid.bins, "chroma_extent": self.grid.extent,
                            "temperature": self.temperature, "rebalance": self.rebalance,
                            "draw_strength": self.draw_strength, "draw_cells": self.draw_cells,
                            "guide_radius": self.guide_radius}}

    def describe(self, settings):
        return {**super().describe(settings), "temperature": f"{self._temperature(settings):g}"}

    def resolve(self, settings):
        t = settings.temperature
        if t is not None and not (math.isfinite(t) and t > 0):
            raise ValueError(f"the annealing temperature must be a number > 0, got {t!r}")
        if self.p_start == 1.0 and (settings.steps or 1) != 1:
            raise ValueError("this model was trained at the bridge's start only: it samples in one step "
                             "(leave out --sampling-steps)")
        return replace(super().resolve(replace(settings, temperature=None)), temperature=t)

    def _temperature(self, settings: SamplerSettings | None) -> float:
        t = self.resolve(settings).temperature if settings is not None else None
        return self.temperature if t is None else float(t)

    def loss(self, net, batch, generator, *, loss="ce", autocast=False):
        target, mask = batch["target"], batch["mask"]
        t, x_t = self.training_state(batch, generator)
        logits = _run(net, x_t, t, batch["cond"], autocast)
        factor = target.shape[-1] // logits.shape[-1]
        small = F.avg_pool2d(target.float(), factor) if factor > 1 else target.float()
        weight = F.avg_pool2d(mask.float(), factor) if factor > 1 else mask.float()
        return self.grid.cross_entropy(logits, rgb_to_ycc(small)[1], weight[:, :1], rebalance=self.rebalance)

    def colour(self, logits: Tensor, cond: Tensor, temperature: float | None = None) -> Tensor:
        """RGB clean estimate (B,3,H,W): ``cond``'s luma with the logits' annealed-mean chroma."""
        chroma = self.grid.decode(logits, self.temperature if temperature is None else temperature)
        return self._on_luma(chroma, cond)

    def _on_luma(self, chroma: Tensor, cond: Tensor) -> Tensor:
        """``cond``'s luma with ``chroma`` upsampled to its size: bilinearly, or with ``guide_radius`` > 0
        guided by the luma's edges (:func:`~palette_cli.chroma.joint_bilateral_upsample`), as RGB."""
        luma = rgb_to_ycc(cond.float())[0]
        if chroma.shape[-2:] != cond.shape[-2:]:
            if self.guide_radius:
                chroma = joint_bilateral_upsample(chroma, luma, radius=self.guide_radius)
            else:
                chroma = F.interpolate(chroma, size=cond.shape[-2:], mode="bilinear", align_corners=False)
        return ycc_to_rgb(luma, chroma).to(cond.dtype)

    def denoiser(self, net, cond, settings: SamplerSettings | None = None):
        temperature = self._temperature(settings)
        return lambda x, t: self.colour(net(x, t, cond), cond, temperature)

    def is_deterministic(self, settings):
        return self.draw_strength == 0 and super().is_deterministic(settings)

    def sample(self, net, cond, start, settings, generator, *, impose=None, on_step=None, samples_of_one=False):
        """One step: the network's colour distribution at the start, decoded per sample. Each sample is the
        annealed mean, except with ``samples_of_one``, where all but the first are spatially coherent draws
        (:func:`~palette_cli.chroma.coherent_gumbel` noise on the logits, times ``draw_strength``, over a
        ``draw_cells``² lattice). More steps (models trained at every t) run the bridge sampler instead."""
        s = self.resolve(settings)
        if s.steps > 1 or self.draw_strength == 0:
            return super().sample(net, cond, start, settings, generator, impose=impose, on_step=on_step)
        x = self.initial_state(cond, start, generator)
        if impose is not None:
            x = impose(x, 1.0)
        logits = net(x, torch.ones(x.shape[0], device=x.device), cond).float()
        noise = None
        if samples_of_one and logits.shape[0] > 1:  # the first sample stays the annealed mean
            noise = coherent_gumbel(tuple(logits.shape), generator, self.draw_cells, logits.device)
            noise[0] = 0
            noise = noise * self.draw_strength
        chroma = self.grid.decode(logits, self._temperature(settings), noise)
        out = self._on_luma(chroma, cond)
        if impose is not None:
            out = impose(out, 0.0)
        if on_step is not None:
            on_step(1, 1)
        return out.clamp(-1, 1)


@torch.no_grad()
def sample_bridge(denoiser: X0Denoiser, x: Tensor, start: Tensor, times: Tensor, sigma: float, *,
                  generator: torch.Generator | None = None, impose: Impose | None = None,
                  on_step: StepCallback | None = None, eta: float = 1.0, clip: float = 1.0) -> Tensor:
    """Ancestral sampling of a Brownian bridge, from t = times[0] (= 1) down to times[-1] (= 0).

    The bridge's noise part ``b_s = x_s − (1−s)·ŷ0 − s·d`` (d the starting image) is a Brownian bridge
    pinned to 0 at both ends, so given ``b_s`` its value at t < s is ``N((t/s)·b_s, σ²·t(s−t)/s)``; the
    step puts that around the new mean ``(1−t)·ŷ0 + t·d``. ``eta`` scales the fresh noise (0: the
    deterministic mean path). The last step (t = 0) returns ŷ0.
    """
    seq = [float(v) for v in times]
    if len(seq) < 2 or seq[0] > 1.0 or seq[-1] != 0.0 or any(b >= a for a, b in zip(seq, seq[1:])):
        raise ValueError("bridge times must decrease strictly from at most 1 to 0")
    n = len(seq) - 1
    if impose is not None:
        x = impose(x, seq[0])
    for i, (s, t) in enumerate(zip(seq, seq[1:])):
        level = torch.full((x.shape[0],), s, dtype=torch.float32, device=x.device)
        y0 = denoiser(x, level).to(x.dtype)
        if clip is not None:
            y0 = y0.clamp(-clip, clip)
        if t == 0.0:
            x = y0
        else:
            b = x - (1 - s) * y0 - s * start
            x = (1 - t) * y0 + t * start + (t / s) * b
            var = sigma ** 2 * t * (s - t) / s
            if eta > 0 and var > 0:
                x = x + eta * math.sqrt(var) * sampling.noise_like(x, generator)
        if impose is not None:
            x = impose(x, t)
        if on_step is not None:
            on_step(i + 1, n)
    return x


def _whole(value: Any, name: str) -> int:
    """An integer setting that a file or config may write as 4 or 4.0, never 4.5."""
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"process setting {name} must be a whole number, got {value!r}")
    return int(number)

DETAIL_SIZE = 8  # the blur (at the working resolution) that splits a fill's local means from its detail


def sample_known(process: Process, net: NetFn, cond: Tensor, start: Tensor, settings: SamplerSettings,
                 generator: torch.Generator, *, known: Tensor | None = None, mask: Tensor | None = None,
                 on_step: StepCallback | None = None, samples_of_one: bool = False) -> Tensor:
    """Sample with the known pixels (``mask`` 0) of ``known`` imposed after every step, and where the
    process keeps its start's detail, give the unknown pixels of every fill (an example with known pixels)
    the start's detail (what a ``DETAIL_SIZE``-pixel blur removes) on the sampled local means. The one
    sampling path of the pipeline and of training validation, so that a validation grid shows what the
    commands produce."""
    from .windows import lock_low_frequencies

    impose = None
    if mask is not None:
        def impose(y: Tensor, _level: float) -> Tensor:
            return y * mask + known * (1 - mask)

    out = process.sample(net, cond, start, settings, generator, impose=impose, on_step=on_step,
                         samples_of_one=samples_of_one)
    if mask is not None and process.keeps_start_detail(settings):
        fills = (mask < 0.5).flatten(1).any(1).view(-1, 1, 1, 1)
        kept = torch.where(mask.bool(), lock_low_frequencies(start, out, DETAIL_SIZE), out)
        out = torch.where(fills, kept, out)
    return out


def process_from_metadata(extra: dict[str, Any], training: dict[str, Any] | None = None,
                          schedule: dict[str, Any] | None = None) -> Process:
    """The process a model file (or training config) describes; older files read as ε diffusion."""
    training = training or {}
    objective = str(extra.get("objective") or training.get("objective") or "diffusion")
    if objective == "regression":
        return RegressionProcess()
    if objective == "bridge":
        spec = extra.get("process") or training.get("process") or {}
        if not isinstance(spec, dict):
            raise ValueError("the bridge process settings must be a table")
        if str(extra.get("prediction") or training.get("prediction") or "residual") == "chroma-bins":
            return ChromaBridgeProcess(sigma=float(spec.get("sigma", 0.25)), p_start=float(spec.get("p_start", 0.5)),
                                       bins=int(spec.get("chroma_bins", 17)),
                                       extent=float(spec.get("chroma_extent", 0.8)),
                                       temperature=float(spec.get("temperature", 0.38)),
                                       rebalance=float(spec.get("rebalance", 0.0)),
                                       draw_strength=float(spec.get("draw_strength", 0.5)),
                                       draw_cells=_whole(spec.get("draw_cells", 2), "draw_cells"),
                                       guide_radius=_whole(spec.get("guide_radius", 0), "guide_radius"))
        return BridgeProcess(sigma=float(spec.get("sigma", 0.1)), p_start=float(spec.get("p_start", 0.25)),
                             start=str(spec.get("start", "mirror")), steps=_whole(spec.get("steps", 1), "steps"),
                             time_power=float(spec.get("time_power", 1.0)))
    if objective != "diffusion":
        raise ValueError(f"the model's objective {objective!r} is not one this version can sample")
    prediction = str(extra.get("prediction") or training.get("prediction") or "eps")
    if prediction not in ("eps", "v"):
        raise ValueError(f"the model predicts {prediction!r}, which this version cannot sample")
    sched = ScheduleConfig.from_dict(schedule) if schedule else PAPER_TRAIN
    return DiffusionProcess(prediction, sched)
