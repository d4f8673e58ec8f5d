"""The U-Net, its presets, attention variants, noise-level embeddings and the fast inference mode."""

import contextlib
import json
import math

import pytest
import torch

from palette_cli.nets import (
    ATTENTION_KINDS,
    PRESETS,
    UNet,
    UNetConfig,
    count_parameters,
    gamma_embedding,
    inference_mode,
    preset,
    resolve_precision,
)
from palette_cli.nets.unet import AttentionBlock, log_snr


def randomized(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter (zero-initialised ones included) random values so outputs are non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.dim() > 1 else 0.1))
    return net.eval()


def inputs(batch=2, size=(16, 16), seed=1):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(batch, 3, *size, generator=g)
    cond = torch.rand(batch, 3, *size, generator=g) * 2 - 1
    return y, torch.linspace(0.1, 0.9, batch), cond


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_small_presets_run(name):
    cfg = preset(name)
    torch.manual_seed(0)
    net = UNet(cfg).eval()
    y, gamma, cond = inputs(size=(16, 16))
    with torch.no_grad():
        assert torch.equal(net(y, gamma, cond), torch.zeros_like(y))  # zero-initialised output conv
        out = randomized(net)(y, gamma, cond)
    assert out.shape == y.shape and out.dtype == y.dtype
    assert torch.isfinite(out).all() and out.std() > 0


@pytest.mark.parametrize("attention", ATTENTION_KINDS)
def test_attention_variants_run(attention):
    net = randomized(UNet(preset("tiny").replace(attention=attention)))
    y, gamma, cond = inputs(size=(16, 24))  # not the native size, not square
    with torch.no_grad():
        out = net(y, gamma, cond)
    assert out.shape == y.shape and torch.isfinite(out).all() and out.abs().mean() > 0
    kinds = {type(m).__name__ for m in net.modules()}
    assert ("AttentionBlock" in kinds) == (attention in ("global", "local"))
    assert ("DilatedConvBlock" in kinds) == (attention == "none_dilated")


def test_more_res_doubles_blocks_at_attention_levels():
    base, more = UNet(preset("tiny")), UNet(preset("tiny").replace(attention="none_more_res"))
    # tiny: 3 levels, 1 res block each, attention at downsample 4 (the last level) and in the middle.
    assert len(more.encoder) == len(base.encoder) + 1
    assert len(more.decoder) == len(base.decoder) + 1
    assert len(more.middle) == 4


def test_zero_init_output():
    for attention in ATTENTION_KINDS:
        net = UNet(preset("tiny").replace(attention=attention))
        y, gamma, cond = inputs()
        assert torch.equal(net(y, gamma, cond), torch.zeros_like(y))


def test_parameter_counts():
    paper = count_parameters(preset("paper"))
    janspiry = count_parameters(preset("janspiry"))
    print(f"paper preset: {paper:,} parameters; janspiry preset: {janspiry:,} parameters")
    assert paper == 552_814_083  # the paper: ≈552M
    assert janspiry == 62_641_347
    assert abs(janspiry - 62.6e6) < 0.1e6
    assert count_parameters(preset("paper").replace(attention="none_dilated")) == 616_997_891
    assert count_parameters(preset("small")) == 6_936_291


def test_input_size_must_be_divisible():
    net = UNet(preset("tiny"))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.zeros(1, 3, 18, 16), torch.ones(1), torch.zeros(1, 3, 18, 16))


def test_scalar_gamma_broadcasts():
    net = randomized(UNet(preset("tiny")))
    y, _, cond = inputs()
    with torch.no_grad():
        assert torch.allclose(net(y, torch.tensor(0.3), cond), net(y, torch.full((2,), 0.3), cond))


def test_output_depends_on_gamma_and_cond():
    net = randomized(UNet(preset("tiny")))
    y, _, cond = inputs()
    with torch.no_grad():
        a = net(y, torch.full((2,), 0.2), cond)
        b = net(y, torch.full((2,), 0.8), cond)
        c = net(y, torch.full((2,), 0.2), -cond)
    assert (a - b).abs().mean() > 1e-3 and (a - c).abs().mean() > 1e-3


def test_config_round_trip():
    for name, cfg in PRESETS.items():
        d = json.loads(json.dumps(cfg.to_dict()))
        assert UNetConfig.from_dict(d) == cfg, name
    assert preset("small").in_channels == 6 and preset("small").divisor == 8


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown UNetConfig field.*colour"):
        UNetConfig.from_dict({**preset("tiny").to_dict(), "colour": 1})
    with pytest.raises(ValueError, match="attention"):
        UNetConfig(attention="sparse")
    with pytest.raises(ValueError, match="gamma_embedding"):
        UNetConfig(gamma_embedding="t")
    with pytest.raises(ValueError, match="norm groups"):
        UNetConfig(model_channels=24)
    with pytest.raises(ValueError, match="unknown network preset"):
        preset("huge")


def test_logsnr_embedding_formula_and_resolution():
    gamma = torch.tensor([1e-12, 1e-6, 1e-4, 0.5, 1 - 1e-4, 1 - 1e-6, 1.0], dtype=torch.float64)
    lam = log_snr(gamma)
    assert torch.allclose(lam[1:6], torch.log(gamma[1:6] / (1 - gamma[1:6])))
    assert lam[0] == -20 and lam[-1] == 20
    emb = gamma_embedding(gamma, 64, "logsnr")
    t = 25.0 * (lam + 20.0)
    freqs = torch.exp(-math.log(10000.0) * torch.arange(32, dtype=torch.float64) / 32)
    expected = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], dim=1)
    assert torch.allclose(emb.double(), expected, atol=1e-4)
    # Every pair of distinct noise levels gets clearly different features, at both ends of the range.
    dist = torch.cdist(emb, emb)
    off_diagonal = dist[~torch.eye(len(gamma), dtype=torch.bool)]
    assert off_diagonal.min() > 1.0
    # The raw-γ embedding barely separates the nearly-pure-noise levels that the log-SNR one resolves.
    raw = gamma_embedding(gamma.float(), 64, "janspiry")
    assert (raw[1] - raw[2]).norm() < 1e-3 < 1.0 < (emb[1] - emb[2]).norm()


def test_local_attention_stays_inside_quadrants():
    torch.manual_seed(0)
    block = {local: randomized(AttentionBlock(16, 2, local=local, num_groups=1)) for local in (False, True)}
    for b in block.values():
        b.norm = torch.nn.Identity()  # the norm's statistics would couple all positions
    x = torch.randn(1, 16, 6, 6)
    x2 = x.clone()
    x2[..., :3, :3] += torch.randn(1, 16, 3, 3)  # change only the top-left quadrant
    with torch.no_grad():
        local_delta = (block[True](x2) - block[True](x)).abs()
        global_delta = (block[False](x2) - block[False](x)).abs()
    outside = torch.ones(6, 6, dtype=torch.bool)
    outside[:3, :3] = False
    assert global_delta[..., outside].max() > 1e-2
    assert local_delta[..., outside].max() < 1e-6
    assert local_delta[..., ~outside].max() > 1e-2


def test_local_attention_matches_reference_per_quadrant():
    torch.manual_seed(0)
    block = randomized(AttentionBlock(16, 2, local=True, num_groups=4))
    x = torch.randn(1, 16, 4, 6)
    with torch.no_grad():
        out = block(x)
        qkv = block.qkv(block.norm(x))
        for rows, cols in [(slice(0, 2), slice(0, 3)), (slice(2, 4), slice(3, 6))]:
            part = qkv[..., rows, cols].reshape(1, 2, 24, -1)
            q, k, v = part.split(8, dim=2)
            w = torch.softmax(q.transpose(-1, -2) @ k / math.sqrt(8), dim=-1)
            h = (w @ v.transpose(-1, -2)).transpose(-1, -2).reshape(1, 16, 2, 3)
            ref = x[..., rows, cols] + block.proj(h)
            assert torch.allclose(out[..., rows, cols], ref, atol=1e-5)


def test_bf16_autocast_close_to_fp32():
    net = randomized(UNet(preset("tiny")))
    for p in net.parameters():
        p.data.mul_(0.5)
    y, gamma, cond = inputs(size=(16, 16))
    with torch.no_grad():
        ref = net(y, gamma, cond)
        fast, autocast = inference_mode(net, "cpu", "bf16")
        with autocast():
            out = fast(y, gamma, cond)
    assert out.dtype == torch.float32
    rel = (out - ref).norm() / ref.norm()
    assert 0 < rel < 1.5e-2


def test_inference_mode_settings():
    net, autocast = inference_mode(UNet(preset("tiny")), "cpu", "fp32")
    assert autocast is contextlib.nullcontext and not net.training
    assert net.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert resolve_precision("cpu", "fp16") == torch.float16
    assert resolve_precision("cpu", "auto") in (torch.bfloat16, None)
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("cpu", "int8")


def test_half_precision_weights_run():
    net = randomized(UNet(preset("tiny")))
    for p in net.parameters():
        p.data.mul_(0.5)
    y, gamma, cond = inputs()
    with torch.no_grad():
        ref = net(y, gamma, cond)
        out = net.to(torch.bfloat16)(y.bfloat16(), gamma, cond.bfloat16())
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).norm() / ref.norm() < 5e-2
