"""The ImageNet-encoder network with a level input: the generating fill on an EfficientNet-Lite encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from palette_cli.checkpoint import load_model
from palette_cli.diffusion.bridge import BridgeProcess
from palette_cli.diffusion.preconditioned import PreconditionedBridgeProcess
from palette_cli.nets import EffNetUNetConfig, network_config

PIXELS = dict(encoder="lite0", image_size=64, num_classes=0, out_channels=3, decoder_channels=[16, 16, 8, 8, 8],
              global_channels=8, output_stride=2)


def level_net(seed: int = 0, **changes):
    torch.manual_seed(seed)
    net = EffNetUNetConfig(**{**PIXELS, "gamma_embedding": "time", **changes}).build()
    with torch.no_grad():  # a head and FiLMs that are not zero, so the output depends on the input and level
        net.conv_out.weight.normal_(0, 0.5)
        for block in [net.bottom, *net.ups]:
            block.film.weight.normal_(0, 0.5)
    return net.eval()


def test_a_level_embedding_is_a_config_field_and_level_free_files_stay_as_they_were():
    plain = EffNetUNetConfig(**PIXELS)
    timed = EffNetUNetConfig(**PIXELS, gamma_embedding="time")
    assert not plain.uses_level and timed.uses_level
    assert "gamma_embedding" not in plain.to_dict()  # the shipped colorizer's file layout is unchanged
    assert network_config(timed.to_dict()) == timed and network_config(plain.to_dict()) == plain
    assert plain.build().level_mlp is None and timed.build().level_mlp is not None
    with pytest.raises(ValueError, match="gamma_embedding"):
        EffNetUNetConfig(**PIXELS, gamma_embedding="seconds")


def test_the_output_depends_on_the_level_only_with_a_level_embedding():
    net = level_net()
    cond = torch.rand(2, 3, 64, 64) * 2 - 1
    y = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        early, late = net(y, torch.tensor([0.1, 0.1]), cond), net(y, torch.tensor([0.9, 0.9]), cond)
        one = net(y, 0.9, cond)  # one number stands for the whole batch
        mixed = net(y, torch.tensor([0.1, 0.9]), cond)
    assert early.shape == (2, 3, 64, 64)
    assert (early - late).abs().mean() > 1e-3
    assert torch.equal(one, late)
    assert torch.allclose(mixed[0], early[0], atol=1e-5) and torch.allclose(mixed[1], late[1], atol=1e-5)
    with pytest.raises(ValueError, match="level"):
        net(y, None, cond)

    plain = EffNetUNetConfig(**PIXELS).build().eval()
    with torch.no_grad():
        plain.conv_out.weight.normal_(0, 0.5)
        assert torch.equal(plain(y, 0.1, cond), plain(y, 0.9, cond))


def test_a_bridge_at_every_time_takes_the_encoder_network_only_with_a_time_embedding():
    process = PreconditionedBridgeProcess(sigma=0.5, p_start=0.1, spread=0.35)
    process.check_network(EffNetUNetConfig(**PIXELS, gamma_embedding="time"))
    with pytest.raises(ValueError, match="p_start"):
        process.check_network(EffNetUNetConfig(**PIXELS))
    with pytest.raises(ValueError, match="time"):
        process.check_network(EffNetUNetConfig(**PIXELS, gamma_embedding="logsnr"))
    BridgeProcess(sigma=0.5, p_start=1.0).check_network(EffNetUNetConfig(**PIXELS))  # one level: no embedding


def test_a_generating_fill_on_the_encoder_trains_exports_and_inpaints(tmp_path):
    """Two training steps of a tiny encoder fill, exported and run by ``palette inpaint``: known pixels are
    kept exactly, the hole changes, and two seeds make two different fills."""
    from typer.testing import CliRunner

    from palette_cli.cli.app import app
    from palette_cli.training import Trainer, export_checkpoint, load_config
    from tests.conftest import make_photo

    for i in range(2):
        make_photo(96, 96, i).save(tmp_path / f"p{i}.png")
    net = ('net={arch = "effnet-unet", encoder = "lite0", image_size = 64, num_classes = 0, out_channels = 3, '
           'decoder_channels = [8, 8, 8, 8, 8], global_channels = 8, output_stride = 2, train_encoder = true, '
           'gamma_embedding = "time"}')
    config = load_config(None, [
        "task=inpaint+uncrop", "objective=bridge", "prediction=preconditioned", "loss=l2",
        "process={sigma = 0.5, p_start = 0.1, start = \"smooth\", steps = 2, spread = 0.35}", net,
        f"data.source={tmp_path}", "data.size=64", "batch_size=2", "precision=fp32", "channels_last=false",
        "val_every=1000", "log_every=1", "optim.lr=1e-3", "optim.warmup_steps=0", "steps=2"])
    trainer = Trainer(config, tmp_path / "run")
    trainer.run()
    assert trainer.step == 2
    model = export_checkpoint(tmp_path / "run", tmp_path / "fill.safetensors")
    state, info = load_model(model)
    assert info.net["gamma_embedding"] == "time" and info.net["arch"] == "effnet-unet"

    photo = make_photo(64, 64, 5)  # 2² at the encoder's stride 32, so its group norms have more than one value
    photo.save(tmp_path / "in.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    outs = []
    for seed in (1, 2):
        out = tmp_path / f"o{seed}.png"
        r = CliRunner().invoke(app, ["inpaint", str(tmp_path / "in.png"), "--mask", str(tmp_path / "m.png"),
                                     "-o", str(out), "--model", str(model), "--seed", str(seed), "--quiet",
                                     "--device", "cpu", "--precision", "fp32", "--resolution", "64"])
        assert r.exit_code == 0, r.output
        outs.append(np.asarray(Image.open(out)).astype(int))
    a = np.asarray(photo).astype(int)
    keep = mask == 0
    assert np.array_equal(a[keep], outs[0][keep]) and np.array_equal(a[keep], outs[1][keep])
    assert not np.array_equal(a[~keep], outs[0][~keep])
    assert np.abs(outs[0][~keep] - outs[1][~keep]).mean() > 1  # each seed another fill


def test_a_sampler_runs_the_encoder_once_per_condition_and_never_on_stale_features():
    """Out of training the encoder's features of the last condition are kept (it reads only the condition, so a
    sampler's steps share them): one encoder call for many steps on one condition and on slices of it as the
    pipeline makes them, and the same output as without the cache; a new condition, the same one changed in
    place, changed encoder weights or training mode each encode again."""
    net = level_net(1)
    calls = []
    net.encoder._conv_stem.register_forward_pre_hook(lambda module, args: calls.append(1))
    cond = torch.rand(2, 3, 64, 64) * 2 - 1
    y = torch.randn(2, 3, 64, 64)

    def fresh(level, c):  # the output of the same weights with nothing cached
        net._last_encoding = None
        return net(y, level, c)

    with torch.no_grad():
        expected = [fresh(t, cond) for t in (0.9, 0.5, 0.1)]
        net._last_encoding = None
        before = len(calls)
        got = [net(y, t, cond) for t in (0.9, 0.5, 0.1)]
        got_sliced = [net(y[:1], t, cond[:1]) for t in (0.9, 0.5)]
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert torch.allclose(got_sliced[0], expected[0][:1], atol=1e-5)
    assert len(calls) - before == 2  # the whole batch once, then its first slice once

    with torch.no_grad():
        other = torch.rand(2, 3, 64, 64) * 2 - 1
        assert torch.equal(net(y, 0.5, other), fresh(0.5, other))
        net(y, 0.5, cond)
        cond.mul_(-1)  # changed in place: the cached features would be stale
        assert torch.equal(net(y, 0.5, cond), fresh(0.5, cond))
        net(y, 0.5, cond)
        net.encoder._conv_stem.weight.mul_(0.5)  # as an optimiser or an EMA update changes weights in place
        assert torch.equal(net(y, 0.5, cond), fresh(0.5, cond))
        n = len(calls)
        net.train()
        net(y, 0.5, cond)
        net(y, 0.5, cond)
        assert len(calls) - n == 2 and net._last_encoding is None  # training never reuses features


def test_the_state_pyramid_gives_every_coarse_decoder_level_the_pooled_state_and_condition():
    """With it, the input of the bottom block and of each up block but the last (which has the stem) ends with
    ``[cond, y_t]`` average-pooled to that level; without it those inputs are 6 channels narrower; files without
    it keep their layout."""
    import torch.nn.functional as F

    cond = torch.rand(1, 3, 64, 64) * 2 - 1
    y = torch.randn(1, 3, 64, 64)
    widths = {}
    for pyramid in (False, True):
        net = level_net(2, state_pyramid=pyramid)
        seen = []
        for block in [net.bottom, *net.ups[:-1]]:
            block.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
        with torch.no_grad():
            net(y, 0.5, cond)
        widths[pyramid] = [x.shape[1] for x in seen]
        if pyramid:
            for x in seen:
                expected = F.avg_pool2d(torch.cat([cond, y], 1), 64 // x.shape[-1])
                assert torch.allclose(x[:, -6:], expected, atol=1e-6)
        assert ("state_pyramid" in net.config.to_dict()) == pyramid
        assert network_config(net.config.to_dict()) == net.config
    assert len(widths[True]) == 4 and [w - 6 for w in widths[True]] == widths[False]
