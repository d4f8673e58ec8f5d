"""Palette's processes: Gaussian diffusion over γ, whose network predicts the noise ε or v, and the paper's
regression baseline (see :mod:`palette_cli.diffusion.process` for what a process owns).

- ``eps``: ``y_t = √γ·y0 + √(1−γ)·ε``, the network predicts ε. Starts from noise.
- ``v``: the same diffusion, the network predicts ``v = √γ·ε − √(1−γ)·y0``.
- ``regression``: one pass from ``(0, γ = 1, cond)`` to the target; no sampler, no randomness.

A diffusion model samples on the levels of the schedule its file records (files from before schedules
were recorded: the paper's).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from . import sampling
from .process import Process, SamplerSettings, bcast, masked_loss, run_net
from .schedule import (
    PAPER_TRAIN,
    ScheduleConfig,
    inference_gammas,
    q_sample,
    sample_training_gamma,
    v_target,
    x0_from_eps,
)


class DiffusionProcess(Process):
    """Palette's Gaussian diffusion over γ with the γ samplers of :mod:`palette_cli.diffusion.sampling`; a subclass
    says what the network predicts (:meth:`target`, :meth:`clean`)."""

    objective: ClassVar[str] = "diffusion"

    def __init__(self, schedule: ScheduleConfig = PAPER_TRAIN):
        self.schedule = schedule

    @classmethod
    def from_spec(cls, spec=None, schedule=None, *, strict=False):
        if isinstance(schedule, dict):  # as a file records it; an empty one: the paper's
            schedule = ScheduleConfig.from_dict(schedule) if schedule else None
        return cls(schedule or PAPER_TRAIN, **cls.read_spec(spec, strict=strict))

    def target(self, y0: Tensor, gamma: Tensor, noise: Tensor) -> Tensor:
        """What the network learns to output for ``y_t = q_sample(y0, γ, noise)``."""
        raise NotImplementedError

    def clean(self, y: Tensor, gamma: Tensor, out: Tensor) -> Tensor:
        """The clean-image estimate from the network's output ``out`` at ``y_t = y`` (γ broadcast to ``y``)."""
        raise NotImplementedError

    def loss(self, net, batch, generator, *, loss="l2", autocast=False):
        """Palette's loss: ``y_t = mask·q_sample(y0, γ, ε) + (1−mask)·y0``, ``‖net − target‖`` on the
        masked pixels, γ drawn from the training schedule."""
        cond, target, mask = batch["cond"], batch["target"], batch["mask"]
        device = target.device
        gamma = sample_training_gamma(self.schedule, target.shape[0], generator).float().to(device)
        noise = torch.randn(target.shape, generator=generator, dtype=target.dtype).to(device)
        y_in = mask * q_sample(target, gamma, noise) + (1 - mask) * target
        return masked_loss(run_net(net, y_in, gamma, cond, autocast), self.target(target, gamma, noise), mask, loss)

    def levels(self, settings):
        s = self.resolve(settings)
        return inference_gammas(s.steps, s.spacing or sampling.DEFAULT_SPACING[s.sampler], train=self.schedule)

    def initial_state(self, cond, start, generator):
        return sampling.initial_noise(tuple(start.shape), generator, cond.device)

    def denoiser(self, net, cond):
        def denoise(y: Tensor, gamma: Tensor) -> Tensor:
            return self.clean(y, bcast(gamma, y), net(y, gamma, cond))
        return denoise

    def sample(self, net, cond, start, settings, generator, *, impose=None, on_step=None, samples_of_one=False,
               guess=None):
        s = self.resolve(settings)
        cb = (lambda i, n, _y, _x0: on_step(i + 1, n)) if on_step else None
        y = self.initial_state(cond, start, generator)
        out = sampling.get_sampler(s.sampler)(
            self.denoiser(net, cond), y, self.levels(s), generator=generator, callback=cb, impose=impose,
            clip_denoised=1.0, **({"eta": s.eta or 0.0} if s.sampler == "ddim" else {}))
        return out.clamp(-1, 1)


class EpsDiffusion(DiffusionProcess):
    """The network predicts the noise ε (the paper's)."""

    prediction: ClassVar[str] = "eps"
    kind: ClassVar[str] = "eps"

    def target(self, y0, gamma, noise):
        return noise

    def clean(self, y, gamma, out):
        return x0_from_eps(y, gamma, out)


class VDiffusion(DiffusionProcess):
    """The network predicts ``v = √γ·ε − √(1−γ)·y0``, whose target keeps the clean image at every level."""

    prediction: ClassVar[str] = "v"
    kind: ClassVar[str] = "v"

    def target(self, y0, gamma, noise):
        return v_target(y0, gamma, noise)

    def clean(self, y, gamma, out):  # x0 = √γ·y_t − √(1−γ)·v
        return gamma.sqrt() * y - (1 - gamma).sqrt() * out


class RegressionProcess(Process):
    """The paper's regression baseline: ``net(0, γ = 1, cond)`` is the target."""

    objective: ClassVar[str] = "regression"
    prediction: ClassVar[str] = "x0"
    legacy_predictions: ClassVar[tuple[str, ...]] = ("eps", "v")
    kind: ClassVar[str] = "regression"
    one_level = True

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
        return masked_loss(run_net(net, torch.zeros_like(target), ones, cond, autocast), target, mask, loss)

    def levels(self, settings):
        return torch.ones(1, dtype=torch.float64)

    def initial_state(self, cond, start, generator):
        return torch.zeros_like(start)

    def denoiser(self, net, cond):
        return lambda y, level: net(torch.zeros_like(y), torch.ones_like(level), cond)

    def sample(self, net, cond, start, settings, generator, *, impose=None, on_step=None, samples_of_one=False,
               guess=None):
        out = self.denoiser(net, cond)(self.initial_state(cond, start, generator),
                                       torch.ones(cond.shape[0], device=cond.device))
        if impose is not None:
            out = impose(out, 1.0)
        if on_step:
            on_step(1, 1)
        return out.clamp(-1, 1)

