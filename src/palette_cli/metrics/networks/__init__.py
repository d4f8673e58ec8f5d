"""Feature-network architectures with the exact layer names of their published state dicts."""

from .base import Features, FeatureNet
from .effnet_lite import EfficientNetLite0
from .googlenet import GoogLeNet
from .inception_v3 import InceptionV3FID
from .lpips import LPIPS
from .resnet import ResNet50

__all__ = ["LPIPS", "EfficientNetLite0", "FeatureNet", "Features", "GoogLeNet", "InceptionV3FID", "ResNet50"]
