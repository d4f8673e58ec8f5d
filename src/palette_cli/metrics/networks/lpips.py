"""LPIPS (Zhang et al. 2018): a learned perceptual distance on AlexNet or VGG-16 features.

Layer names follow the ``lpips`` package's ``LPIPS`` module: ``scaling_layer.{shift,scale}``,
the backbone's convolutions under ``net.slice1…5`` at their torchvision ``features`` indices
(``net.slice2.3.weight`` is AlexNet's ``features.3.weight``), and the learned channel weights
``lin0…lin4.model.1.weight`` (``model.0`` is a dropout). The released linear-layer files
(``weights/v0.1/alex.pth``) hold only ``lin*`` keys; the backbone comes from a torchvision
ImageNet file (``features.*`` keys). :func:`lpips_state_dict` assembles both into this layout.

Images are compared at their own resolution, values in [-1, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..perceptual import lpips_from_features

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)

# torchvision ``features`` indices of each slice, and the channels at its end.
SLICES = {
    "alex": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
    "vgg": ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)),
}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


def _alexnet_features() -> list[nn.Module]:
    return [
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, stride=2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, stride=2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2),
    ]


def _vgg16_features() -> list[nn.Module]:
    layers: list[nn.Module] = []
    in_ch = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU()]
            in_ch = int(v)
    return layers


class ScalingLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.scale


class Backbone(nn.Module):
    """The backbone's feature layers cut into five slices; returns the activation after each."""

    def __init__(self, net: str) -> None:
        super().__init__()
        layers = _alexnet_features() if net == "alex" else _vgg16_features()
        for k, (start, stop) in enumerate(SLICES[net]):
            piece = nn.Sequential()
            for i in range(start, stop):
                piece.add_module(str(i), layers[i])
            setattr(self, f"slice{k + 1}", piece)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for k in range(5):
            x = getattr(self, f"slice{k + 1}")(x)
            outs.append(x)
        return outs


class LinLayer(nn.Module):
    """A 1×1 convolution to one channel without bias (``model.1``), after a dropout (``model.0``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPS(nn.Module):
    """LPIPS v0.1 distance between image batches in [-1, 1]; ``forward(x, y)`` returns ``(B,)``."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in SLICES:
            raise ValueError(f"unknown LPIPS backbone {net!r} (use one of: {', '.join(SLICES)})")
        self.backbone_name = net
        self.name = f"lpips_{net}"
        self.scaling_layer = ScalingLayer()
        self.net = Backbone(net)
        for k, ch in enumerate(CHANNELS[net]):
            setattr(self, f"lin{k}", LinLayer(ch))

    def channel_weights(self) -> list[Tensor]:
        """The learned non-negative weight of each channel, per layer: ``(C,)`` tensors."""
        return [getattr(self, f"lin{k}").model[1].weight.flatten() for k in range(5)]

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        fx = self.net(self.scaling_layer(x))
        fy = self.net(self.scaling_layer(y))
        return lpips_from_features(fx, fy, self.channel_weights())


def lpips_state_dict(linear: dict[str, Tensor], backbone: dict[str, Tensor] | None, net: str) -> dict[str, Tensor]:
    """Merge a linear-layer file and a torchvision backbone file into the :class:`LPIPS` layout.

    ``linear`` may also be a full ``LPIPS`` state dict (with ``net.slice*`` keys), in which case no
    backbone is needed; the ``lins.K.`` aliases of newer ``lpips`` versions map to ``linK.``;
    missing scaling-layer buffers take their fixed values. The backbone's ``classifier.*`` keys are ignored.
    """
    merged: dict[str, Tensor] = {}
    for key, value in linear.items():
        if key.startswith("lins."):
            _, k, rest = key.split(".", 2)
            key = f"lin{k}.{rest}"
        merged[key] = value
    if backbone is not None:
        starts = {start: k for k, (start, _) in enumerate(SLICES[net])}
        index_slice = {}
        for i in range(SLICES[net][-1][1]):
            index_slice[i] = max(k for s, k in starts.items() if s <= i) + 1
        for key, value in backbone.items():
            if key.startswith("features."):
                _, idx, param = key.split(".", 2)
                if int(idx) in index_slice:
                    merged[f"net.slice{index_slice[int(idx)]}.{idx}.{param}"] = value
                else:
                    merged[key] = value  # reported as unexpected by the loader
            elif not key.startswith("classifier."):
                merged[key] = value
    merged.setdefault("scaling_layer.shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
    merged.setdefault("scaling_layer.scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
    return merged
