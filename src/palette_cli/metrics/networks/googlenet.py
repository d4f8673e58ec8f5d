"""Inception-v1 (GoogLeNet, Szegedy et al. 2015) in torchvision's layer layout.

Used for the paper's perceptual distance: the Euclidean distance between the 1024-d global
average-pool features ("pool_3" of Inception-v1) of an output and its original. Layer names follow
torchvision's ``googlenet`` (``conv1.conv.weight``, ``inception3a.branch2.1.bn.weight`` …), whose
ImageNet weights were ported from TensorFlow; the auxiliary classifiers (``aux1.*``, ``aux2.*``)
in such a file are not used and are dropped when loading. torchvision's third branch uses a 3×3
convolution where the paper has 5×5; the layout (and the weights) follow torchvision.

Inputs: 224×224, values in [-1, 1] (what torchvision's ``transform_input`` produces).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ConvBN, Features, FeatureNet

# (in, 1×1, 3×3 reduce, 3×3, "5×5" reduce, "5×5", pool projection) per inception module.
MODULES = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}
AUX_PREFIXES = ("aux1.", "aux2.")


class Inception(nn.Module):
    def __init__(self, in_ch: int, ch1: int, red3: int, ch3: int, red5: int, ch5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1 = ConvBN(in_ch, ch1, 1)
        self.branch2 = nn.Sequential(ConvBN(in_ch, red3, 1), ConvBN(red3, ch3, 3, padding=1))
        self.branch3 = nn.Sequential(ConvBN(in_ch, red5, 1), ConvBN(red5, ch5, 3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     ConvBN(in_ch, pool_proj, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(FeatureNet):
    """Inception-v1: 1024-d pooled features, 1000 ImageNet logits."""

    name = "inception_v1"
    title = "Inception-v1 / GoogLeNet (torchvision layout)"
    comparable = True
    input_size = 224
    feature_dim = 1024
    num_classes = 1000

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBN(3, 64, 7, stride=2, padding=3)
        self.conv2 = ConvBN(64, 64, 1)
        self.conv3 = ConvBN(64, 192, 3, padding=1)
        for name, spec in MODULES.items():
            setattr(self, name, Inception(*spec))
        self.fc = nn.Linear(1024, 1000)

    def forward_features(self, x: Tensor) -> Features:
        def pool(h: Tensor, k: int = 3) -> Tensor:
            return F.max_pool2d(h, k, stride=2, ceil_mode=True)

        x = pool(self.conv1(x))
        x = pool(self.conv3(self.conv2(x)))
        x = pool(self.inception3b(self.inception3a(x)))
        for name in ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"):
            x = getattr(self, name)(x)
        x = self.inception5b(self.inception5a(pool(x, 2)))
        pooled = x.mean(dim=(2, 3))
        return Features(pooled=pooled, logits=self.fc(pooled))
