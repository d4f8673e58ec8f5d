"""Processes: what a network's output means, for training and for sampling (one object per kind)."""

import json

import numpy as np
import pytest
import torch

from palette_cli.checkpoint import ModelInfo, save_model
from palette_cli.pipeline import Pipeline
from palette_cli.diffusion.bridge import BridgeProcess, ChromaBridgeProcess, sample_bridge
from palette_cli.diffusion.gaussian import DiffusionProcess, EpsDiffusion, RegressionProcess, VDiffusion
from palette_cli.diffusion.preconditioned import PreconditionedBridgeProcess
from palette_cli.diffusion.process import SamplerSettings
from palette_cli.diffusion.registry import PROCESSES, process_from_metadata
from palette_cli.diffusion.schedule import ScheduleConfig, inference_gammas
from tests.conftest import make_photo

MU, S, SIGMA, D = 0.1, 0.2, 0.5, 0.3


def gaussian_bridge_oracle(x, t):
    """E[y0 | x_t] for y0 ~ N(MU, S²) per pixel on a bridge from y0 to the constant D with noise SIGMA."""
    t = t.view(-1, 1, 1, 1).double()
    gain = (1 - t) * S * S / ((1 - t) ** 2 * S * S + SIGMA ** 2 * t * (1 - t)).clamp(min=1e-12)
    return (MU + gain * (x.double() - t * D - (1 - t) * MU)).float()


def run_bridge(steps, eta=1.0, seed=0):
    x = torch.full((4, 1, 32, 32), D)
    times = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    return sample_bridge(gaussian_bridge_oracle, x.clone(), x.clone(), times, SIGMA,
                         generator=torch.Generator().manual_seed(seed), eta=eta, clip=None)


def test_bridge_sampler_recovers_the_data_distribution():
    """With the exact denoiser and many steps, ancestral bridge sampling draws from N(MU, S²) (it is
    first-order: at 400 steps the spread is still ~5% short, at 1600 within 0.3%)."""
    out = run_bridge(1600)
    assert out.mean().item() == pytest.approx(MU, abs=0.01)
    assert out.std().item() == pytest.approx(S, abs=0.01)


def test_one_bridge_step_is_the_regression_estimate():
    """One step from the degraded image returns E[y0 | d] exactly: the conditional mean, no spread."""
    out = run_bridge(1)
    assert torch.allclose(out, torch.full_like(out, MU), atol=1e-6)
    assert run_bridge(20, eta=0.0).std().item() < 1e-5  # the deterministic path stays on the mean
    assert run_bridge(20).std().item() > 0.1  # fresh noise brings the diversity back


def test_bridge_states_and_times():
    p = BridgeProcess(sigma=0.3, p_start=0.5)
    y0, d, noise = torch.zeros(3, 3, 4, 4), torch.ones(3, 3, 4, 4), torch.randn(3, 3, 4, 4)
    assert torch.equal(p.noisy(y0, d, torch.ones(3), noise), d)  # t = 1: the degraded image, no noise
    assert torch.equal(p.noisy(y0, d, torch.zeros(3), noise), y0)  # t = 0: the clean image
    t = p.draw_times(20000, torch.Generator().manual_seed(0))
    assert 0 < t.min() and t.max() == 1
    assert (t == 1).float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert p.levels(SamplerSettings(steps=4)).tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_bridge_loss_is_zero_for_the_exact_residual_only():
    """The network output is a residual on x_t: the oracle ``y0 − x_t`` has zero loss, others do not."""
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(4, 3, 8, 8, generator=gen) * 2 - 1
    cond = target * 0.5
    batch = {"cond": cond, "target": target, "mask": torch.ones(4, 1, 8, 8)}
    p = BridgeProcess(sigma=0.2)

    def exact(x, t, c):
        return 2 * c - x

    def identity(x, t, c):
        return torch.zeros_like(x)

    assert p.loss(exact, batch, torch.Generator().manual_seed(1)).item() < 1e-10
    assert p.loss(identity, batch, torch.Generator().manual_seed(1)).item() > 0.05


def test_process_from_metadata_kinds_and_errors():
    assert isinstance(process_from_metadata({}), DiffusionProcess)
    assert process_from_metadata({"prediction": "v"}).kind == "v"
    assert isinstance(process_from_metadata({"objective": "regression"}), RegressionProcess)
    bridge = process_from_metadata({"objective": "bridge", "process": {"sigma": 0.05}})
    assert isinstance(bridge, BridgeProcess) and bridge.sigma == 0.05
    assert process_from_metadata(bridge.metadata()).sigma == 0.05  # what a file records reads back
    with pytest.raises(ValueError, match="cannot sample"):
        process_from_metadata({"prediction": "x0"})
    with pytest.raises(ValueError, match="sigma"):
        BridgeProcess(sigma=float("nan"))
    with pytest.raises(ValueError, match="samples with bridge"):
        bridge.resolve(SamplerSettings("ddim", 5))
    assert bridge.resolve(SamplerSettings()).steps == 1
    assert EpsDiffusion().resolve(SamplerSettings()).sampler == "dpmpp_2m_sde"


def _bridge_file(tmp_path, name="bridge.safetensors"):
    from palette_cli.nets import UNet, preset

    torch.manual_seed(0)
    cfg = preset("tiny").replace(gamma_embedding="time")
    net = UNet(cfg)  # untrained: the zero-initialised output layer makes the residual exactly 0
    path = tmp_path / name
    save_model(path, ModelInfo(net=cfg.to_dict(), tasks=["jpeg"], extra=BridgeProcess(0.1).metadata()),
               net.state_dict())
    return path


def test_untrained_bridge_model_returns_its_input(tmp_path):
    """A bridge starts at the degraded image and adds a residual: with a zero residual, restore is the
    identity (bit for bit after quantisation) in one step, or in several without fresh noise (η = 0),
    whatever the size or tiling. With noise and an untrained network the noise stays in."""
    pipe = Pipeline.from_file(_bridge_file(tmp_path), device="cpu", precision="fp32", resolution=32)
    image = make_photo(70, 45)
    pixels = np.asarray(image)
    for settings in (SamplerSettings(steps=1), SamplerSettings(steps=3, eta=0.0)):
        out = pipe.restore(image, settings, torch.Generator().manual_seed(0), tile=32, overlap=8,
                           lock_colour=False)[0]
        assert out.size == image.size and np.array_equal(np.asarray(out), pixels)
    noisy = pipe.restore(image, SamplerSettings(steps=3), torch.Generator().manual_seed(0), tile=32, overlap=8)[0]
    assert not np.array_equal(np.asarray(noisy), pixels)
    meta = pipe.provenance("restore", SamplerSettings(), 0)
    assert meta["sampler"] == "bridge" and meta["sampling_steps"] == "1"
    assert pipe.model_calls(SamplerSettings(steps=3)) == 3


def test_colour_lock_moves_local_means_to_the_input():
    from palette_cli.pipeline import lock_low_frequencies

    ref = torch.rand(1, 3, 48, 64) * 2 - 1
    shifted = (ref + torch.tensor([0.2, -0.1, 0.05]).view(1, 3, 1, 1)).clamp(-1, 1)
    locked = lock_low_frequencies(shifted, ref)
    before = (shifted - ref).mean((-1, -2)).abs().max().item()
    after = (locked - ref).mean((-1, -2)).abs().max().item()
    assert before > 0.04 and after < 0.01


def test_model_file_schedule_is_used_for_sampling(tmp_path):
    """A model trained on another schedule samples on that schedule's levels, not the paper's."""
    from tests.conftest import tiny_net

    cfg, net = tiny_net()
    sched = ScheduleConfig("linear", 100, 1e-4, 0.2)
    path = tmp_path / "sched.safetensors"
    save_model(path, ModelInfo(net=cfg.to_dict(), schedule=sched.to_dict(), tasks=["colorize"]), net.state_dict())
    pipe = Pipeline.from_file(path, device="cpu", precision="fp32", resolution=32)
    got = pipe.process.levels(SamplerSettings("ddim", 5, "uniform"))
    assert torch.equal(got, inference_gammas(5, "uniform", train=sched))
    assert not torch.equal(got, inference_gammas(5, "uniform"))
    assert float(pipe.process.levels(SamplerSettings("dpmpp_2m", 5))[0]) == pytest.approx(
        float(inference_gammas(5, "logsnr", train=sched)[0]))


def test_one_step_bridge_fill_keeps_the_start_detail_on_the_model_local_means(tmp_path):
    """Inpainting with a bridge model: an untrained one returns its start, the reflection fill, exactly;
    one that adds a constant to the hole shifts its local means by that constant and keeps the start's
    detail (texture) in one step; with several steps the model's own output is kept."""
    from palette_cli.nets import UNet, preset
    from palette_cli.tasks.fill import mirror_fill

    torch.manual_seed(0)
    cfg = preset("tiny").replace(gamma_embedding="time")
    net = UNet(cfg)
    path = tmp_path / "fill.safetensors"
    save_model(path, ModelInfo(net=cfg.to_dict(), tasks=["inpaint"], extra=BridgeProcess(0.1).metadata()),
               net.state_dict())
    pipe = Pipeline.from_file(path, device="cpu", precision="fp32", resolution=64)
    g = torch.Generator().manual_seed(0)
    canvas = torch.rand(1, 3, 64, 64, generator=g) * 1.6 - 0.8
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 12:52, 12:52] = 1
    start = mirror_fill(canvas, mask)
    out = pipe.fill_window(canvas.clone(), mask, (0, 0, 64, 64), SamplerSettings(), g)
    assert torch.allclose(out, start, atol=1e-6)

    def shift(y, level, cond):  # a residual of +0.1 everywhere
        return torch.full_like(y, 0.1)

    pipe.net_fn = shift
    hole = mask.bool().expand_as(canvas)
    one = pipe.fill_window(canvas.clone(), mask, (0, 0, 64, 64), SamplerSettings(), g)
    assert torch.equal(one[~hole], canvas[~hole])
    inner = torch.zeros_like(hole)
    inner[..., 28:36, 28:36] = True  # away from the hole's border, where the blur sees only hole pixels
    assert torch.allclose((one - start)[inner], torch.full_like(start[inner], 0.1), atol=1e-4)
    assert pipe.process.keeps_start_detail(SamplerSettings())
    assert not pipe.process.keeps_start_detail(SamplerSettings(steps=4))


def test_generating_bridge_settings_round_trip_and_old_files_read_as_before():
    """A smooth-start bridge records its start and default steps; a first-generation file (no start, no
    steps) reads as the mirror start with one step, and its metadata is written exactly as before."""
    gen = BridgeProcess(sigma=1.0, p_start=0.1, start="smooth", steps=8)
    back = process_from_metadata(gen.metadata())
    assert (back.fill_start, back.steps, back.sigma, back.p_start) == ("smooth", 8, 1.0, 0.1)
    assert back.resolve(SamplerSettings()).steps == 8
    assert not back.is_deterministic(SamplerSettings()) and back.is_deterministic(SamplerSettings(steps=1))
    assert not back.keeps_start_detail(SamplerSettings(steps=1))  # a smooth start has no detail to keep
    old = process_from_metadata({"objective": "bridge", "process": {"sigma": 0.3, "p_start": 0.25}})
    assert (old.fill_start, old.steps) == ("mirror", 1)
    assert old.metadata()["process"] == {"kind": "bridge", "sigma": 0.3, "p_start": 0.25}
    assert process_from_metadata({"objective": "bridge", "process": {"steps": 4.0}}).steps == 4
    for bad, match in (({"start": "reflect"}, "start must be one of"), ({"steps": 2.5}, "whole number"),
                       ({"steps": 0}, "steps must be")):
        with pytest.raises(ValueError, match=match):
            process_from_metadata({"objective": "bridge", "process": bad})


def test_smooth_start_fill_makes_its_detail_and_samples_differ(tmp_path):
    """A smooth-start bridge model starts a hole from the push-pull fill (no reflected detail): untrained, one
    step returns that fill exactly; several steps with fresh noise give each sample its own content."""
    from palette_cli.nets import UNet, preset
    from palette_cli.tasks.fill import mirror_fill, smooth_fill

    torch.manual_seed(0)
    cfg = preset("tiny").replace(gamma_embedding="time")
    path = tmp_path / "gen.safetensors"
    process = BridgeProcess(sigma=1.0, p_start=0.1, start="smooth", steps=4)
    save_model(path, ModelInfo(net=cfg.to_dict(), tasks=["inpaint", "uncrop"], extra=process.metadata()),
               UNet(cfg).state_dict())
    pipe = Pipeline.from_file(path, device="cpu", precision="fp32", resolution=64)
    g = torch.Generator().manual_seed(0)
    canvas = torch.rand(1, 3, 64, 64, generator=g) * 1.6 - 0.8
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :, 32:] = 1  # uncrop the right half
    one = pipe.fill_window(canvas.clone(), mask, (0, 0, 64, 64), SamplerSettings(steps=1), g)
    assert torch.allclose(one, smooth_fill(canvas, mask), atol=1e-6)
    assert not torch.allclose(one, mirror_fill(canvas, mask), atol=0.1)
    two = pipe.fill_window(canvas.expand(2, -1, -1, -1).clone(), mask, (0, 0, 64, 64), SamplerSettings(), g)
    hole = mask.bool().expand(2, 3, -1, -1)
    assert torch.equal(two[~hole], canvas.expand(2, -1, -1, -1)[~hole])  # known pixels untouched
    assert (two[0] - two[1])[hole[0]].abs().mean() > 0.1


# --------------------------------------------------------------------------- the registry's contract

SCHEDULE = ScheduleConfig("linear", 100, 1e-4, 0.2)
#: Every registered process, away from its defaults where it has settings: the contract below runs over
#: each (a new process adds its example here; the first test checks that none is missing).
EXAMPLES = [EpsDiffusion(SCHEDULE), VDiffusion(SCHEDULE), RegressionProcess(), BridgeProcess(0.2),
            BridgeProcess(sigma=1.0, p_start=0.1, start="smooth", steps=8, time_power=2.0),
            ChromaBridgeProcess(sigma=0.2, p_start=1.0, bins=5, extent=0.7, temperature=0.5, rebalance=0.5,
                                draw_strength=1.0, draw_cells=3, guide_radius=2),
            PreconditionedBridgeProcess(sigma=0.7, p_start=0.2, start="smooth", steps=6, time_power=1.5, spread=0.4)]


def test_every_registered_process_has_an_example_and_its_key():
    assert {type(p) for p in EXAMPLES} == set(PROCESSES.values())
    for (objective, prediction), cls in PROCESSES.items():
        assert (cls.objective, cls.prediction) == (objective, prediction) and cls.kind


@pytest.mark.parametrize("process", EXAMPLES, ids=lambda p: p.kind)
def test_metadata_round_trips(process):
    """What a file records rebuilds the same process (the schedule comes from the file's own record), and a
    table that records no setting gives the constructor's defaults."""
    cls = type(process)
    meta = process.metadata()
    assert json.loads(json.dumps(meta)) == meta
    schedule = getattr(process, "schedule", None)
    back = process_from_metadata(meta, schedule=schedule.to_dict() if schedule else None)
    assert type(back) is cls and back.metadata() == meta
    assert getattr(back, "schedule", None) == schedule
    assert set(meta.get("process", {})) <= {"kind", *cls.settings}
    assert cls.from_spec({}).metadata() == cls().metadata()


def test_old_records_read_as_before():
    """Files that record no objective or prediction are ε diffusion; the training config's former default
    prediction ``eps`` under another objective names that objective's own process."""
    assert type(process_from_metadata({})) is EpsDiffusion
    assert type(process_from_metadata({"objective": "diffusion"})) is EpsDiffusion
    assert type(process_from_metadata({"objective": "regression", "prediction": "eps"})) is RegressionProcess
    old = process_from_metadata({}, {"objective": "bridge", "prediction": "eps", "process": {"sigma": 0.3}})
    assert type(old) is BridgeProcess and old.sigma == 0.3
    assert type(process_from_metadata({"objective": "bridge"})) is BridgeProcess


@pytest.mark.parametrize("extra,match", [
    ({"objective": "flow"}, "objective 'flow'"),
    ({"prediction": "x0"}, "predicts 'x0'"),
    ({"objective": "bridge", "prediction": "noise"}, "predicts 'noise'"),
    ({"objective": "regression", "prediction": "chroma-bins"}, "predicts 'chroma-bins'"),
    ({"objective": "bridge", "process": ["sigma"]}, "must be a table"),
    ({"objective": "bridge", "process": {"sigma": "wide"}}, "sigma must be a number"),
])
def test_unknown_processes_are_refused_in_one_line(extra, match):
    with pytest.raises(ValueError, match=match) as refused:
        process_from_metadata(extra)
    assert "\n" not in str(refused.value)


def test_the_network_check_refuses_a_mismatched_config():
    from dataclasses import replace

    from palette_cli.nets import EffNetUNetConfig, preset

    unet = preset("tiny")
    timed = unet.replace(gamma_embedding="time")
    EpsDiffusion().check_network(unet)
    BridgeProcess().check_network(timed)
    ChromaBridgeProcess(bins=5).check_network(timed.replace(num_classes=25))
    with pytest.raises(ValueError, match="num_classes must be 25 for the chroma-bins process"):
        ChromaBridgeProcess(bins=5).check_network(timed)
    with pytest.raises(ValueError, match="num_classes must be 0"):
        EpsDiffusion().check_network(unet.replace(num_classes=25))
    with pytest.raises(ValueError, match='gamma_embedding = "time"'):
        BridgeProcess().check_network(unet)
    effnet = EffNetUNetConfig(encoder="lite0", image_size=64, num_classes=25, decoder_channels=[16, 16, 8, 8],
                              global_channels=8)
    ChromaBridgeProcess(bins=5, p_start=1.0).check_network(effnet)
    with pytest.raises(ValueError, match="p_start = 1"):
        ChromaBridgeProcess(bins=5).check_network(effnet)
    with pytest.raises(ValueError, match="takes no level"):
        EpsDiffusion().check_network(replace(effnet, num_classes=0))
    RegressionProcess().check_network(replace(effnet, num_classes=0))  # called at one level only


def test_training_and_export_checks_belong_to_the_process():
    ChromaBridgeProcess().check_training(["colorize"], "ce")
    with pytest.raises(ValueError, match="cross-entropy"):
        ChromaBridgeProcess().check_training(["colorize"], "l1")
    with pytest.raises(ValueError, match="colorize only, not inpaint"):
        ChromaBridgeProcess().check_training(["colorize", "inpaint"], "ce")
    with pytest.raises(ValueError, match="not 'ce'"):
        EpsDiffusion().check_training(["jpeg"], "ce")
    with pytest.raises(ValueError, match="unknown setting.* sigmaa"):
        BridgeProcess.from_spec({"sigmaa": 0.2}, strict=True)
    with pytest.raises(ValueError, match="has none"):
        EpsDiffusion.from_spec({"sigma": 0.2}, strict=True)
    ChromaBridgeProcess.check_decoding({"temperature": 0.3, "draw_cells": 3})
    with pytest.raises(ValueError, match="unknown decoding"):
        ChromaBridgeProcess.check_decoding({"colour": 1})
    with pytest.raises(ValueError, match="chroma-bin"):
        EpsDiffusion.check_decoding({"temperature": 0.3})


def _zero_net(y, t, cond):
    return torch.zeros_like(y)


def test_untrained_preconditioned_bridge_samples_gaussian_data_exactly():
    """For photos y0 = d + z with z ~ N(0, s²) per pixel, the Wiener estimate is the exact denoiser, so an
    untrained (zero-output) preconditioned bridge samples N(d, s²) with many steps; one step returns d."""
    s, sigma, d = 0.3, 0.8, 0.2
    p = PreconditionedBridgeProcess(sigma=sigma, spread=s, steps=1600)
    start = torch.full((4, 1, 32, 32), d)
    out = p.sample(_zero_net, start, start, SamplerSettings(), torch.Generator().manual_seed(0))
    assert out.mean().item() == pytest.approx(d, abs=0.01)
    assert out.std().item() == pytest.approx(s, abs=0.01)
    one = p.sample(_zero_net, start, start, SamplerSettings(steps=1), torch.Generator().manual_seed(0))
    assert torch.equal(one, start)


def test_preconditioned_bridge_target_has_unit_spread_at_every_time():
    """The network's target (z − g·w)/c has unit spread for z of the assumed spread, whatever t: the zero
    network's L2 loss is 1 at t near 1, in the middle and near 0 alike; and the estimate of the exact target
    is the photo."""
    s = 0.5
    p = PreconditionedBridgeProcess(sigma=1.0, spread=s, p_start=0.0)
    g = torch.Generator().manual_seed(0)
    start = torch.zeros(64, 3, 16, 16)
    target = s * torch.randn(64, 3, 16, 16, generator=g)
    batch = {"cond": start, "target": target, "mask": torch.ones(64, 1, 16, 16), "start": start}
    for t in (0.02, 0.5, 0.98):
        p.draw_times = lambda n, gen, t=t: torch.full((n,), t)
        assert p.loss(_zero_net, batch, torch.Generator().manual_seed(1)).item() == pytest.approx(1.0, abs=0.03)
    t_, x_t = p.training_state(batch, torch.Generator().manual_seed(2))
    gain, c = p.coefficients(t_)
    exact = ((target - gain.view(-1, 1, 1, 1).float() * x_t) / c.view(-1, 1, 1, 1).float())
    assert torch.allclose(p._estimate(exact, x_t, start, t_), target, atol=1e-5)
    with pytest.raises(ValueError, match="sigma > 0"):
        PreconditionedBridgeProcess(sigma=0.0)


def run_marginal(steps, eta, seed=0):
    x = torch.full((4, 1, 32, 32), D)
    times = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    return sample_bridge(gaussian_bridge_oracle, x.clone(), x.clone(), times, SIGMA,
                         generator=torch.Generator().manual_seed(seed), eta=eta, clip=None, marginal=True)


def test_marginal_bridge_sampler_draws_the_data_distribution_at_every_eta():
    """The implicit rule keeps each state's noise at the bridge's level, so with the exact denoiser even the
    deterministic path (η = 0, its noise drawn once at the start) draws from N(MU, S²), where the posterior
    mean path collapses onto MU (test above)."""
    for eta in (0.0, 0.5):
        out = run_marginal(800, eta)
        assert out.mean().item() == pytest.approx(MU, abs=0.01)
        assert out.std().item() == pytest.approx(S, abs=0.01)
    assert not torch.equal(run_marginal(20, 0.0, seed=0), run_marginal(20, 0.0, seed=1))
    assert torch.equal(run_marginal(20, 0.0, seed=3), run_marginal(20, 0.0, seed=3))
    # at η = 1 both rules are the ancestral sampler (the same draws, equal up to rounding)
    assert torch.allclose(run_marginal(20, 1.0, seed=2), run_bridge(20, eta=1.0, seed=2), atol=1e-5)


def test_marginal_setting_round_trips_and_is_written_only_when_set():
    p = PreconditionedBridgeProcess(sigma=0.5, eta=0.0, marginal=1)
    meta = p.metadata()
    assert meta["process"]["marginal"] == 1
    again = process_from_metadata(json.loads(json.dumps(meta)))
    assert again.marginal == 1 and not again.is_deterministic(SamplerSettings())
    assert "marginal" not in PreconditionedBridgeProcess(sigma=0.5).metadata()["process"]
    assert PreconditionedBridgeProcess(sigma=0.5, eta=0.0).is_deterministic(SamplerSettings())
    with pytest.raises(ValueError, match="marginal"):
        BridgeProcess(marginal=2)
