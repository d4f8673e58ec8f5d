"""Noise schedules in the paper's γ (= ᾱ) parametrisation.

γ is the fraction of signal power left at a noise level: ``y_t = sqrt(γ)·y0 + sqrt(1−γ)·ε``.
γ = 1 is a clean image, γ → 0 pure noise. The network is conditioned on γ itself, not on a step
index, so training and inference may use different schedules and step counts. Schedule maths is
done in float64 and only cast at the point of use.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

BETA_SCHEDULES = ("linear", "cosine")
SPACINGS = ("logsnr", "uniform", "paper")


@dataclass(frozen=True)
class ScheduleConfig:
    """A β schedule: ``kind`` linear (β from ``start`` to ``end``) or cosine, over ``steps`` steps."""

    kind: str = "linear"
    steps: int = 2000
    start: float = 1e-6
    end: float = 0.01

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ScheduleConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown schedule fields: {sorted(unknown)}")
        return cls(**d)


#: The paper's training schedule: linear β from 1e-6 to 0.01 over 2000 steps.
PAPER_TRAIN = ScheduleConfig("linear", 2000, 1e-6, 0.01)
#: The paper's inference schedule: linear β from 1e-4 to 0.09 over 1000 steps.
PAPER_INFERENCE = ScheduleConfig("linear", 1000, 1e-4, 0.09)


def betas(config: ScheduleConfig) -> Tensor:
    """β_1..β_T (float64)."""
    if config.kind == "linear":
        return torch.linspace(config.start, config.end, config.steps, dtype=torch.float64)
    if config.kind == "cosine":
        # Nichol & Dhariwal's cosine schedule, with β clipped at 0.999.
        s = 0.008
        t = torch.linspace(0, 1, config.steps + 1, dtype=torch.float64)
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - f[1:] / f[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown beta schedule {config.kind!r}; choose from {BETA_SCHEDULES}")


def gammas(config: ScheduleConfig) -> Tensor:
    """γ_1..γ_T = cumulative products of (1 − β), decreasing from ≈1 to the final noise level."""
    return torch.cumprod(1 - betas(config), dim=0)


def sample_training_gamma(
    config: ScheduleConfig, batch: int, generator: torch.Generator | None = None
) -> Tensor:
    """Draw γ for a training batch: a step t uniform in 1..T, then γ uniform in [γ_t, γ_{t−1}].

    γ_0 = 1. This continuous draw (WaveGrad / SR3 style) is what lets inference use any schedule.
    Returns float64 of shape (batch,).
    """
    g = torch.cat([torch.ones(1, dtype=torch.float64), gammas(config)])
    t = torch.randint(1, config.steps + 1, (batch,), generator=generator)
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    return g[t] + u * (g[t - 1] - g[t])


def _bcast(gamma: Tensor | float, like: Tensor) -> Tensor:
    gamma = torch.as_tensor(gamma, dtype=like.dtype, device=like.device)
    return gamma.reshape(-1, *([1] * (like.dim() - 1))) if gamma.dim() else gamma


def q_sample(y0: Tensor, gamma: Tensor | float, noise: Tensor) -> Tensor:
    """Noisy target ``sqrt(γ)·y0 + sqrt(1−γ)·noise`` (γ per batch item or scalar)."""
    g = _bcast(gamma, y0)
    return g.sqrt() * y0 + (1 - g).sqrt() * noise


def x0_from_eps(y_t: Tensor, gamma: Tensor | float, eps: Tensor) -> Tensor:
    """Clean-image estimate implied by a noise estimate."""
    g = _bcast(gamma, y_t)
    return (y_t - (1 - g).sqrt() * eps) / g.sqrt()


def inference_gammas(
    steps: int,
    spacing: str = "logsnr",
    *,
    train: ScheduleConfig = PAPER_TRAIN,
    gamma_max: float = 0.9999,
) -> Tensor:
    """γ sequence for sampling: noisiest first, ending with 1.0 (clean); ``steps`` model calls.

    - ``paper``: the paper's 1000-step schedule (linear β 1e-4 → 0.09), respaced to ``steps``
      evenly spaced steps (``steps=1000`` is exactly the paper's sampler). Uniform in t: most of
      its steps sit at near-pure noise.
    - ``uniform``: the training schedule respaced evenly in t.
    - ``logsnr``: uniform in log-SNR between the training schedule's noisiest level and
      ``gamma_max`` — spends steps where the image actually forms.
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if spacing in ("paper", "uniform"):
        g = gammas(PAPER_INFERENCE if spacing == "paper" else train)
        if steps > len(g):
            raise ValueError(f"at most {len(g)} steps with the {spacing!r} spacing")
        # Evenly spaced indices from the last (noisiest) to the first step, as in respacing.
        idx = torch.linspace(len(g) - 1, 0, steps, dtype=torch.float64).round().long()
        seq = g[idx]
    elif spacing == "logsnr":
        # log-SNR λ = log(γ / (1 − γ)) = logit(γ), and back γ = sigmoid(λ)
        lo = torch.logit(gammas(train)[-1])
        hi = torch.logit(torch.tensor(gamma_max, dtype=torch.float64))
        seq = torch.sigmoid(torch.linspace(float(lo), float(hi), steps, dtype=torch.float64))
    else:
        raise ValueError(f"unknown spacing {spacing!r}; choose from {SPACINGS}")
    return torch.cat([seq, torch.ones(1, dtype=torch.float64)])


def v_target(y0: Tensor, gamma: Tensor | float, noise: Tensor) -> Tensor:
    """The v-prediction target ``√γ·noise − √(1−γ)·y0`` for ``y_t = q_sample(y0, γ, noise)``."""
    g = _bcast(gamma, y0)
    return g.sqrt() * noise - (1 - g).sqrt() * y0
