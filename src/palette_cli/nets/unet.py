"""The ADM ("guided-diffusion") U-Net with SR3-style concat conditioning on a source image.

``UNet(config)(y_t, level, cond)`` maps a state and its level to an output whose meaning the model's
process decides (:mod:`palette_cli.diffusion.process`: the noise ε, v, the clean image, a bridge residual, or
``num_classes`` colour logits per block). ``cond`` (the source image) is concatenated before ``y_t`` on
the channel axis, and the continuous level (γ = ᾱ for diffusion, the time t for a bridge; shape (B,))
enters every residual block through a scale-shift (FiLM) of its second normalisation.

Layout (as in ADM): an input conv, then per resolution level ``num_res_blocks`` residual blocks
(each optionally followed by a self-attention block) and a down-sampling step; a middle block
(res, attention, res); a mirrored decoder with one more block per level that consumes the encoder's
skip connections; GroupNorm, SiLU and a zero-initialised output conv.

``attention_resolutions`` are **downsample factors** relative to the input (16 = the level whose
feature map is 1/16 of the image side, i.e. 16×16 for a 256² input), so a config means the same
network at every input size. The network runs on any size divisible by ``2 ** (len(channel_mult) - 1)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .efficientnet_lite import HEAD_CHANNELS as LITE_HEAD_CHANNELS
from .efficientnet_lite import VARIANTS as LITE_VARIANTS
from .efficientnet_lite import LiteTrunk, reuse_key
from ..windows import resize

ATTENTION_KINDS = ("global", "local", "none_more_res", "none_dilated")
GAMMA_EMBEDDINGS = ("logsnr", "janspiry", "time")
LOGSNR_LIMIT = 20.0
DILATION = 2


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UNetConfig:
    """Everything needed to rebuild a :class:`UNet`; JSON-able through :meth:`to_dict`.

    ``attention``: ``global`` (ADM), ``local`` (each query attends within its quarter of the
    feature map: 2×2 non-overlapping blocks), ``none_more_res`` (no attention; twice the residual
    blocks at the attention levels and in the middle), ``none_dilated`` (no attention; each attention
    block replaced by a residual 3×3 convolution with dilation 2) — the paper's ablation.
    ``num_head_channels`` fixes the width per head (ADM-256 uses 64); when ``None``, ``num_heads``
    heads are used. ``gamma_embedding``: see :func:`gamma_embedding`. ``patch_size`` p > 1 folds each
    p×p block of pixels into channels before the first conv and unfolds the output (pixel-unshuffle /
    shuffle): the whole network then runs at 1/p of the image side, p² times cheaper per level.
    ``num_classes`` K > 0 replaces the pixel output by a classification head: a zero-initialised 1×1 conv
    giving K logits per p×p block, ``(B, K, H/p, W/p)`` (the chroma-bin colorizer's output).
    ``context`` (``"none"``, or an EfficientNet-Lite variant such as ``"lite1"``): a frozen ImageNet-trained
    encoder reads the condition, and an MLP of its pooled 1280-d feature (what the picture shows as a whole)
    is added to the level embedding, so every residual block knows whether it continues a beach, a street or
    a face. The MLP's last layer starts at zero: a network without context starts a run with it unchanged.
    ``context_size`` (0: the condition as it comes): the condition is resized so its short side has this many
    pixels before the encoder reads it. ImageNet encoders know objects at about 224–240 px; a network that runs
    at 64² (a coarse fill stage) shows its encoder a 224-px view of its condition.
    """

    image_size: int = 256
    cond_channels: int = 3
    out_channels: int = 3
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 8)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)
    num_heads: int = 1
    num_head_channels: int | None = 32
    dropout: float = 0.0
    resblock_updown: bool = True
    conv_resample: bool = True
    use_scale_shift_norm: bool = True
    num_groups: int = 32
    gamma_embedding: str = "logsnr"
    attention: str = "global"
    patch_size: int = 1
    num_classes: int = 0
    context: str = "none"
    context_size: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
        object.__setattr__(self, "attention_resolutions", tuple(int(r) for r in self.attention_resolutions))
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTION_KINDS)}, got {self.attention!r}")
        if self.gamma_embedding not in GAMMA_EMBEDDINGS:
            raise ValueError(f"gamma_embedding must be one of {', '.join(GAMMA_EMBEDDINGS)}, got {self.gamma_embedding!r}")
        if self.patch_size not in (1, 2, 4):
            raise ValueError(f"patch_size must be 1, 2 or 4, got {self.patch_size}")
        if self.context != "none" and self.context not in LITE_VARIANTS:
            raise ValueError(f"context must be none or one of {', '.join(LITE_VARIANTS)}, got {self.context!r}")
        if self.context_size and (self.context == "none" or not 32 <= self.context_size <= 1024):
            raise ValueError(f"context_size must be 0, or 32 to 1024 with a context encoder, got {self.context_size!r}")
        if not 0 <= self.num_classes <= 4096:
            raise ValueError(f"num_classes must be in [0, 4096], got {self.num_classes}")
        if not self.channel_mult or self.num_res_blocks < 1 or self.model_channels < 1:
            raise ValueError("channel_mult must be non-empty, num_res_blocks and model_channels positive")
        if self.image_size % self.divisor:
            raise ValueError(f"image_size {self.image_size} is not divisible by {self.divisor}")
        for width in {self.model_channels * m for m in self.channel_mult}:
            if width % self.num_groups:
                raise ValueError(f"{width} channels cannot be split into {self.num_groups} norm groups")
            if self.num_head_channels is not None and width % self.num_head_channels:
                raise ValueError(f"{width} channels are not divisible by num_head_channels={self.num_head_channels}")
            if self.num_head_channels is None and width % self.num_heads:
                raise ValueError(f"{width} channels are not divisible by num_heads={self.num_heads}")
        unreachable = [r for r in self.attention_resolutions if r not in self.downsample_factors]
        if unreachable:
            raise ValueError(f"attention_resolutions {unreachable} are not reached by a {len(self.channel_mult)}-level "
                             f"network (downsample factors {list(self.downsample_factors)}); "
                             "the middle block attends anyway")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")

    @property
    def in_channels(self) -> int:
        """Channels entering the first conv: the condition and the noisy target, concatenated."""
        return self.cond_channels + self.out_channels

    @property
    def divisor(self) -> int:
        """Input height and width must be multiples of this."""
        return self.patch_size * 2 ** (len(self.channel_mult) - 1)

    @property
    def downsample_factors(self) -> tuple[int, ...]:
        """The downsample factor of each level: 1, 2, 4, …"""
        return tuple(2**level for level in range(len(self.channel_mult)))

    def heads(self, channels: int) -> int:
        return channels // self.num_head_channels if self.num_head_channels else self.num_heads

    arch = "unet"  # the architecture's name in model files (see nets.ARCHITECTURES)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists), naming the architecture."""
        d = {"arch": self.arch, **asdict(self)}
        d["channel_mult"] = list(self.channel_mult)
        d["attention_resolutions"] = list(self.attention_resolutions)
        if self.context == "none":
            del d["context"]  # files without a context encoder stay as they were before the field
        if not self.context_size:
            del d["context_size"]
        return d

    def build(self) -> "UNet":
        return UNet(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UNetConfig":
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys are an error."""
        d = dict(d)
        if d.pop("arch", cls.arch) != cls.arch:
            raise ValueError(f"not a {cls.arch} network config")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown UNetConfig field(s): {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "UNetConfig":
        return replace(self, **changes)


# --------------------------------------------------------------------------------------------
# Noise-level embedding
# --------------------------------------------------------------------------------------------
def sinusoidal_embedding(x: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """``[cos(x·f_k), sin(x·f_k)]`` with frequencies ``f_k = max_period^(-k/half)``, k < dim/2."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
    args = x[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def log_snr(gamma: Tensor) -> Tensor:
    """The log signal-to-noise ratio λ = log(γ / (1 − γ)) of a noise level γ, clamped to ±LOGSNR_LIMIT
    (so γ = 1 and γ → 0 stay finite): the coordinate the ``logsnr`` level embedding is built on. (The
    schedule's unclamped λ is ``torch.logit(γ)``.)"""
    g = (gamma if gamma.dtype == torch.float64 else gamma.float()).clamp(0.0, 1.0)
    lam = torch.log(g) - torch.log1p(-g)
    return lam.nan_to_num(posinf=LOGSNR_LIMIT, neginf=-LOGSNR_LIMIT).clamp(-LOGSNR_LIMIT, LOGSNR_LIMIT)


def gamma_embedding(gamma: Tensor, dim: int, kind: str = "logsnr") -> Tensor:
    """Sinusoidal features of the noise level γ, shape (B, dim).

    ``janspiry``: the public re-implementation's choice, the ADM timestep embedding applied to raw
    γ ∈ [0, 1]. Its arguments never exceed 1 rad, so the features are nearly linear in γ and cannot
    tell γ = 1e-4 from 1e-6, nor 1 − 1e-3 from 1 − 1e-5.

    ``time``: the ADM embedding of 1000·x for a level x ∈ [0, 1] that is not a signal fraction, such
    as a bridge process's time t (uniformly resolved over the whole range).

    ``logsnr`` (default): the same embedding of ``t = 25·(λ + 20)`` with λ = log(γ/(1−γ)) clamped to
    [−20, 20], i.e. t ∈ [0, 1000] like ADM's timestep indices. Every decade of γ near 0 and of 1 − γ
    near 1 gets the same ≈58 units of t (the highest frequency is 1 rad per unit), so the nearly-pure
    noise levels a sampler visits first and the nearly-clean ones it ends with are both resolved.
    The clamp only merges γ < 2e-9 (signal invisible under the noise) and γ within 2e-9 of 1.
    """
    if kind == "janspiry":
        return sinusoidal_embedding(gamma, dim)
    if kind == "logsnr":
        return sinusoidal_embedding((log_snr(gamma) + LOGSNR_LIMIT) * (500.0 / LOGSNR_LIMIT), dim)
    if kind == "time":
        return sinusoidal_embedding(gamma * 1000.0, dim)
    raise ValueError(f"unknown gamma embedding {kind!r}")


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------
class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input dtype (keeps bf16/fp16 autocast stable).

    Under autocast the float32 result is returned as is, so the activation and FiLM that follow stay
    in float32 and the next conv rounds its input to low precision once.
    """

    def forward(self, x: Tensor) -> Tensor:
        out_dtype = torch.float32 if torch.is_autocast_enabled(x.device.type) else x.dtype
        with torch.autocast(x.device.type, enabled=False):
            return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).to(out_dtype)


def full_precision(layer: nn.Module, x: Tensor) -> Tensor:
    """Run ``layer`` outside autocast, in its parameters' dtype: for layers that are cheap but whose
    rounding would reach the output directly (noise embedding, first and last conv)."""
    with torch.autocast(x.device.type, enabled=False):
        return layer(x.to(next(layer.parameters()).dtype))


def zero_init(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class EmbedSequential(nn.Sequential):
    """A sequence of layers; those that take the noise embedding get it as a second argument."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class Downsample(nn.Module):
    """Halve the resolution: stride-2 conv, or 2×2 average pooling without ``use_conv``."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Double the resolution: nearest neighbour, then an optional 3×3 conv."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else None

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.conv is not None else x


class ResBlock(nn.Module):
    """Residual block conditioned on the noise embedding; BigGAN-style resampling with ``resample``.

    With ``scale_shift`` the embedding gives (scale, shift) applied after the second norm
    (``norm(h)·(1 + scale) + shift``, FiLM); otherwise it is added before it.
    """

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None, *, dropout: float = 0.0,
                 scale_shift: bool = True, resample: str | None = None, num_groups: int = 32):
        super().__init__()
        out_channels = out_channels or channels
        self.scale_shift = scale_shift
        self.norm1 = GroupNorm32(num_groups, channels)
        self.conv1 = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_channels, 2 * out_channels if scale_shift else out_channels)
        self.norm2 = GroupNorm32(num_groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        if resample == "up":
            self.resample: nn.Module = Upsample(channels, use_conv=False)
        elif resample == "down":
            self.resample = Downsample(channels, use_conv=False)
        elif resample is None:
            self.resample = nn.Identity()
        else:
            raise ValueError(f"resample must be 'up', 'down' or None, got {resample!r}")

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.resample(F.silu(self.norm1(x)))
        x = self.resample(x)
        h = self.conv1(h)
        e = full_precision(self.emb_proj, F.silu(emb))[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x).to(x.dtype) + h  # under autocast the residual stream stays float32


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all positions (``local``: within each quarter of the map).

    The qkv projection lays its 3·C outputs out head by head, ``[q_h, k_h, v_h]`` for h = 0, 1, …,
    as guided-diffusion's (legacy) attention does, so its checkpoints load without permutation.
    """

    def __init__(self, channels: int, num_heads: int, *, local: bool = False, num_groups: int = 32):
        super().__init__()
        self.num_heads = num_heads
        self.local = local
        self.norm = GroupNorm32(num_groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, height, width = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, self.num_heads, 3 * c // self.num_heads, height * width)
        q, k, v = qkv.transpose(-1, -2).chunk(3, dim=-1)  # each (B, heads, T, C/heads)
        mask = quadrant_mask(height, width, x.device) if self.local else None
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        h = h.transpose(-1, -2).reshape(b, c, height, width)
        return x + self.proj(h)


def quadrant_mask(height: int, width: int, device: torch.device) -> Tensor:
    """(T, T) boolean mask: True where query and key lie in the same one of the 2×2 spatial blocks."""
    rows = torch.arange(height, device=device) >= (height + 1) // 2
    cols = torch.arange(width, device=device) >= (width + 1) // 2
    block = (rows[:, None].long() * 2 + cols[None, :].long()).flatten()
    return block[:, None] == block[None, :]


class DilatedConvBlock(nn.Module):
    """The ablation's stand-in for attention: ``x + conv_dilated(SiLU(norm(x)))``, zero-initialised."""

    def __init__(self, channels: int, dilation: int = DILATION, num_groups: int = 32):
        super().__init__()
        self.norm = GroupNorm32(num_groups, channels)
        self.conv = zero_init(nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(F.silu(self.norm(x)))


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------
class UNet(nn.Module):
    """The conditional U-Net: ``forward(y_t, level, cond) -> output`` with ``[cond, y_t]`` concatenated; what
    the output means is the process's business (module docstring)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        mc, emb_dim = c.model_channels, 4 * c.model_channels
        self.gamma_mlp = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if c.context != "none":
            self.context_encoder = LiteTrunk(c.context).requires_grad_(False).eval()
            self.context_mlp = nn.Sequential(nn.Linear(LITE_HEAD_CHANNELS, emb_dim), nn.SiLU(),
                                             zero_init(nn.Linear(emb_dim, emb_dim)))
            self._last_context: tuple | None = None

        ch = c.channel_mult[0] * mc
        self.conv_in = nn.Conv2d(c.in_channels * c.patch_size**2, ch, 3, padding=1)
        skips = [ch]
        self.encoder = nn.ModuleList()
        for level, mult in enumerate(c.channel_mult):
            for _ in range(self._blocks_at(level)):
                layers = [self._res(ch, mult * mc), *self._context(mult * mc, 2**level)]
                ch = mult * mc
                self.encoder.append(EmbedSequential(*layers))
                skips.append(ch)
            if level < len(c.channel_mult) - 1:
                self.encoder.append(EmbedSequential(self._res(ch, ch, "down") if c.resblock_updown
                                                    else Downsample(ch, c.conv_resample)))
                skips.append(ch)

        if c.attention == "none_more_res":
            middle = [self._res(ch, ch) for _ in range(4)]
        else:
            middle = [self._res(ch, ch), *self._context(ch, None), self._res(ch, ch)]
        self.middle = EmbedSequential(*middle)

        self.decoder = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            n = self._blocks_at(level) + 1
            for i in range(n):
                layers = [self._res(ch + skips.pop(), mult * mc), *self._context(mult * mc, 2**level)]
                ch = mult * mc
                if level > 0 and i == n - 1:
                    layers.append(self._res(ch, ch, "up") if c.resblock_updown else Upsample(ch, c.conv_resample))
                self.decoder.append(EmbedSequential(*layers))

        self.norm_out = GroupNorm32(c.num_groups, ch)
        if c.num_classes:
            self.conv_out = zero_init(nn.Conv2d(ch, c.num_classes, 1))
        else:
            self.conv_out = zero_init(nn.Conv2d(ch, c.out_channels * c.patch_size**2, 3, padding=1))

    def _blocks_at(self, level: int) -> int:
        doubled = self.config.attention == "none_more_res" and 2**level in self.config.attention_resolutions
        return self.config.num_res_blocks * (2 if doubled else 1)

    def _res(self, channels: int, out_channels: int, resample: str | None = None) -> ResBlock:
        c = self.config
        return ResBlock(channels, 4 * c.model_channels, out_channels, dropout=c.dropout,
                        scale_shift=c.use_scale_shift_norm, resample=resample, num_groups=c.num_groups)

    def _context(self, channels: int, downsample: int | None) -> list[nn.Module]:
        """The long-range layer after a residual block (``downsample=None``: the middle block)."""
        c = self.config
        if downsample is not None and downsample not in c.attention_resolutions:
            return []
        if c.attention in ("global", "local"):
            return [AttentionBlock(channels, c.heads(channels), local=c.attention == "local", num_groups=c.num_groups)]
        if c.attention == "none_dilated":
            return [DilatedConvBlock(channels, num_groups=c.num_groups)]
        return []

    def train(self, mode: bool = True) -> "UNet":
        super().train(mode)
        if self.config.context != "none":
            self.context_encoder.eval()  # frozen, with its ImageNet batch-norm statistics
            self._last_context = None
        return self

    def load_pretrained_context(self) -> None:
        """Put the installed package's ImageNet weights into the context encoder (``context`` networks only)."""
        self.context_encoder.load_imagenet()

    def _context_feature(self, cond: Tensor) -> Tensor:
        """The context encoder's pooled feature of ``cond`` (B, 1280), without gradients; out of training the
        last condition's is kept for the next call on the same memory, unchanged (as the sampler's steps
        call it), like :meth:`~palette_cli.nets.effnet_unet.EffNetUNet._encode_cached`."""
        key = None if self.training else reuse_key(cond, self.context_encoder)
        if key is not None and self._last_context is not None and self._last_context[0][1:] == key:
            return self._last_context[1]
        with torch.no_grad():
            view, size = cond, self.config.context_size
            if size:
                scale = size / min(cond.shape[-2:])
                wh = (max(1, round(cond.shape[-1] * scale)), max(1, round(cond.shape[-2] * scale)))
                view = resize(cond, wh, mode="bilinear").clamp(-1, 1)
            feature = self.context_encoder.trunk(LiteTrunk.normalise(view)).float().mean(dim=(2, 3))
        self._last_context = ((cond, *key), feature) if key is not None else None
        return feature

    def forward(self, y_t: Tensor, gamma: Tensor | float, cond: Tensor | None = None) -> Tensor:
        """Noise estimate for ``y_t`` (B, out, H, W) at noise level ``gamma`` (B,) given ``cond``.

        A single γ (scalar or one-element tensor) applies to the whole batch.
        """
        c = self.config
        if y_t.shape[-1] % c.divisor or y_t.shape[-2] % c.divisor:
            raise ValueError(f"input size {tuple(y_t.shape[-2:])} must be divisible by {c.divisor}")
        gamma = torch.as_tensor(gamma, device=y_t.device).reshape(-1)
        if gamma.numel() == 1:
            gamma = gamma.expand(y_t.shape[0])
        emb = full_precision(self.gamma_mlp, gamma_embedding(gamma, c.model_channels, c.gamma_embedding))
        if c.context != "none":
            if cond is None:
                raise ValueError("a network with a context encoder needs its condition image")
            emb = emb + full_precision(self.context_mlp, self._context_feature(cond))
        x = y_t if cond is None else torch.cat([cond.to(y_t.dtype), y_t], dim=1)
        if c.patch_size > 1:
            x = F.pixel_unshuffle(x, c.patch_size)

        h = full_precision(self.conv_in, x)
        hs = [h]
        for block in self.encoder:
            h = block(h, emb)
            hs.append(h)
        h = self.middle(h, emb)
        last = len(self.decoder) - 1
        for i, block in enumerate(self.decoder):
            h = torch.cat([h, hs.pop()], dim=1)
            if i == last:
                # The last full-resolution block writes straight into the output: keeping it in float32
                # costs ~6% of the time under bf16 autocast and brings the error under 1e-2.
                dtype = next(block.parameters()).dtype
                with torch.autocast(h.device.type, enabled=False):
                    h = block(h.to(dtype), emb.to(dtype))
            else:
                h = block(h, emb)
        out = full_precision(self.conv_out, F.silu(self.norm_out(h)))
        if c.patch_size > 1 and not c.num_classes:
            out = F.pixel_shuffle(out, c.patch_size)
        return out.to(y_t.dtype)


def adds_attention(old: UNetConfig, new: UNetConfig) -> bool:
    """Whether ``new`` is ``old`` with attention at more resolutions and nothing else changed."""
    if not (isinstance(old, UNetConfig) and isinstance(new, UNetConfig)) or new.attention not in ("global", "local"):
        return False
    same = replace(new, attention_resolutions=old.attention_resolutions) == old
    return same and set(old.attention_resolutions) < set(new.attention_resolutions)


def with_added_attention(state: dict[str, Tensor], old: "UNet", new: "UNet") -> dict[str, Tensor]:
    """``old``'s weights ``state`` in the layout of ``new``, which has attention blocks at more resolutions
    (:func:`adds_attention`): every other layer keeps its weights (a block's later layers move up one place
    where an attention block is inserted before them), and each new attention block keeps ``new``'s own
    weights, whose zero-initialised output projection makes it the identity: the grown network computes
    what ``old`` did until training changes it."""
    if not adds_attention(old.config, new.config):
        raise ValueError("the new network must be the old one with attention at more resolutions")
    moved: dict[str, str] = {}  # a layer's old key prefix -> its new one, for the layers behind a new block
    new_modules = dict(new.named_modules())
    for name, module in old.named_modules():
        if not isinstance(module, EmbedSequential):
            continue
        theirs, ours = list(module), list(enumerate(new_modules[name]))
        if len(ours) != len(theirs):  # a block that gained attention: it had none before
            ours = [(i, m) for i, m in ours if not isinstance(m, AttentionBlock)]
        if len(ours) != len(theirs):
            raise ValueError(f"cannot match the layers of {name!r}")
        for j, (i, m) in enumerate(ours):
            if type(m) is not type(theirs[j]):
                raise ValueError(f"cannot match the layers of {name!r}")
            if i != j:
                moved[f"{name}.{j}."] = f"{name}.{i}."
    out = dict(new.state_dict())
    for key, value in state.items():
        prefix = next((p for p in moved if key.startswith(p)), None)
        target = moved[prefix] + key[len(prefix):] if prefix else key
        if target not in out or out[target].shape != value.shape:
            raise ValueError(f"weight {key!r} has no place in the new network")
        out[target] = value
    return out


def count_parameters(config: UNetConfig) -> int:
    """Number of parameters of the network ``config`` describes (built on the meta device: no memory)."""
    with torch.device("meta"):
        return sum(p.numel() for p in UNet(config).parameters())
