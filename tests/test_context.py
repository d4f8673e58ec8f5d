"""A U-Net with a context encoder: a frozen ImageNet EfficientNet-Lite's pooled feature of the condition added to
the level embedding (``UNetConfig.context``)."""

from __future__ import annotations

import pytest
import torch

from palette_cli.checkpoint import ModelInfo, save_model
from palette_cli.nets import UNet, network_config, preset
from palette_cli.nets.efficientnet_lite import LiteTrunk

from tests.conftest import tiny_net


def test_context_is_a_config_field_and_files_without_it_keep_their_layout():
    plain = preset("tiny")
    with_context = plain.replace(context="lite0")
    assert "context" not in plain.to_dict() and with_context.to_dict()["context"] == "lite0"
    assert network_config(with_context.to_dict()) == with_context
    with pytest.raises(ValueError, match="context"):
        plain.replace(context="resnet50")


def test_the_context_starts_at_zero_and_then_carries_what_the_condition_shows():
    cfg, net = tiny_net(3)
    ctx = UNet(cfg.replace(context="lite0"))
    missing, unexpected = ctx.load_state_dict(net.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("context_") for k in missing)
    net.eval(), ctx.eval()
    y, cond = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1
    other = cond.flip(0)  # the two conditions swapped between the batch's items
    with torch.no_grad():
        assert torch.allclose(ctx(y, 0.5, cond), net(y, 0.5, cond), atol=1e-6)  # zero-initialised last layer
        ctx.context_mlp[-1].weight.normal_(0, 0.5)
        a = ctx(y, 0.5, cond)
        b = ctx(y, 0.5, cond.clone())
        swapped = ctx(y, 0.5, torch.cat([cond[:1], other[1:]]))
    assert torch.allclose(a, b, atol=1e-6)
    assert (swapped[1] - a[1]).abs().max() > 1e-4 and torch.allclose(swapped[0], a[0], atol=1e-5)
    with pytest.raises(ValueError, match="condition"):
        ctx(y, 0.5, None)


def test_a_sampler_runs_the_context_encoder_once_per_condition():
    ctx = UNet(preset("tiny").replace(context="lite0")).eval()
    calls = []
    ctx.context_encoder._conv_stem.register_forward_pre_hook(lambda module, args: calls.append(1))
    y, cond = torch.randn(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for t in (0.9, 0.5, 0.1):
            ctx(y, t, cond)
        assert len(calls) == 1
        cond.mul_(0.5)  # changed in place: encoded again
        ctx(y, 0.1, cond)
        assert len(calls) == 2
        ctx.train()
        ctx(y, 0.1, cond)
        ctx(y, 0.1, cond)
    assert len(calls) == 4


def test_context_size_shows_the_encoder_a_view_of_that_short_side():
    plain = preset("tiny")
    assert "context_size" not in plain.replace(context="lite0").to_dict()
    sized = plain.replace(context="lite0", context_size=64)
    assert sized.to_dict()["context_size"] == 64 and network_config(sized.to_dict()) == sized
    with pytest.raises(ValueError, match="context_size"):
        plain.replace(context_size=64)  # nothing to resize for
    with pytest.raises(ValueError, match="context_size"):
        plain.replace(context="lite0", context_size=8)
    net, native = UNet(sized).eval(), UNet(plain.replace(context="lite0")).eval()
    net.load_state_dict(tiny_net(3)[1].state_dict(), strict=False)  # an output layer that is not zero
    net.context_mlp[-1].weight.data.normal_(0, 0.5)
    net.load_pretrained_context()  # ImageNet weights: features of a real size
    native.load_state_dict(net.state_dict())  # the same weights: only the view differs
    seen = []
    for n in (net, native):
        n.context_encoder._conv_stem.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-2:]))
    y, cond = torch.randn(1, 3, 32, 48), torch.rand(1, 3, 32, 48) * 2 - 1
    big = torch.nn.functional.interpolate(cond, size=(64, 96), mode="bilinear", align_corners=False).clamp(-1, 1)
    with torch.no_grad():
        net(y, 0.5, cond), native(y, 0.5, cond)
        assert seen == [(64, 96), (32, 48)]  # the short side to 64, the aspect kept; the plain net as it comes
        f, f_big, f_native = net._context_feature(cond), native._context_feature(big), native._context_feature(cond)
    assert f.abs().mean() > 0.05
    assert torch.allclose(f, f_big, atol=1e-4)
    assert (f - f_native).abs().mean() > 0.1 * f.abs().mean()  # the larger view reads another feature


def test_a_run_with_context_starts_from_a_file_without_it_exactly_and_trains_only_the_mlp(tmp_path):
    from palette_cli.training import Trainer, load_config
    from tests.conftest import make_photo

    cfg = preset("tiny").replace(gamma_embedding="time")  # a bridge's level is its time
    net = UNet(cfg)
    net.load_state_dict(tiny_net(5)[1].state_dict())  # the same weights: the embedding changes no layout
    for i in range(2):
        make_photo(48, 48, i).save(tmp_path / f"p{i}.png")
    path = tmp_path / "plain.safetensors"
    save_model(path, ModelInfo(net=cfg.to_dict(), tasks=["inpaint", "uncrop"],
                               extra={"objective": "bridge", "prediction": "preconditioned",
                                      "process": {"sigma": 0.5, "p_start": 0.1, "start": "smooth", "spread": 0.35}}),
               net.state_dict())
    net_table = "net={" + ", ".join(f"{k} = {v!r}".replace("'", '"').replace("(", "[").replace(")", "]")
                                    for k, v in cfg.replace(context="lite0").to_dict().items()
                                    if v is not None) + "}"
    config = load_config(None, [
        "task=inpaint+uncrop", "objective=bridge", "prediction=preconditioned", "loss=l2",
        'process={sigma = 0.5, p_start = 0.1, start = "smooth", spread = 0.35}', net_table.replace("True", "true")
        .replace("False", "false"), f"init={path}", f"data.source={tmp_path}", "data.size=32", "batch_size=2",
        "precision=fp32", "channels_last=false", "val_every=1000", "log_every=1", "optim.lr=1e-3",
        "optim.warmup_steps=0", "steps=2"])
    trainer = Trainer(config, tmp_path / "run")
    model = trainer.model.eval()
    imagenet = LiteTrunk("lite0")
    imagenet.load_imagenet()
    assert all(torch.equal(a, b) for a, b in zip(model.context_encoder.state_dict().values(),
                                                 imagenet.state_dict().values()))
    y, cond = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model(y, 0.3, cond), net.eval()(y, 0.3, cond), atol=1e-6)
    mlp = {k: v.clone() for k, v in model.context_mlp.state_dict().items()}
    trainer.run()
    assert trainer.step == 2
    assert all(torch.equal(a, b) for a, b in zip(model.context_encoder.state_dict().values(),
                                                 imagenet.state_dict().values()))  # frozen
    assert any(not torch.equal(mlp[k], v) for k, v in model.context_mlp.state_dict().items())
