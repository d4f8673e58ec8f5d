"""The two-stage fill: a coarse network in the same model file lays the unknown part out, the fine one
starts part-way from it (``guess = "coarse"``); and the bridge's fresh-noise default (``eta``) in the file."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from palette_cli.checkpoint import CheckpointError, ModelInfo, load_model, read_info, save_model
from palette_cli.cli.app import app
from palette_cli.diffusion.bridge import BridgeProcess
from palette_cli.diffusion.preconditioned import PreconditionedBridgeProcess
from palette_cli.diffusion.process import SamplerSettings
from palette_cli.pipeline import Pipeline
from palette_cli.tasks.fill import smooth_fill
from palette_cli.training.export import attach_coarse

runner = CliRunner()


def bridge_net(seed: int, zero_out: bool):
    """A tiny U-Net with the bridge's time embedding; ``zero_out``: its output layer left at zero (the
    preconditioned bridge then returns its Wiener estimate: at t = 1 the start itself)."""
    from palette_cli.nets import UNet, preset

    torch.manual_seed(seed)
    cfg = dataclasses.replace(preset("tiny"), gamma_embedding="time")
    net = UNet(cfg)
    if not zero_out:
        with torch.no_grad():
            for p in net.parameters():
                if p.abs().sum() == 0:
                    p.normal_(0, 0.02)
    return cfg, net


def fill_file(path, seed: int, zero_out: bool, resolution: int | None = None, tasks=("inpaint", "uncrop"), **process):
    cfg, net = bridge_net(seed, zero_out)
    proc = PreconditionedBridgeProcess(sigma=0.5, spread=0.35, **process)
    training = {"resolution": resolution} if resolution else {}
    save_model(path, ModelInfo(net=cfg.to_dict(), tasks=list(tasks), training=training, extra=proc.metadata()),
               net.state_dict())
    return path, net


def test_a_bridge_file_records_its_fresh_noise_default_and_the_user_overrides_it():
    p = PreconditionedBridgeProcess(eta=0.0)
    assert p.resolve(SamplerSettings()).eta == 0.0
    assert p.resolve(SamplerSettings(eta=0.5)).eta == 0.5
    assert p.is_deterministic(SamplerSettings(steps=8))
    assert not PreconditionedBridgeProcess().is_deterministic(SamplerSettings(steps=8))
    # from a guess, the state at guess_time holds noise: -n gives different samples even with η = 0
    assert not PreconditionedBridgeProcess(eta=0.0, guess="coarse", guess_time=0.3).is_deterministic(SamplerSettings())
    assert PreconditionedBridgeProcess(eta=0.0, guess="coarse", guess_time=1.0).is_deterministic(SamplerSettings())
    again = PreconditionedBridgeProcess.from_spec(p.metadata()["process"], {})
    assert again.eta == 0.0
    assert "eta" not in BridgeProcess().metadata()["process"]  # the first bridge files stay as they were
    assert BridgeProcess(eta=0.0).metadata()["process"]["eta"] == 0.0
    assert p.describe(SamplerSettings())["bridge_eta"] == "0"
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="eta"):
            PreconditionedBridgeProcess(eta=bad)


def test_the_files_eta_is_what_sampling_uses(tmp_path):
    path, _ = fill_file(tmp_path / "f.safetensors", 0, False, eta=0.0, steps=4)
    pipe = Pipeline.from_file(path, device="cpu", precision="fp32")
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 16:] = 1

    def run(settings, seed):
        g = torch.Generator().manual_seed(seed)
        known = image * (1 - mask)
        return pipe.sample(known, settings, g, known=known, mask=mask, start=smooth_fill(known, mask))

    default, explicit, noisy = run(SamplerSettings(), 1), run(SamplerSettings(eta=0.0), 1), run(SamplerSettings(eta=1.0), 1)
    assert torch.equal(default, explicit)
    assert (default - noisy).abs().mean() > 1e-3
    # η = 0 from the start: no randomness left at all, whatever the seed
    assert torch.equal(default, run(SamplerSettings(), 2))


@pytest.fixture
def two_stage(tmp_path):
    """A fine fill that starts at t = 0.00001 from its coarse stage's guess, and a coarse stage at 16²; both
    networks' output layers are zero, so the coarse sample is its smooth start and the fine output its guess."""
    fine, _ = fill_file(tmp_path / "fine.safetensors", 0, True, guess="coarse", guess_time=1e-5, eta=0.0, steps=2)
    coarse, coarse_net = fill_file(tmp_path / "coarse.safetensors", 1, True, resolution=16, eta=0.0, steps=2)
    return fine, coarse, coarse_net


def test_a_two_stage_file_loads_both_networks_and_fills_from_the_coarse_layout(tmp_path, two_stage):
    fine, coarse, coarse_net = two_stage
    with pytest.raises(CheckpointError, match="coarse stage"):  # guess=coarse with no coarse stage: refused
        Pipeline.from_file(fine, device="cpu")
    both = attach_coarse(fine, coarse, tmp_path / "both.safetensors")
    assert read_info(both).extra["coarse"]["size"] == 16
    pipe = Pipeline.from_file(both, device="cpu", precision="fp32")
    assert pipe.coarse is not None and pipe.coarse.resolution == 16
    for k, v in coarse_net.state_dict().items():
        assert torch.equal(pipe.coarse.net.state_dict()[k].float(), v.float()), k
    net, _ = load_model(both)  # what training starts from (init): the fine network alone
    assert set(net.state_dict()) == set(coarse_net.state_dict())

    x = torch.linspace(-1, 1, 32)
    image = torch.stack([x.view(1, -1).expand(32, 32), x.view(-1, 1).expand(32, 32),
                         torch.sin(6 * x).view(1, -1).expand(32, 32)]).unsqueeze(0)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 16:] = 1
    canvas = image * (1 - mask)
    pipe.fill_window(canvas, mask, (0, 0, 32, 32), SamplerSettings(), torch.Generator().manual_seed(0))
    # the expected guess: the window shrunk to 16², its smooth fill, enlarged into the unknown half
    small = F.interpolate(image * (1 - mask), size=(16, 16), mode="area")
    m = (F.interpolate(mask, size=(16, 16), mode="area") > 0.5).float()
    big = F.interpolate(smooth_fill(small * (1 - m), m), size=(32, 32), mode="bicubic", align_corners=False).clamp(-1, 1)
    unknown = mask.bool().expand_as(canvas)
    assert (canvas - big)[unknown].abs().max() < 0.01
    assert torch.equal(canvas[~unknown], image[~unknown])  # known pixels untouched
    # and it is the coarse layout, not the fine-resolution smooth fill
    fine_smooth = smooth_fill(image * (1 - mask), mask)
    assert (canvas - fine_smooth)[unknown].abs().mean() > 3 * (canvas - big)[unknown].abs().mean()


def test_broken_two_stage_files_are_refused_in_one_line(tmp_path, two_stage):
    from safetensors.torch import load_file, save_file

    fine, coarse, _ = two_stage
    both = attach_coarse(fine, coarse, tmp_path / "both.safetensors")
    tensors = load_file(str(both))
    meta = {"palette_cli": json.dumps(read_info(both).to_metadata())}
    missing = {k: v for k, v in tensors.items() if k != sorted(k for k in tensors if k.startswith("coarse."))[0]}
    save_file(missing, str(tmp_path / "missing.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="coarse.*missing"):
        Pipeline.from_file(tmp_path / "missing.safetensors", device="cpu")
    info = read_info(both).to_metadata()
    del info["extra"]["coarse"]["size"]
    save_file(tensors, str(tmp_path / "nosize.safetensors"), metadata={"palette_cli": json.dumps(info)})
    with pytest.raises(CheckpointError, match="working size"):
        read_info(tmp_path / "nosize.safetensors")
    # a plain file with stray coarse tensors: unexpected tensors, as any other
    plain, _ = fill_file(tmp_path / "plain.safetensors", 0, False)
    stray = {**load_file(str(plain)), "coarse.x": torch.zeros(2)}
    save_file(stray, str(tmp_path / "stray.safetensors"), metadata={"palette_cli": json.dumps(
        read_info(plain).to_metadata())})
    with pytest.raises(CheckpointError, match="unexpected tensor 'coarse.x'"):
        load_model(tmp_path / "stray.safetensors")
    colour, _ = fill_file(tmp_path / "colour.safetensors", 2, False, tasks=("colorize",))
    with pytest.raises(ValueError, match="not a fill model"):
        attach_coarse(fine, colour, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="coarse stage of its own"):
        attach_coarse(fine, both, tmp_path / "x.safetensors")


def test_export_joins_the_stages_and_refuses_a_coarse_guess_without_one(tmp_path, two_stage):
    fine, coarse, _ = two_stage
    plain, _ = fill_file(tmp_path / "plain.safetensors", 0, True)
    out = tmp_path / "out.safetensors"
    r = runner.invoke(app, ["export", str(plain), str(out), "--decode", "guess=coarse", "--decode", "guess_time=0.1"])
    assert r.exit_code == 1 and "needs a coarse stage" in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
    out.write_bytes(b"the user's file")
    r = runner.invoke(app, ["export", str(plain), str(out), "--decode", "guess=coarse", "--decode", "guess_time=0.1"])
    assert r.exit_code == 1
    assert out.read_bytes() == b"the user's file"  # a refusal leaves the file as it was
    out.unlink()
    r = runner.invoke(app, ["export", str(plain), str(out), "--coarse-size", "16"])
    assert r.exit_code == 1 and "--coarse" in r.output
    r = runner.invoke(app, ["export", str(plain), str(out), "--decode", "guess=coarse", "--decode", "guess_time=0.1",
                            "--decode", "eta=0", "--coarse", str(coarse), "--coarse-size", "24"])
    assert r.exit_code == 0, r.output
    info = read_info(out)
    assert info.extra["process"]["guess"] == "coarse" and info.extra["process"]["eta"] == 0.0
    assert info.extra["coarse"]["size"] == 24
    assert Pipeline.from_file(out, device="cpu").coarse.resolution == 24
    # a new decoding of the joined file keeps its coarse stage
    again = tmp_path / "again.safetensors"
    r = runner.invoke(app, ["export", str(out), str(again), "--decode", "guess_time=0.2"])
    assert r.exit_code == 0, r.output
    assert read_info(again).extra["coarse"] == info.extra["coarse"]
    assert Pipeline.from_file(again, device="cpu").process.guess_time == 0.2


def test_n_samples_of_a_two_stage_uncrop_differ_where_it_generates(tmp_path, photo):
    import numpy as np
    from PIL import Image

    fine, _ = fill_file(tmp_path / "fine.safetensors", 0, False, guess="coarse", guess_time=0.3, eta=0.0, steps=2)
    coarse, _ = fill_file(tmp_path / "coarse.safetensors", 1, False, resolution=16, eta=0.0, steps=2)
    both = attach_coarse(fine, coarse, tmp_path / "both.safetensors")
    out = tmp_path / "out"
    r = runner.invoke(app, ["uncrop", str(photo), "--direction", "right", "--amount", "24", "-n", "2", "--model",
                            str(both), "-o", str(out), "--seed", "3", "--quiet"])
    assert r.exit_code == 0, r.output
    a, b = (np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) for p in sorted(out.glob("*_s[01].png")))
    w = Image.open(photo).width
    assert a.shape[1] == w + 24
    assert np.array_equal(a[:, :w], b[:, :w])  # the photo itself is kept in both
    assert np.abs(a[:, w:] - b[:, w:]).mean() > 1.0  # the new part differs between the samples
