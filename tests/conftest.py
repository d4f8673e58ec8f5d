"""Shared fixtures: a tiny random model file and small photos made on the fly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

# One torch thread: on a small shared CPU, two threads made tiny convolutions up to ~100x slower when the
# other core was busy, and the suite's results must not depend on the thread count.
torch.set_num_threads(1)


def make_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth colourful test picture (gradients plus a few blobs), deterministic per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([xx / max(1, width - 1), yy / max(1, height - 1), 0.5 + 0.5 * np.sin(xx / 7 + yy / 11)], -1)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(3, 10)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        img = img * (1 - blob) + blob * rng.uniform(0, 1, 3)
    return Image.fromarray((img * 255).round().astype(np.uint8))


def tiny_net(seed: int = 0, std: float = 0.02):
    """(config, network) of the tiny preset, random, with its zero-initialised layers drawn from N(0, std²)
    so that its output is not identically zero."""
    from palette_cli.nets import UNet, preset

    torch.manual_seed(seed)
    cfg = preset("tiny")
    net = UNet(cfg)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, std)
    return cfg, net


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    """A randomly initialised tiny multi-task model saved in the real format (non-zero output layer)."""
    from palette_cli.checkpoint import ModelInfo, save_model

    cfg, net = tiny_net()
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, ModelInfo(net=cfg.to_dict(), tasks=["colorize", "inpaint", "uncrop", "jpeg"]), net.state_dict())
    return path
