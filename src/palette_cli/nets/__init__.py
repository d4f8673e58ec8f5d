"""Network architectures (the ADM U-Net; a U-Net decoder on a pretrained EfficientNet-Lite encoder), their
configs and presets, and the fast-inference helper; knows nothing of diffusion."""

from .effnet_unet import EffNetUNet, EffNetUNetConfig
from .inference import PRECISIONS, cpu_has_fast_bf16, inference_mode, resolve_precision
from .presets import PRESETS, preset
from .unet import (
    ATTENTION_KINDS,
    GAMMA_EMBEDDINGS,
    UNet,
    UNetConfig,
    count_parameters,
    gamma_embedding,
    log_snr,
    sinusoidal_embedding,
)

#: Network architectures by the name model files give them (``arch`` in the network config); files
#: written before the name existed are U-Nets.
ARCHITECTURES = {UNetConfig.arch: UNetConfig, EffNetUNetConfig.arch: EffNetUNetConfig}
DEFAULT_ARCH = UNetConfig.arch


def network_config(d: dict):
    """The config object a model file's (or training config's) network table describes; ``ValueError``
    for an unknown architecture or bad fields."""
    if not isinstance(d, dict):
        raise ValueError("the network config must be a table")
    arch = d.get("arch", DEFAULT_ARCH)
    try:
        cls = ARCHITECTURES[arch]
    except (KeyError, TypeError):
        raise ValueError(f"unknown network architecture {arch!r}; this version knows {', '.join(ARCHITECTURES)}") from None
    return cls.from_dict(d)


def build_network(config):
    """The (randomly initialised) network of a config from :func:`network_config`."""
    return config.build()


__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "EffNetUNet",
    "EffNetUNetConfig",
    "build_network",
    "network_config",
    "ATTENTION_KINDS",
    "GAMMA_EMBEDDINGS",
    "PRECISIONS",
    "PRESETS",
    "UNet",
    "UNetConfig",
    "count_parameters",
    "cpu_has_fast_bf16",
    "gamma_embedding",
    "inference_mode",
    "log_snr",
    "preset",
    "resolve_precision",
    "sinusoidal_embedding",
]
