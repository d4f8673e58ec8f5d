"""Converting Janspiry/Palette (guided_diffusion flavour) U-Net state dicts reproduces their forward pass.

``Ref*`` below restate that U-Net's module layout (models/guided_diffusion_modules/unet.py and nn.py of
the public re-implementation) at a tiny size: same module names, nesting, shapes and arithmetic, so
their state dicts have exactly the real checkpoints' key names and shapes.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from palette_cli.convert import janspiry_state_dict_to_ours
from palette_cli.nets import UNet, gamma_embedding, preset


class RefNorm(nn.GroupNorm):
    """Their GroupNorm32: 32 groups, computed in float32."""

    def __init__(self, channels):
        super().__init__(32, channels)

    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def ref_gamma_embedding(gammas, dim, max_period=10000):
    """Their embedding of raw γ, written from its formula in float64 numpy."""
    g = gammas.double().numpy()
    half = dim // 2
    freqs = np.exp(-math.log(max_period) * np.arange(half) / half)
    args = g[:, None] * freqs[None]
    return torch.from_numpy(np.concatenate([np.cos(args), np.sin(args)], axis=1)).float()


class RefResBlock(nn.Module):
    def __init__(self, ch, emb_ch, out_ch=None, scale_shift=True, up=False, down=False):
        super().__init__()
        out_ch = out_ch or ch
        self.scale_shift, self.up, self.down = scale_shift, up, down
        self.in_layers = nn.Sequential(RefNorm(ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_ch, 2 * out_ch if scale_shift else out_ch))
        self.out_layers = nn.Sequential(RefNorm(out_ch), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip_connection = nn.Identity() if out_ch == ch else nn.Conv2d(ch, out_ch, 1)

    def _resample(self, t):
        if self.up:
            return F.interpolate(t, scale_factor=2, mode="nearest")
        return F.avg_pool2d(t, 2) if self.down else t

    def forward(self, x, emb):
        if self.up or self.down:
            h = self._resample(self.in_layers[:-1](x))
            x = self._resample(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.scale_shift:
            scale, shift = torch.chunk(e, 2, dim=1)
            h = self.out_layers[1:](self.out_layers[0](h) * (1 + scale) + shift)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class RefAttention(nn.Module):
    """Their AttentionBlock with the legacy head order: qkv viewed as (B·heads, 3·C/heads, T)."""

    def __init__(self, ch, head_ch):
        super().__init__()
        self.heads = ch // head_ch
        self.norm = RefNorm(ch)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj_out = nn.Conv1d(ch, ch, 1)

    def forward(self, x):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        d = c // self.heads
        q, k, v = qkv.reshape(b * self.heads, 3 * d, -1).split(d, dim=1)
        scale = 1 / math.sqrt(math.sqrt(d))
        w = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale).float(), dim=-1)
        a = torch.einsum("bts,bcs->bct", w, v).reshape(b, -1, x.shape[-1])
        return (x + self.proj_out(a)).reshape(b, c, *spatial)


class RefUpsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class RefDownsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class RefSequential(nn.Sequential):
    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, RefResBlock) else layer(x)
        return x


class RefUNet(nn.Module):
    def __init__(self, in_channel, inner_channel, out_channel, res_blocks, attn_res, channel_mults,
                 num_head_channels, use_scale_shift_norm=True, resblock_updown=True):
        super().__init__()
        self.inner_channel = inner_channel
        emb, ss = 4 * inner_channel, use_scale_shift_norm
        self.cond_embed = nn.Sequential(nn.Linear(inner_channel, emb), nn.SiLU(), nn.Linear(emb, emb))
        ch = channel_mults[0] * inner_channel
        self.input_blocks = nn.ModuleList([RefSequential(nn.Conv2d(in_channel, ch, 3, padding=1))])
        chans, ds = [ch], 1
        for level, mult in enumerate(channel_mults):
            for _ in range(res_blocks):
                layers = [RefResBlock(ch, emb, mult * inner_channel, ss)]
                ch = mult * inner_channel
                if ds in attn_res:
                    layers.append(RefAttention(ch, num_head_channels))
                self.input_blocks.append(RefSequential(*layers))
                chans.append(ch)
            if level != len(channel_mults) - 1:
                down = RefResBlock(ch, emb, ch, ss, down=True) if resblock_updown else RefDownsample(ch)
                self.input_blocks.append(RefSequential(down))
                chans.append(ch)
                ds *= 2
        self.middle_block = RefSequential(RefResBlock(ch, emb, None, ss), RefAttention(ch, num_head_channels),
                                          RefResBlock(ch, emb, None, ss))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mults))[::-1]:
            for i in range(res_blocks + 1):
                layers = [RefResBlock(ch + chans.pop(), emb, mult * inner_channel, ss)]
                ch = mult * inner_channel
                if ds in attn_res:
                    layers.append(RefAttention(ch, num_head_channels))
                if level and i == res_blocks:
                    layers.append(RefResBlock(ch, emb, ch, ss, up=True) if resblock_updown else RefUpsample(ch))
                    ds //= 2
                self.output_blocks.append(RefSequential(*layers))
        self.out = nn.Sequential(RefNorm(ch), nn.SiLU(), nn.Conv2d(ch, out_channel, 3, padding=1))

    def forward(self, x, gammas):
        emb = self.cond_embed(ref_gamma_embedding(gammas.view(-1), self.inner_channel))
        hs, h = [], x.float()
        for module in self.input_blocks:
            h = module(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for module in self.output_blocks:
            h = module(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h.type(x.dtype))


def reference(seed=0, **kwargs):
    args = dict(in_channel=6, inner_channel=32, out_channel=3, res_blocks=2, attn_res=[2], channel_mults=(1, 2),
                num_head_channels=16)
    args.update(kwargs)
    torch.manual_seed(seed)
    net = RefUNet(**args)
    with torch.no_grad():  # their zero-initialised layers would hide most of the network
        for p in net.parameters():
            p.normal_(0, 0.2 if p.dim() > 1 else 0.05)
    return net.eval()


def batch(size=16, b=2, cond_channels=3):
    g = torch.Generator().manual_seed(3)
    cond, y = torch.randn(b, cond_channels, size, size, generator=g), torch.randn(b, 3, size, size, generator=g)
    return cond, y, torch.tensor([0.07, 0.93])[:b]


def convert_and_compare(ref, overrides, size=16):
    config, sd = janspiry_state_dict_to_ours(ref.state_dict(), overrides)
    ours = UNet(config).eval()
    ours.load_state_dict(sd)  # strict: every key present, none extra
    cond, y, gamma = batch(size, cond_channels=config.cond_channels)
    with torch.no_grad():
        expected = ref(torch.cat([cond, y], dim=1), gamma)  # their call: denoise_fn(cat([y_cond, y_t]), γ)
        got = ours(y, gamma, cond)
    assert expected.abs().mean() > 0.01
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    return config


def test_their_gamma_embedding_formula():
    gammas = torch.tensor([0.0, 1e-4, 0.3, 0.999, 1.0])
    ours = gamma_embedding(gammas, 64, "janspiry")
    torch.testing.assert_close(ours, ref_gamma_embedding(gammas, 64), atol=1e-6, rtol=0)
    # First half cosines, second half sines; frequency k is 10000^(-k/32).
    assert ours[2, 0] == pytest.approx(math.cos(0.3)) and ours[2, 32 + 5] == pytest.approx(math.sin(0.3 * 10000 ** (-5 / 32)))


def test_converts_and_matches_forward():
    config = convert_and_compare(reference(), {"num_head_channels": 16})
    assert config.model_channels == 32 and config.channel_mult == (1, 2) and config.num_res_blocks == 2
    assert config.attention_resolutions == (2,) and config.cond_channels == 3 and config.out_channels == 3
    assert config.gamma_embedding == "janspiry" and config.use_scale_shift_norm and config.resblock_updown


def test_converts_other_layouts():
    ref = reference(seed=1, res_blocks=1, channel_mults=(1, 1, 2), attn_res=[1, 4], num_head_channels=32,
                    use_scale_shift_norm=False, resblock_updown=False, in_channel=4)
    config = convert_and_compare(ref, {"num_head_channels": 32})
    assert config.channel_mult == (1, 1, 2) and config.num_res_blocks == 1 and config.attention_resolutions == (1, 4)
    assert not config.use_scale_shift_norm and not config.resblock_updown and config.conv_resample
    assert config.cond_channels == 1


def test_network_checkpoint_with_prefix_and_buffers():
    ref = reference()
    sd = {f"denoise_fn.{k}": v for k, v in ref.state_dict().items()}
    sd.update({"gammas": torch.rand(2000), "sqrt_recip_gammas": torch.rand(2000),
               "posterior_log_variance_clipped": torch.rand(2000)})  # their Network's schedule buffers
    config, ours = janspiry_state_dict_to_ours(sd, {"num_head_channels": 16, "image_size": 128})
    assert config.image_size == 128 and config.dropout == 0.2
    plain_config, plain = janspiry_state_dict_to_ours({f"module.{k}": v for k, v in ref.state_dict().items()},
                                                      {"num_head_channels": 16})
    assert ours.keys() == plain.keys() and all(torch.equal(ours[k], plain[k]) for k in ours)
    assert "conv_in.weight" in ours and "gamma_mlp.2.bias" in ours and "middle.1.qkv.weight" in ours
    assert ours["middle.1.qkv.weight"].shape == (192, 64, 1, 1)


def test_their_key_names_are_all_mapped():
    sd = reference().state_dict()
    assert "input_blocks.3.0.in_layers.0.weight" in sd and "output_blocks.2.2.in_layers.2.weight" in sd
    assert "middle_block.1.proj_out.weight" in sd and sd["middle_block.1.qkv.weight"].shape == (192, 64, 1)
    _, ours = janspiry_state_dict_to_ours(sd, {"num_head_channels": 16})
    assert len(ours) == len(sd)


def test_bad_state_dicts_are_refused():
    sd = reference().state_dict()
    broken = {k: v for k, v in sd.items() if k != "output_blocks.0.0.skip_connection.weight"}
    with pytest.raises(ValueError, match="missing: decoder.0.0.skip.weight"):
        janspiry_state_dict_to_ours(broken, {"num_head_channels": 16})
    with pytest.raises(ValueError, match="sr3"):
        janspiry_state_dict_to_ours({"noise_level_mlp.1.weight": torch.zeros(4, 4), "downs.0.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="missing key"):
        janspiry_state_dict_to_ours({"foo.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="unknown UNetConfig field"):
        janspiry_state_dict_to_ours(sd, {"heads": 4})
    with pytest.raises(ValueError, match="not divisible by num_head_channels"):
        janspiry_state_dict_to_ours(sd, {"num_head_channels": 48})


def test_full_size_janspiry_layout_converts_to_our_preset():
    with torch.device("meta"):
        ref = RefUNet(in_channel=6, inner_channel=64, out_channel=3, res_blocks=2, attn_res=[16],
                      channel_mults=(1, 2, 4, 8), num_head_channels=32)
    sd = ref.state_dict()
    assert sum(v.numel() for v in sd.values()) == 62_641_347
    config, ours = janspiry_state_dict_to_ours(sd, {"num_head_channels": 32, "dropout": 0.2, "image_size": 256})
    assert config == preset("janspiry")
    assert len(ours) == len(sd) == 326
