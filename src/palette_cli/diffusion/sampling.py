"""Samplers: small pure functions over a denoiser.

Every sampler has the same shape::

    sample_x(denoiser, y, gammas, *, generator=None, callback=None, impose=None, clip_denoised=None)

- ``denoiser(y_t, gamma) -> x0`` estimates the clean image (as k-diffusion's samplers take it);
  ``gamma`` has shape (B,). It holds the network, what the network predicts (see
  :mod:`palette_cli.diffusion.process`), the condition and any precision settings; samplers know nothing of them.
- ``y`` is the starting noise (standard normal), ``gammas`` the γ sequence from
  :func:`palette_cli.diffusion.schedule.inference_gammas`: noisiest first, ending with 1.0. One model call per
  step, ``len(gammas) - 1`` steps.
- ``impose(y, gamma) -> y`` re-imposes known pixels after every step (inpainting, uncropping); it is
  also applied to the starting noise.
- ``callback(i, n, y, x0)`` is called after step ``i`` of ``n`` with the current sample and the
  current clean-image estimate (for progress bars and previews).
- ``clip_denoised``: clamp the clean-image estimate to ±value (images live in [-1, 1]).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..defaults import SAMPLER_SPACING, SAMPLER_STEPS

Denoiser = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[int, int, Tensor, Tensor], None]
Impose = Callable[[Tensor, float], Tensor]


def initial_noise(shape: tuple[int, ...], generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> Tensor:
    """Standard normal noise drawn on the generator's device, then moved: same seed, same noise on any device."""
    gen_device = generator.device if generator is not None else "cpu"
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


def noise_like(y: Tensor, generator: torch.Generator | None) -> Tensor:
    return initial_noise(tuple(y.shape), generator, y.device).to(y.dtype)


def _denoise(denoiser: Denoiser, y: Tensor, g: float, clip: float | None) -> tuple[Tensor, Tensor]:
    """(eps, x0) at level γ = g < 1: the clean-image estimate (clipped to ±clip) and the noise it implies."""
    gamma = torch.full((y.shape[0],), g, dtype=torch.float32, device=y.device)
    x0 = denoiser(y, gamma).to(y.dtype)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    eps = (y - math.sqrt(g) * x0) / math.sqrt(1 - g)
    return eps, x0


def _as_floats(gammas: Tensor) -> list[float]:
    seq = [float(g) for g in gammas]
    if len(seq) < 2 or seq[-1] != 1.0:
        raise ValueError("gammas must hold at least two levels and end with 1.0")
    if any(b <= a for a, b in zip(seq, seq[1:])):
        raise ValueError("gammas must increase strictly (noisiest first)")
    return seq


def _start(y: Tensor, g0: float, impose: Impose | None) -> Tensor:
    return impose(y, g0) if impose is not None else y


def _after_step(y: Tensor, g: float, i: int, n: int, x0: Tensor, impose: Impose | None,
                callback: Callback | None) -> Tensor:
    """Re-impose known pixels at the new level, then report the step."""
    if impose is not None:
        y = impose(y, g)
    if callback is not None:
        callback(i, n, y, x0)
    return y


@torch.no_grad()
def sample_ddpm(denoiser: Denoiser, y: Tensor, gammas: Tensor, *, generator: torch.Generator | None = None,
                callback: Callback | None = None, impose: Impose | None = None,
                clip_denoised: float | None = None, variance: str = "beta") -> Tensor:
    """Ancestral sampling (the paper's sampler).

    Step from level γ_s to the less noisy γ_t: a = γ_s / γ_t is the step's α; the mean is the
    posterior mean of q(y_t | y_s, x0) with x0 estimated by the network, and the variance is
    ``1 − a`` (``variance="beta"``, the paper's choice) or the posterior variance
    ``(1 − a)(1 − γ_t)/(1 − γ_s)`` (``"posterior"``). The last step to γ = 1 adds no noise.
    """
    if variance not in ("beta", "posterior"):
        raise ValueError("variance must be 'beta' or 'posterior'")
    seq = _as_floats(gammas)
    n = len(seq) - 1
    y = _start(y, seq[0], impose)
    for i, (gs, gt) in enumerate(zip(seq, seq[1:])):
        _, x0 = _denoise(denoiser, y, gs, clip_denoised)
        a = gs / gt
        mean = (math.sqrt(gt) * (1 - a) * x0 + math.sqrt(a) * (1 - gt) * y) / (1 - gs)
        if gt < 1.0:
            var = (1 - a) if variance == "beta" else (1 - a) * (1 - gt) / (1 - gs)
            y = mean + math.sqrt(var) * noise_like(y, generator)
        else:
            y = mean
        y = _after_step(y, gt, i, n, x0, impose, callback)
    return y


@torch.no_grad()
def sample_ddim(denoiser: Denoiser, y: Tensor, gammas: Tensor, *, generator: torch.Generator | None = None,
                callback: Callback | None = None, impose: Impose | None = None,
                clip_denoised: float | None = None, eta: float = 0.0) -> Tensor:
    """DDIM (Song et al.): deterministic for ``eta=0``; ``eta=1`` matches DDPM's posterior variance."""
    seq = _as_floats(gammas)
    n = len(seq) - 1
    y = _start(y, seq[0], impose)
    for i, (gs, gt) in enumerate(zip(seq, seq[1:])):
        eps, x0 = _denoise(denoiser, y, gs, clip_denoised)
        sigma2 = eta ** 2 * (1 - gt) / (1 - gs) * (1 - gs / gt)
        y = math.sqrt(gt) * x0 + math.sqrt(max(1 - gt - sigma2, 0.0)) * eps
        if sigma2 > 0:
            y = y + math.sqrt(sigma2) * noise_like(y, generator)
        y = _after_step(y, gt, i, n, x0, impose, callback)
    return y


def sample_dpmpp_2m(denoiser: Denoiser, y: Tensor, gammas: Tensor, *, generator: torch.Generator | None = None,
                    callback: Callback | None = None, impose: Impose | None = None,
                    clip_denoised: float | None = None) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): second-order multistep solver of the probability-flow ODE on
    the data prediction — :func:`sample_dpmpp_2m_sde` without noise (``eta=0``).

    With α = √γ, σ = √(1−γ) and λ = log(α/σ): ``y_t = (σ_t/σ_s)·y_s + α_t(1 − e^{−h})·D`` where
    h = λ_t − λ_s and D extrapolates the last two clean-image estimates (first step: D = x0). The last
    step to γ = 1 returns the clean-image estimate. Deterministic; ``generator`` is unused.
    """
    return sample_dpmpp_2m_sde(denoiser, y, gammas, generator=generator, callback=callback, impose=impose,
                               clip_denoised=clip_denoised, eta=0.0)


@torch.no_grad()
def sample_dpmpp_2m_sde(denoiser: Denoiser, y: Tensor, gammas: Tensor, *, generator: torch.Generator | None = None,
                        callback: Callback | None = None, impose: Impose | None = None,
                        clip_denoised: float | None = None, eta: float = 1.0) -> Tensor:
    """DPM-Solver++(2M) SDE (Lu et al. 2022): the stochastic variant of :func:`sample_dpmpp_2m`.

    With h = λ_t − λ_s and ``eta`` = 1: ``y_t = (σ_t/σ_s)e^{−h}·y_s + α_t(1 − e^{−2h})·D + σ_t√(1 − e^{−2h})·z``
    with D = x0 + (x0 − x0_prev)/(2r) (midpoint correction, r = h_prev/h). Fresh noise at every step lets
    the sampler correct its own earlier errors, as ancestral sampling does, at second-order cost.
    """
    seq = _as_floats(gammas)
    n = len(seq) - 1
    y = _start(y, seq[0], impose)
    x0_prev: Tensor | None = None
    h_prev = 0.0
    for i, (gs, gt) in enumerate(zip(seq, seq[1:])):
        _, x0 = _denoise(denoiser, y, gs, clip_denoised)
        if gt >= 1.0:
            y = x0
        else:
            h = 0.5 * (math.log(gt / (1 - gt)) - math.log(gs / (1 - gs)))
            d = x0 if x0_prev is None else x0 + (x0 - x0_prev) / (2 * h_prev / h)
            y = (math.sqrt((1 - gt) / (1 - gs)) * math.exp(-h * eta) * y
                 + math.sqrt(gt) * -math.expm1(-h * (1 + eta)) * d)
            if eta > 0:
                y = y + math.sqrt(1 - gt) * math.sqrt(-math.expm1(-2 * h * eta)) * noise_like(y, generator)
            x0_prev, h_prev = x0, h
        y = _after_step(y, gt, i, n, x0, impose, callback)
    return y


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
}

#: The spacing each sampler is meant to be used with by default, and the step counts that give each sampler
#: its usual quality (kept in ``defaults``, where the CLI reads them without importing torch).
DEFAULT_SPACING = SAMPLER_SPACING
DEFAULT_STEPS = SAMPLER_STEPS


def get_sampler(name: str) -> Callable[..., Tensor]:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}") from None
