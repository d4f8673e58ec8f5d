"""The ADM U-Net, its config and presets, and the fast-inference helper; knows nothing of diffusion."""

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

__all__ = [
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
