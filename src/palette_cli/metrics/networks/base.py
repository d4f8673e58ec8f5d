"""What every feature network offers the metrics: [-1, 1] RGB in, pooled features and logits out."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Features:
    """One batch through a classifier: pooled features ``(B, D)`` and class logits ``(B, C)``."""

    pooled: Tensor
    logits: Tensor


class FeatureNet(nn.Module):
    """A classifier used as a feature extractor.

    Subclasses hold their layers under the exact names of the published state dicts, so those
    load with ``strict=True``; no buffers are added for preprocessing (it uses constants).
    ``preprocess`` takes images in [-1, 1] of any size and returns the network's input;
    ``forward_features`` runs the network on that input.
    """

    name: str = ""  # metric suffix, e.g. "effnet_lite0"
    title: str = ""  # for people, e.g. "EfficientNet-Lite0 (ImageNet)"
    comparable: bool = False  # do metrics on it compare with published numbers?
    input_size: int = 224
    resize_antialias: bool = True
    feature_dim: int = 0
    num_classes: int = 0

    def preprocess(self, images: Tensor) -> Tensor:
        """Resize (B, 3, H, W) images in [-1, 1] to the input size and normalise them."""
        return self.normalise(resize(images, self.input_size, self.resize_antialias))

    def normalise(self, x: Tensor) -> Tensor:
        """[-1, 1] → what the network was trained on (identity by default)."""
        return x

    def forward_features(self, x: Tensor) -> Features:
        raise NotImplementedError

    def forward(self, images: Tensor) -> Features:
        return self.forward_features(self.preprocess(images))


def resize(images: Tensor, size: int, antialias: bool) -> Tensor:
    """Bilinear resize of a batch to ``size``×``size`` (a no-op when it already has that size)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got shape {tuple(images.shape)}")
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)


def imagenet_normalise(x: Tensor) -> Tensor:
    """[-1, 1] → torchvision's ImageNet normalisation ((pixel/255 − mean) / std)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x + 1) / 2 - mean) / std


class ConvBN(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3) and ReLU: the Inception family's basic unit.

    Its keys are ``conv.weight`` and ``bn.{weight,bias,running_mean,running_var}``, as in torchvision.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))
