"""ResNet-50 (He et al. 2016, torchvision's v1.5: stride on the 3×3 convolution) in torchvision's layout.

Used for the paper's classification accuracy. Layer names follow torchvision (``conv1.weight``,
``layer1.0.downsample.0.weight``, ``fc.bias`` …) so its ImageNet weight files load with
``strict=True``. Inputs: 224×224 with torchvision's ImageNet mean/std normalisation.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import Features, FeatureNet, imagenet_normalise


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet50(FeatureNet):
    """ResNet-50: 2048-d pooled features, 1000 ImageNet logits."""

    name = "resnet50"
    title = "ResNet-50 (torchvision layout)"
    comparable = True
    input_size = 224
    feature_dim = 2048
    num_classes = 1000
    LAYERS = (3, 4, 6, 3)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_ch = 64
        for i, (blocks, width) in enumerate(zip(self.LAYERS, (64, 128, 256, 512))):
            layer = []
            for j in range(blocks):
                layer.append(Bottleneck(in_ch, width, stride=2 if (j == 0 and i > 0) else 1))
                in_ch = width * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.fc = nn.Linear(2048, 1000)

    def normalise(self, x: Tensor) -> Tensor:
        return imagenet_normalise(x)

    def forward_features(self, x: Tensor) -> Features:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        pooled = x.mean(dim=(2, 3))
        return Features(pooled=pooled, logits=self.fc(pooled))
