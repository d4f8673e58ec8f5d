import math

import pytest
import torch

from palette_cli.diffusion import schedule as S


def test_paper_training_schedule_values():
    b = S.betas(S.PAPER_TRAIN)
    assert b.dtype == torch.float64 and len(b) == 2000
    assert b[0].item() == pytest.approx(1e-6) and b[-1].item() == pytest.approx(0.01)
    g = S.gammas(S.PAPER_TRAIN)
    # log γ_T = Σ log(1 − β) ≈ −Σβ ≈ −(1e-6 + 0.01)/2 · 2000
    assert math.log(g[-1].item()) == pytest.approx(sum(math.log1p(-x) for x in b.tolist()), rel=1e-9)
    assert torch.all(g[1:] < g[:-1])


def test_paper_inference_schedule_mostly_noise():
    g = S.gammas(S.PAPER_INFERENCE)
    assert len(g) == 1000
    # The paper's observation: 612 of its 1000 steps have γ < 1e-3.
    assert int((g < 1e-3).sum()) == 612


def test_cosine_schedule_is_monotone_and_bounded():
    g = S.gammas(S.ScheduleConfig("cosine", 1000))
    assert torch.all(g[1:] < g[:-1]) and 0 < g[-1] < 1e-3 and g[0] > 0.999


def test_training_gamma_draws_lie_between_adjacent_levels():
    cfg = S.ScheduleConfig("linear", 10, 1e-3, 0.2)
    gen = torch.Generator().manual_seed(0)
    draws = S.sample_training_gamma(cfg, 50000, gen)
    g = torch.cat([torch.ones(1, dtype=torch.float64), S.gammas(cfg)])
    assert draws.min() >= g[-1] and draws.max() <= 1.0
    # Each interval [γ_t, γ_{t−1}] gets ≈ 1/T of the draws, spread uniformly inside it.
    counts = [int(((draws <= g[t - 1]) & (draws > g[t])).sum()) for t in range(1, 11)]
    assert all(abs(c / 50000 - 0.1) < 0.01 for c in counts)
    lo, hi = g[5], g[4]
    inside = draws[(draws > lo) & (draws <= hi)]
    assert abs(((inside - lo) / (hi - lo)).mean().item() - 0.5) < 0.02
    again = S.sample_training_gamma(cfg, 50000, torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_q_sample_and_inverse():
    y0 = torch.randn(4, 3, 5, 5)
    eps = torch.randn(4, 3, 5, 5)
    gamma = torch.tensor([0.1, 0.5, 0.9, 0.999])
    y = S.q_sample(y0, gamma, eps)
    assert torch.allclose(S.x0_from_eps(y, gamma, eps), y0, atol=1e-5)
    assert torch.allclose(y[1], math.sqrt(0.5) * (y0[1] + eps[1]))


@pytest.mark.parametrize("spacing", S.SPACINGS)
def test_inference_gammas_shape_and_order(spacing):
    g = S.inference_gammas(20, spacing)
    assert len(g) == 21 and g[-1] == 1.0 and torch.all(g[1:] > g[:-1])


def test_paper_spacing_full_length_is_the_paper_schedule():
    g = S.inference_gammas(1000, "paper")
    assert torch.equal(g[:-1], S.gammas(S.PAPER_INFERENCE).flip(0))


def test_logsnr_spacing_is_uniform_in_logsnr():
    g = S.inference_gammas(10, "logsnr")[:-1]
    lam = torch.logit(g)
    d = lam[1:] - lam[:-1]
    assert torch.allclose(d, d.mean().expand_as(d), rtol=1e-9)
    assert lam[0].item() == pytest.approx(torch.logit(S.gammas(S.PAPER_TRAIN)[-1]).item())


def test_bad_spacing_and_steps():
    with pytest.raises(ValueError):
        S.inference_gammas(0)
    with pytest.raises(ValueError):
        S.inference_gammas(10, "cubic")
    with pytest.raises(ValueError):
        S.ScheduleConfig.from_dict({"kind": "linear", "bogus": 1})
