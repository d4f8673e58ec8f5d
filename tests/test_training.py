"""Training: config loading, loss decrease per objective, exact resume, 2-process DDP, export → load → sample."""

from __future__ import annotations

import json
import os
import subprocess
import math
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image

from palette_cli.diffusion.gaussian import EpsDiffusion, VDiffusion
from palette_cli.diffusion.process import SamplerSettings
from palette_cli.diffusion.registry import PROCESSES
from palette_cli.training import (
    ConfigError,
    TrainConfig,
    Trainer,
    apply_override,
    ema_decay_at,
    epoch_order,
    export_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_config,
    lr_at,
    masked_loss,
    predict,
    state_hash,
)

TINY_NET = {"image_size": 16, "model_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
            "attention_resolutions": [2], "num_head_channels": 8, "num_groups": 4}


def _make_images(folder: Path, n: int = 6, size: int = 24) -> Path:
    """Smooth coloured images with a square: simple enough to learn from in a few dozen steps."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    for i in range(n):
        c0, c1 = torch.rand(3, generator=g), torch.rand(3, generator=g)
        img = c0[:, None, None] * xx + c1[:, None, None] * (1 - yy)
        s = int(torch.randint(4, size - 10, (1,), generator=g))
        img[:, s:s + 8, s:s + 8] = torch.rand(3, 1, 1, generator=g)
        arr = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype("uint8")
        Image.fromarray(arr).save(folder / f"img{i}.png")
    return folder


def _config(images: Path, **changes) -> TrainConfig:
    raw = {"task": "colorize", "data": {"source": str(images), "size": 16}, "net": dict(TINY_NET),
           "batch_size": 4, "steps": 6, "precision": "fp32", "channels_last": False, "log_every": 2,
           "ckpt_every": 100, "ckpt_minutes": None, "val_every": 1000, "val_images": 2, "val_steps": 3,
           "optim": {"lr": 1e-3, "warmup_steps": 2}, "ema_decay": 0.99, "device": "cpu"}
    raw.update(changes)
    return load_config(None, [], base=raw)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return _make_images(tmp_path_factory.mktemp("data") / "photos")


# ------------------------------------------------------------------------------------------ config


def test_config_file_and_overrides(tmp_path, images):
    path = tmp_path / "c.toml"
    path.write_text(f'task = "inpaint"\nsteps = 10\n[data]\nsource = "{images}"\nsize = 32\n[optim]\nlr = 1e-4\n')
    cfg = load_config(path, ["optim.lr=3e-4", "net.model_channels=16", "loss=l1", "optim.betas=[0.9, 0.99]"])
    assert cfg.task == "inpaint" and cfg.steps == 10 and cfg.data.size == 32 and cfg.loss == "l1"
    assert cfg.optim.lr == 3e-4 and cfg.optim.betas == [0.9, 0.99]
    assert cfg.net == {"preset": "small", "model_channels": 16}  # preset name turned into a table
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"data": {"source": str(images)}, "batch_size": 8}))
    assert load_config(js).batch_size == 8
    with pytest.raises(ConfigError, match="unknown config key 'optim.lrr'"):
        load_config(path, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="objective"):
        load_config(path, ["objective=magic"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="key=value"):
        apply_override({}, "steps")


def test_schedules_of_lr_and_ema():
    cfg = TrainConfig().optim
    cfg.lr, cfg.warmup_steps = 1.0, 4
    assert [lr_at(t, cfg) for t in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(90, 0.999) == pytest.approx(0.91)
    assert ema_decay_at(10**6, 0.999) == 0.999
    a, b = epoch_order(10, 0, 3), epoch_order(10, 0, 3)
    assert a == b and sorted(a) == list(range(10)) and a != epoch_order(10, 0, 4)


def test_masked_loss_counts_only_masked_pixels():
    pred, target = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    target[..., 0, 0] = 5.0  # outside the mask: ignored
    mask = torch.zeros(1, 1, 2, 2)
    mask[..., 1, :] = 1
    assert masked_loss(pred, target, mask, "l2").item() == pytest.approx(1.0)
    target[..., 1, 1] = 3.0
    assert masked_loss(pred, target, mask, "l1").item() == pytest.approx((1 + 3) / 2)
    assert masked_loss(pred, target, mask, "l2").item() == pytest.approx((1 + 9) / 2)


def test_known_pixels_are_clean_in_the_diffusion_input():
    seen = {}

    def net(y, gamma, cond):
        seen["y"] = y
        return torch.zeros_like(y)

    target = torch.rand(2, 3, 4, 4) * 2 - 1
    mask = torch.zeros(2, 1, 4, 4)
    mask[..., :2] = 1
    batch = {"cond": target.clone(), "target": target, "mask": mask}
    loss = EpsDiffusion(TrainConfig().schedule_config()).loss(net, batch, torch.Generator().manual_seed(0))
    assert torch.equal(seen["y"][..., 2:], target[..., 2:])
    assert not torch.allclose(seen["y"][..., :2], target[..., :2])
    assert loss.item() == pytest.approx(1.0, abs=0.5)  # zero prediction: mean ε² over the masked half


# ---------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("objective,loss", [("diffusion", "l2"), ("diffusion", "l1"), ("regression", "l2")])
def test_loss_goes_down(tmp_path, images, objective, loss):
    cfg = _config(images, objective=objective, loss=loss, steps=40, batch_size=6)
    trainer = Trainer(cfg, tmp_path / "run")
    probe = {k: torch.stack([trainer.dataset[i][k] for i in range(6)]) for k in ("cond", "target", "mask")}

    def probe_loss() -> float:
        total = 0.0
        for s in range(4):  # fixed γ / noise draws: the same probe before and after
            total += float(trainer.process.loss(trainer.model, probe, torch.Generator().manual_seed(s), loss=loss))
        return total / 4

    with torch.no_grad():
        before = probe_loss()
    trainer.run()
    with torch.no_grad():
        after = probe_loss()
    # ε-prediction keeps an irreducible error at low noise; the regression target is learnt much faster
    assert after < (0.5 if objective == "regression" else 0.85) * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in log if r["event"] == "log"]
    assert [r["step"] for r in steps] == list(range(2, 41, 2))
    assert all(r["images_per_s"] > 0 and r["lr"] == 1e-3 for r in steps[1:])


def _weights(trainer: Trainer) -> tuple[str, str, list[torch.Tensor]]:
    opt = [t.clone() for s in trainer.optimizer.state_dict()["state"].values() for t in s.values()
           if isinstance(t, torch.Tensor)]
    return state_hash(trainer.model), state_hash(trainer.ema), opt


def test_resume_is_bit_identical(tmp_path, images):
    straight = Trainer(_config(images, steps=6, task="colorize+inpaint"), tmp_path / "a")
    straight.run()

    first = Trainer(_config(images, steps=3, task="colorize+inpaint"), tmp_path / "b")
    first.run()
    del first
    ckpts = list_checkpoints(tmp_path / "b")
    assert [p.name for p in ckpts] == ["step-00000003.pt"]
    ck = load_checkpoint(ckpts[0])
    assert ck["step"] == 3 and ck["images_seen"] == 12 and ck["epoch"] == 2 and ck["index_in_epoch"] == 0
    resumed = Trainer(_config(images, steps=6, task="colorize+inpaint"), tmp_path / "b", resume=True)
    assert resumed.step == 3
    # one parameter group, as in the checkpoints of earlier versions (the U-Net's own "encoder" is not a
    # pretrained one that learns at its own rate)
    assert len(resumed.optimizer.param_groups) == len(ck["optimizer"]["param_groups"]) == 1
    resumed.run()

    a, b = _weights(straight), _weights(resumed)
    assert a[0] == b[0] and a[1] == b[1]
    assert len(a[2]) == len(b[2]) > 0 and all(torch.equal(x, y) for x, y in zip(a[2], b[2]))
    assert a[0] != a[1]  # the EMA is not just a copy of the model
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == ["step-00000003.pt", "step-00000006.pt"]


def test_validation_grid_and_checkpoint_pruning(tmp_path, images):
    cfg = _config(images, steps=4, ckpt_every=1, keep_ckpts=2, val_every=2, task="uncrop")
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-00000003.pt", "step-00000004.pt"]
    grid = Image.open(tmp_path / "run" / "val" / "step-00000004.png")
    assert grid.size == (2 + 2 * 18, 2 + 3 * 18)  # 2 images × 3 rows of 16² with 2-px gutters
    vals = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
            if json.loads(x)["event"] == "val"]
    assert [v["step"] for v in vals] == [2, 4] and all(v["val_loss"] > 0 for v in vals)

    mixed = Trainer(_config(images, task="colorize+inpaint+jpeg", val_images=3), tmp_path / "mixed")
    batch = mixed.validation_batch()
    assert batch["cond"].shape == (9, 3, 16, 16)  # 3 images × 3 tasks, grouped by task
    assert torch.equal(batch["target"][:3], batch["target"][3:6])
    gray = batch["cond"][:3]
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    assert (batch["mask"][3:6] == 0).any() and (batch["mask"][6:] == 1).all()
    assert torch.equal(batch["cond"], mixed.validation_batch()["cond"])


def test_export_load_and_sample(tmp_path, images):
    from palette_cli.checkpoint import load_model, read_info
    from palette_cli.diffusion.sampling import initial_noise, sample_dpmpp_2m
    from palette_cli.diffusion.schedule import inference_gammas

    Trainer(_config(images, steps=3, task="colorize+jpeg"), tmp_path / "run").run()
    out = export_checkpoint(tmp_path / "run", tmp_path / "model.safetensors", dtype="fp32")
    ema = load_checkpoint(list_checkpoints(tmp_path / "run")[-1])["ema"]
    net, info = load_model(out)
    assert info.tasks == ["colorize", "jpeg"] and info.training["steps"] == 3
    assert info.training["images_seen"] == 12 and info.net["model_channels"] == 8
    assert set(net.state_dict()) == set(ema)
    assert all(torch.equal(net.state_dict()[k], v.float()) for k, v in ema.items())
    assert read_info(export_checkpoint(tmp_path / "run", tmp_path / "half.safetensors")).training["steps"] == 3

    cond = torch.rand(2, 3, 16, 16) * 2 - 1
    y = initial_noise((2, 3, 16, 16), torch.Generator().manual_seed(0))
    out1 = sample_dpmpp_2m(lambda yt, g: net(yt, g, cond), y, inference_gammas(4))
    out2 = sample_dpmpp_2m(lambda yt, g: net(yt, g, cond), y, inference_gammas(4))
    assert out1.shape == (2, 3, 16, 16) and torch.isfinite(out1).all() and torch.equal(out1, out2)


def test_init_from_an_exported_model_continues_its_record(tmp_path, images):
    """A later session can carry on from the shipped file alone: weights, step count and images seen."""
    Trainer(_config(images, steps=3, task="colorize+jpeg"), tmp_path / "run").run()
    exported = export_checkpoint(tmp_path / "run", tmp_path / "model.safetensors", dtype="fp32")
    ema = load_checkpoint(list_checkpoints(tmp_path / "run")[-1])["ema"]
    t = Trainer(_config(images, steps=5, task="colorize+jpeg", init=str(exported)), tmp_path / "run2")
    assert t.step == 3 and t.warmup_from == 3 and t.position == 12
    assert all(torch.equal(t.model.state_dict()[k], v.float()) for k, v in ema.items())
    assert all(torch.equal(t.ema.state_dict()[k], v.float()) for k, v in ema.items())
    t.run()
    assert t.step == 5
    other = _config(images, steps=5, task="colorize+jpeg", init=str(exported),
                    net={**TINY_NET, "model_channels": 16})
    with pytest.raises(ConfigError, match="different network"):
        Trainer(other, tmp_path / "run3")
    # another working resolution is the same network (no weight depends on it): a coarse run starts from it
    coarse = _config(images, steps=4, task="colorize+jpeg", init=str(exported),
                     net={**TINY_NET, "image_size": 32})
    t = Trainer(coarse, tmp_path / "run4")
    assert t.step == 3 and all(torch.equal(t.model.state_dict()[k], v.float()) for k, v in ema.items())


def test_chroma_model_starts_from_a_pixel_model_body_and_learns_colour(tmp_path, images):
    """A chroma-bin colorizer can start from a bridge colorizer's file: the body is carried over, the new
    classification head starts at zero (a uniform distribution: gray), and training lowers the
    cross-entropy from its start, log K."""
    bridge = {"objective": "bridge", "process": {"sigma": 0.25}, "loss": "l1",
              "net": {**TINY_NET, "gamma_embedding": "time"}}
    Trainer(_config(images, steps=3, **bridge), tmp_path / "run").run()
    exported = export_checkpoint(tmp_path / "run", tmp_path / "model.safetensors", dtype="fp32")
    body = load_checkpoint(list_checkpoints(tmp_path / "run")[-1])["ema"]
    chroma = {"objective": "bridge", "prediction": "chroma-bins", "loss": "ce",
              "process": {"sigma": 0.25, "chroma_bins": 5, "chroma_extent": 0.8},
              "net": {**TINY_NET, "gamma_embedding": "time", "num_classes": 25}}
    t = Trainer(_config(images, steps=60, init=str(exported), optim={"lr": 3e-3, "warmup_steps": 2}, **chroma), tmp_path / "run2")
    state = t.model.state_dict()
    assert all(torch.equal(state[k], v.float()) for k, v in body.items() if not k.startswith("conv_out."))
    assert t.model.conv_out.weight.shape[0] == 25 and not t.model.conv_out.weight.any()
    assert t.ema_from == 3  # the fresh head's EMA warms up again instead of averaging in its zero start
    losses = []
    t.hook = lambda event, data: losses.append(data["loss"]) if event == "step" else None
    t.run()
    assert losses[0] == pytest.approx(math.log(25), abs=0.1)
    assert sum(losses[-5:]) / 5 < losses[0] - 0.5
    with pytest.raises(ConfigError, match="num_classes must be 25"):
        Trainer(_config(images, **{**chroma, "net": {**TINY_NET, "gamma_embedding": "time"}}), tmp_path / "run3")
    with pytest.raises(ConfigError, match="cross-entropy"):
        _config(images, **{**chroma, "loss": "l1"})


def test_cli_train_errors_are_one_line(tmp_path, images):
    import typer
    from typer.testing import CliRunner

    from palette_cli.cli.train import train

    app = typer.Typer()
    app.command()(train)
    app.command("noop")(lambda: None)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\nsource = "{tmp_path / "nowhere"}"\n')
    r = CliRunner().invoke(app, ["train", str(cfg), "--set", "optim.lrr=1"])
    assert r.exit_code == 1 and "unknown config key 'optim.lrr'" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["train", str(cfg), "--out", str(tmp_path / "r")])
    assert r.exit_code == 1 and "data" in r.output and "Traceback" not in r.output


# ------------------------------------------------------------------------------------- distributed


def test_torchrun_two_processes_hold_identical_weights(tmp_path, images):
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(f"""
        import os, json
        import torch
        torch.set_num_threads(1)
        from palette_cli.training import Trainer, load_config, state_hash
        raw = {{"task": "inpaint", "data": {{"source": {str(images)!r}, "size": 16}}, "net": {TINY_NET!r},
               "batch_size": 2, "steps": 3, "precision": "fp32", "channels_last": False, "ckpt_every": 3,
               "ckpt_minutes": None, "val_every": 1000, "device": "cpu"}}
        t = Trainer(load_config(None, [], base=raw), {str(tmp_path / "run")!r})
        t.run()
        rank = int(os.environ["RANK"])
        out = {{"model": state_hash(t.model), "ema": state_hash(t.ema), "step": t.step,
               "images_seen": t.images_seen}}
        open({str(tmp_path)!r} + f"/rank{{rank}}.json", "w").write(json.dumps(out))
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0 == r1 and r0["step"] == 3 and r0["images_seen"] == 12
    ckpts = list_checkpoints(tmp_path / "run")
    assert [p.name for p in ckpts] == ["step-00000003.pt"]
    assert state_hash_of(load_checkpoint(ckpts[0])["model"]) == r0["model"]


def state_hash_of(state: dict) -> str:
    holder = torch.nn.Module()
    holder.state_dict = lambda: state  # type: ignore[method-assign]
    return state_hash(holder)


def test_resume_without_optimizer_state_rewarms_the_learning_rate(tmp_path, images):
    """A checkpoint without optimiser state (Adam's moments left behind) resumes at its step and data
    position, with the learning-rate warm-up restarting there."""
    from palette_cli.training import atomic_torch_save

    Trainer(_config(images, steps=2), tmp_path / "a").run()
    original = load_checkpoint(list_checkpoints(tmp_path / "a")[-1])
    slim = {k: v for k, v in original.items() if k not in ("optimizer", "rng")}
    atomic_torch_save(slim, tmp_path / "b" / "checkpoints" / "step-00000002.pt")

    resumed = Trainer(_config(images, steps=4), tmp_path / "b", resume=True)
    assert resumed.step == 2 and resumed.warmup_from == 2 and resumed.position == original["position"]
    assert state_hash(resumed.ema) == state_hash_of(original["ema"])
    resumed.run()
    assert resumed.step == 4 and load_checkpoint(list_checkpoints(tmp_path / "b")[-1])["warmup_from"] == 2


def test_thread_governor_backs_off_while_others_run(monkeypatch):
    import palette_cli.scale.threads as threads

    demand = iter([0.0, 0.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    monkeypatch.setattr(threads, "others_running", lambda: next(demand))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    gov = threads.ThreadGovernor(2)
    counts = [gov() for _ in range(11)]
    assert counts[:2] == [2, 2] and counts[2:5] == [1, 1, 1] and counts[-1] == 2


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_training_loss_is_zero_for_the_exact_prediction_only(prediction):
    """An oracle that knows the clean target (passed as the condition) and outputs the exact ε or v scores
    zero loss under its own parameterisation and a large loss under the other one."""
    from palette_cli.diffusion.schedule import PAPER_TRAIN

    torch.manual_seed(0)
    target = torch.rand(16, 3, 8, 8) * 2 - 1
    batch = {"cond": target, "target": target, "mask": torch.ones(16, 1, 8, 8)}

    def oracle(kind):
        def net(y, gamma, cond):
            g = gamma.view(-1, 1, 1, 1).double()
            eps = (y.double() - g.sqrt() * cond.double()) / (1 - g).sqrt()
            out = eps if kind == "eps" else g.sqrt() * eps - (1 - g).sqrt() * cond.double()
            return out.float()
        return net

    schedule = PAPER_TRAIN
    other = "v" if prediction == "eps" else "eps"
    process = PROCESSES["diffusion", prediction](schedule)
    own = process.loss(oracle(prediction), batch, torch.Generator().manual_seed(1))
    wrong = process.loss(oracle(other), batch, torch.Generator().manual_seed(1))
    assert float(own) < 1e-6
    assert float(wrong) > 0.05


def test_v_process_recovers_the_clean_image_from_the_true_v():
    from palette_cli.diffusion.schedule import q_sample, v_target

    torch.manual_seed(0)
    y0, eps = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    gamma = torch.tensor([1e-4, 0.01, 0.3, 0.7, 0.9999])
    y = q_sample(y0, gamma, eps)
    v = v_target(y0, gamma, eps)
    denoise = VDiffusion().denoiser(lambda _y, _g, _c: v, torch.zeros_like(y))
    assert torch.allclose(denoise(y, gamma), y0, atol=1e-5)


def test_v_prediction_model_samples_through_the_pipeline(tmp_path):
    """A model file that says it predicts v is sampled with the clean-image estimate √γ·y − √(1−γ)·v."""
    from palette_cli.checkpoint import ModelInfo, save_model
    from palette_cli.pipeline import Pipeline
    from tests.conftest import tiny_net

    cfg, net = tiny_net(seed=0, std=0.05)
    paths = {}
    for kind in ("eps", "v"):
        paths[kind] = tmp_path / f"{kind}.safetensors"
        save_model(paths[kind], ModelInfo(net=cfg.to_dict(), tasks=["colorize"], extra={"prediction": kind}),
                   net.state_dict())
    pipes = {k: Pipeline.from_file(p, device="cpu", precision="fp32", resolution=16) for k, p in paths.items()}
    y, cond = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    gamma = torch.tensor([0.2, 0.8])
    raw = pipes["eps"].net_fn(y, gamma, cond)
    g = gamma.view(-1, 1, 1, 1)
    x0 = {k: p.process.denoiser(p.net_fn, cond)(y, gamma) for k, p in pipes.items()}
    assert torch.allclose(x0["eps"], (y - (1 - g).sqrt() * raw) / g.sqrt(), atol=1e-5)
    assert torch.allclose(x0["v"], g.sqrt() * y - (1 - g).sqrt() * raw, atol=1e-5)
    bad = tmp_path / "x0.safetensors"
    save_model(bad, ModelInfo(net=cfg.to_dict(), tasks=["colorize"], extra={"prediction": "x0"}), net.state_dict())
    with pytest.raises(ValueError, match="cannot sample"):
        Pipeline.from_file(bad, device="cpu", precision="fp32")


def test_export_records_a_chroma_models_temperature_and_refuses_it_elsewhere(tmp_path, images):
    from palette_cli.checkpoint import read_info

    chroma = {"objective": "bridge", "prediction": "chroma-bins", "loss": "ce",
              "process": {"sigma": 0.25, "chroma_bins": 5, "temperature": 0.38},
              "net": {**TINY_NET, "gamma_embedding": "time", "num_classes": 25}}
    Trainer(_config(images, steps=2, **chroma), tmp_path / "run").run()
    out = export_checkpoint(tmp_path / "run", tmp_path / "a.safetensors", temperature=0.7)
    assert read_info(out).extra["process"]["temperature"] == 0.7
    out = export_checkpoint(tmp_path / "run", tmp_path / "b.safetensors")
    assert read_info(out).extra["process"]["temperature"] == 0.38
    Trainer(_config(images, steps=2), tmp_path / "run2").run()
    with pytest.raises(ValueError, match="chroma-bin"):
        export_checkpoint(tmp_path / "run2", tmp_path / "c.safetensors", temperature=0.7)


def test_validation_shows_what_palette_inpaint_produces():
    """The validation grid's output row of a fill example (``predict``) is the command's output for the same
    photo, hole and noise: both sample through ``process.sample_known``, which gives a one-step bridge fill
    its start's detail; without it the validation output would differ."""
    import numpy as np

    from palette_cli.checkpoint import ModelInfo
    from palette_cli.imageio import pil_to_tensor, tensor_to_pil
    from palette_cli.nets import UNet, preset
    from palette_cli.pipeline import Pipeline
    from palette_cli.diffusion.bridge import BridgeProcess
    from palette_cli.diffusion.process import SamplerSettings
    from palette_cli.tasks.base import noise_fill
    from palette_cli.tasks.fill import mirror_fill

    from .conftest import make_photo

    torch.manual_seed(0)
    cfg = preset("tiny").replace(gamma_embedding="time")
    net = UNet(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    process = BridgeProcess(0.1)
    photo = make_photo(32, 32, seed=4)
    image = pil_to_tensor(photo)
    mask = torch.zeros(1, 32, 32)
    mask[:, 10:22, 8:24] = 1
    cond = noise_fill(image, mask, torch.Generator().manual_seed(5))
    batch = {"cond": cond[None], "target": image[None], "mask": mask[None], "start": mirror_fill(image, mask)[None]}
    shown = predict(net, process, batch)

    info = ModelInfo(net=cfg.to_dict(), tasks=["inpaint"], extra=process.metadata())
    pipe = Pipeline(net, info, device="cpu", precision="fp32", resolution=32)
    made = pipe.inpaint(photo, mask, SamplerSettings(), torch.Generator().manual_seed(5))[0]
    assert np.array_equal(np.asarray(tensor_to_pil(shown[0])), np.asarray(made))

    def impose(y, _t):
        return y * batch["mask"] + batch["target"] * (1 - batch["mask"])

    raw = process.sample(net, batch["cond"], batch["start"], SamplerSettings(), torch.Generator(), impose=impose)
    assert process.keeps_start_detail(SamplerSettings()) and (raw - shown).abs().max() > 0.05


def test_generating_fill_trains_on_smooth_starts_and_exports_its_sampling_defaults(tmp_path, images):
    """A smooth-start bridge trains on fills whose start is the push-pull fill of the target (never the
    mirror), its validation batch starts alike, and export records the chosen steps and time spacing."""
    from palette_cli.checkpoint import read_info
    from palette_cli.diffusion.registry import process_from_metadata
    from palette_cli.tasks.fill import mirror_fill, smooth_fill

    gen = {"task": "inpaint+uncrop", "objective": "bridge", "loss": "l2",
           "process": {"sigma": 1.0, "p_start": 0.1, "start": "smooth", "steps": 4},
           "net": {**TINY_NET, "gamma_embedding": "time"}}
    t = Trainer(_config(images, steps=2, **gen), tmp_path / "run")
    seen = []
    real_loss = t.process.loss

    def spy(net, batch, generator, **kw):
        seen.append(batch)
        return real_loss(net, batch, generator, **kw)

    t.process.loss = spy
    t.run()
    for batch in seen:
        assert torch.allclose(batch["start"], smooth_fill(batch["target"], batch["mask"]), atol=1e-5)
        assert not torch.allclose(batch["start"], mirror_fill(batch["target"], batch["mask"]), atol=1e-3)
    val = t.validation_batch()
    assert torch.allclose(val["start"], smooth_fill(val["target"], val["mask"]), atol=1e-5)
    out = export_checkpoint(tmp_path / "run", tmp_path / "gen.safetensors", decoding={"steps": 8, "time_power": 2})
    process = process_from_metadata(read_info(out).extra)
    assert (process.fill_start, process.steps, process.time_power) == ("smooth", 8, 2.0)
    assert process.levels(process.resolve(SamplerSettings())).tolist() == [(1 - k / 8) ** 2 for k in range(9)]
    with pytest.raises(ValueError, match="unknown decoding setting.*temperature"):
        export_checkpoint(tmp_path / "run", tmp_path / "x.safetensors", decoding={"temperature": 0.5})

    # the fill's start is a decoding setting too, given by name on the command line
    from typer.testing import CliRunner

    from palette_cli.cli.app import app

    runner = CliRunner()
    r = runner.invoke(app, ["export", str(out), str(tmp_path / "ex.safetensors"), "--decode", "start=exemplar"])
    assert r.exit_code == 0, r.output
    assert process_from_metadata(read_info(tmp_path / "ex.safetensors").extra).fill_start == "exemplar"
    for bad, message in (("start=reflect", "bridge start must be one of"), ("start=3", "start must be a name"),
                         ("steps=many", "steps must be a number"), ("steps", "expected KEY=VALUE")):
        r = runner.invoke(app, ["export", str(out), str(tmp_path / "bad.safetensors"), "--decode", bad])
        assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output
        assert not (tmp_path / "bad.safetensors").exists()


def test_init_from_another_process_restarts_the_ema_warm_up(tmp_path, images):
    """Continuing a model file under its own process keeps the EMA's long average; starting a process of
    another kind (here a mirror-start bridge → a smooth-start generating bridge) from it restarts the EMA's
    warm-up, so the average does not keep the old process's weights for thousands of steps."""
    mirror = {"task": "inpaint", "objective": "bridge", "process": {"sigma": 0.3}, "loss": "l1",
              "net": {**TINY_NET, "gamma_embedding": "time"}}
    Trainer(_config(images, steps=3, **mirror), tmp_path / "run").run()
    exported = export_checkpoint(tmp_path / "run", tmp_path / "mirror.safetensors", dtype="fp32")
    same = Trainer(_config(images, steps=5, init=str(exported), **mirror), tmp_path / "same")
    assert same.step == 3 and same.ema_from == 0
    smooth = {**mirror, "process": {"sigma": 1.0, "start": "smooth", "steps": 8}}
    other = Trainer(_config(images, steps=5, init=str(exported), **smooth), tmp_path / "other")
    assert other.step == 3 and other.ema_from == 3


def test_resume_with_optimizer_state_that_does_not_fit_is_one_clear_error(tmp_path, images):
    from palette_cli.training import atomic_torch_save
    from palette_cli.training.config import ConfigError

    Trainer(_config(images, steps=2), tmp_path / "a").run()
    original = load_checkpoint(list_checkpoints(tmp_path / "a")[-1])
    groups = original["optimizer"]["param_groups"]
    bad = {**original, "optimizer": {**original["optimizer"], "param_groups": groups + groups}}
    atomic_torch_save(bad, tmp_path / "b" / "checkpoints" / "step-00000002.pt")
    with pytest.raises(ConfigError, match="optimiser state does not fit"):
        Trainer(_config(images, steps=4), tmp_path / "b", resume=True)


def test_init_into_a_network_with_more_attention_starts_as_the_file_and_then_trains_it(tmp_path, images):
    """A model file can start a run of the same U-Net with attention at more resolutions: every old weight
    lands in its layer (an upsampling layer moves up one place behind a new block), each new block starts as
    the identity, so the grown network's output equals the file's, bit for bit in fp32; training then
    moves the new blocks. Any other change of the network is still refused."""
    from palette_cli.checkpoint import load_model

    base = {"task": "inpaint", "objective": "bridge", "process": {"sigma": 0.3}, "loss": "l1",
            "net": {**TINY_NET, "gamma_embedding": "time", "attention_resolutions": []}}
    Trainer(_config(images, steps=3, **base), tmp_path / "run").run()
    exported = export_checkpoint(tmp_path / "run", tmp_path / "plain.safetensors", dtype="fp32")
    old, _ = load_model(exported)
    grown = {**base, "net": {**base["net"], "attention_resolutions": [2]}}
    t = Trainer(_config(images, steps=8, init=str(exported), optim={"lr": 3e-3, "warmup_steps": 1}, **grown),
                tmp_path / "run2")
    new_blocks = [k for k in t.model.state_dict() if k not in old.state_dict() or
                  t.model.state_dict()[k].shape != old.state_dict()[k].shape]
    assert any(".qkv." in k for k in new_blocks) and t.step == 3 and t.ema_from == 3
    x, cond = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    g = torch.tensor([0.3, 0.7])
    with torch.no_grad():
        assert torch.equal(t.model.eval()(x, g, cond), old.eval()(x, g, cond))
    proj = [k for k in t.model.state_dict() if k.endswith(".proj.weight") and k.startswith(("encoder", "decoder"))]
    assert proj and all(not t.model.state_dict()[k].any() for k in proj)
    t.model.train()
    t.run()
    assert any(t.model.state_dict()[k].any() for k in proj)  # the new blocks learn
    other = {**base, "net": {**base["net"], "attention_resolutions": [2], "num_res_blocks": 2}}
    with pytest.raises(ConfigError, match="different network"):
        Trainer(_config(images, steps=4, init=str(exported), **other), tmp_path / "run3")
