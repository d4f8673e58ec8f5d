"""Samplers driven by the closed-form optimal denoiser of known distributions must recover them."""

import math

import pytest
import torch

from palette_cli.diffusion.sampling import (
    SAMPLERS,
    get_sampler,
    initial_noise,
    sample_ddim,
    sample_ddpm,
    sample_dpmpp_2m,
)
from palette_cli.diffusion.schedule import inference_gammas

N = 20000


def x0_denoiser(eps_fn):
    """The clean-image estimate the samplers take, from an oracle noise estimate: (y − √(1−γ)·ε)/√γ."""

    def denoise(y, gamma):
        g = gamma.to(y.dtype).view(-1, *[1] * (y.dim() - 1))
        return (y - (1 - g).sqrt() * eps_fn(y, g)) / g.sqrt()

    return denoise


def gaussian_denoiser(mu: float, s: float):
    """E[ε | y_t] for y0 ~ N(mu, s²): sqrt(1−γ)(y_t − √γ μ)/(γ s² + 1 − γ), as a clean-image estimate."""

    def eps(y, g):
        return (1 - g).sqrt() * (y - g.sqrt() * mu) / (g * s * s + 1 - g)

    return x0_denoiser(eps)


def mixture_denoiser(mus, sds, weights):
    """E[ε | y_t] for a mixture of Gaussians: responsibilities times each component's optimum."""

    def noise(y, g):
        logp, eps = [], []
        for m, s, w in zip(mus, sds, weights):
            v = g * s * s + 1 - g
            logp.append(math.log(w) - 0.5 * torch.log(v) - 0.5 * (y - g.sqrt() * m) ** 2 / v)
            eps.append((1 - g).sqrt() * (y - g.sqrt() * m) / v)
        r = torch.softmax(torch.stack(logp), dim=0)
        return (r * torch.stack(eps)).sum(0)

    return x0_denoiser(noise)


def run(name, steps, spacing, denoiser, seed=1, **kw):
    gen = torch.Generator().manual_seed(seed)
    y = initial_noise((N, 1), gen).double()
    return SAMPLERS[name](denoiser, y, inference_gammas(steps, spacing), generator=gen, **kw)


@pytest.mark.parametrize(
    "name,steps,spacing,std_tol",
    [
        ("ddpm", 1000, "paper", 0.015),  # the paper's sampler, exact up to Monte-Carlo error
        ("dpmpp_2m", 20, "logsnr", 0.015),
        ("dpmpp_2m", 10, "logsnr", 0.03),
        ("ddim", 100, "logsnr", 0.02),
        ("dpmpp_2m_sde", 20, "logsnr", 0.03),
        ("dpmpp_2m_sde", 50, "logsnr", 0.015),
    ],
)
def test_gaussian_recovered(name, steps, spacing, std_tol):
    out = run(name, steps, spacing, gaussian_denoiser(1.0, 0.5))
    assert abs(out.mean().item() - 1.0) < 0.015
    assert abs(out.std().item() - 0.5) < std_tol


def test_ddim_is_first_order_and_converges():
    """DDIM at 20 steps under-disperses a little (first-order solver); the error shrinks with steps."""
    errs = [abs(run("ddim", s, "logsnr", gaussian_denoiser(1.0, 0.5)).std().item() - 0.5) for s in (10, 20, 100)]
    assert errs[1] < 0.08
    assert errs[0] > errs[1] > errs[2]
    # DPM-Solver++(2M) is second order: at 20 steps it beats DDIM at 20 steps.
    assert abs(run("dpmpp_2m", 20, "logsnr", gaussian_denoiser(1.0, 0.5)).std().item() - 0.5) < errs[1] / 3


@pytest.mark.parametrize("name,steps,spacing", [("ddpm", 1000, "paper"), ("dpmpp_2m", 20, "logsnr"),
                                               ("dpmpp_2m_sde", 50, "logsnr")])
def test_mixture_recovered(name, steps, spacing):
    """Two well-separated modes with weights 0.3 / 0.7: the weights and the modes' shapes come back."""
    out = run(name, steps, spacing, mixture_denoiser([-1.0, 1.0], [0.3, 0.3], [0.3, 0.7]))
    pos = out[out > 0]
    neg = out[out <= 0]
    assert abs(pos.numel() / N - 0.7) < 0.015
    assert abs(pos.mean().item() - 1.0) < 0.03 and abs(neg.mean().item() + 1.0) < 0.03
    assert abs(pos.std().item() - 0.3) < 0.03 and abs(neg.std().item() - 0.3) < 0.03


def test_dpmpp_2m_sde_is_stochastic():
    """Different generators give different samples (the deterministic variant ignores its generator)."""
    y = initial_noise((500, 1), torch.Generator().manual_seed(0))
    d = gaussian_denoiser(0.3, 0.7)
    run_with = lambda name, seed: SAMPLERS[name](d, y, inference_gammas(12), generator=torch.Generator().manual_seed(seed))
    assert not torch.equal(run_with("dpmpp_2m_sde", 1), run_with("dpmpp_2m_sde", 2))
    assert torch.equal(run_with("dpmpp_2m", 1), run_with("dpmpp_2m", 2))


def test_ddim_eta_one_is_stochastic_and_right():
    out = run("ddim", 200, "logsnr", gaussian_denoiser(1.0, 0.5), eta=1.0)
    assert abs(out.mean().item() - 1.0) < 0.015 and abs(out.std().item() - 0.5) < 0.02


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_seeded_runs_are_bit_identical(name):
    def once(seed):
        gen = torch.Generator().manual_seed(seed)
        y = initial_noise((2, 3, 8, 8), gen)
        return SAMPLERS[name](gaussian_denoiser(0.2, 0.4), y, inference_gammas(8, "logsnr"), generator=gen)

    assert torch.equal(once(3), once(3))
    assert not torch.equal(once(3), once(4))


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_impose_keeps_known_pixels_exactly(name):
    known = torch.rand(2, 3, 8, 8) * 2 - 1
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1  # 1 = unknown
    seen_levels = []

    def impose(y, gamma):
        seen_levels.append(gamma)
        return y * mask + known * (1 - mask)

    gen = torch.Generator().manual_seed(0)
    y = initial_noise(known.shape, gen)
    out = SAMPLERS[name](gaussian_denoiser(0.0, 0.5), y, inference_gammas(6, "logsnr"), generator=gen, impose=impose)
    keep = (1 - mask).bool().expand_as(out)
    assert torch.equal(out[keep], known[keep])
    assert not torch.equal(out[~keep], known[~keep])
    assert len(seen_levels) == 7 and seen_levels[-1] == 1.0


def test_callback_sees_every_step_and_final_estimate():
    calls = []
    gen = torch.Generator().manual_seed(0)
    y = initial_noise((4, 1), gen)
    out = sample_dpmpp_2m(gaussian_denoiser(0.0, 1.0), y, inference_gammas(5), callback=lambda i, n, y, x0: calls.append((i, n, x0)))
    assert [c[:2] for c in calls] == [(i, 5) for i in range(5)]
    assert torch.equal(calls[-1][2], out)


def test_clip_denoised_bounds_estimates():
    gen = torch.Generator().manual_seed(0)
    y = initial_noise((1000, 1), gen)
    out = sample_ddim(gaussian_denoiser(3.0, 1.0), y, inference_gammas(10), clip_denoised=1.0)
    assert out.max().item() <= 1.0 + 1e-6
    unclipped = sample_ddim(gaussian_denoiser(3.0, 1.0), y, inference_gammas(10))
    assert unclipped.mean().item() > 2.5


def test_bad_arguments():
    d = gaussian_denoiser(0.0, 1.0)
    y = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="end with 1.0"):
        sample_ddim(d, y, torch.tensor([0.1, 0.5]))
    with pytest.raises(ValueError, match="increase"):
        sample_ddim(d, y, torch.tensor([0.5, 0.1, 1.0]))
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("euler_magic")
    with pytest.raises(ValueError, match="variance"):
        sample_ddpm(d, y, inference_gammas(3), variance="huge")
