"""Validation pieces: the model's output on a validation batch and the PNG grid of it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor


@torch.no_grad()
def predict(net: Callable[[Tensor, Tensor, Tensor], Tensor], process, batch: dict[str, Tensor], *,
            steps: int | None = None, seed: int = 0, autocast: bool = False) -> Tensor:
    """The model's output for a validation batch: the process's default sampler with ``steps`` model calls,
    known pixels imposed, a fill's start detail kept where the process keeps it — the sampling path of the
    pipeline (:func:`~palette_cli.diffusion.process.sample_known`), so the grid shows what the commands produce."""
    from ..diffusion.process import SamplerSettings, sample_known

    cond, target, mask = batch["cond"], batch["target"], batch["mask"]

    def run(y: Tensor, level: Tensor, c: Tensor) -> Tensor:
        with torch.autocast(y.device.type, dtype=torch.bfloat16, enabled=autocast):
            return net(y, level, c).float()

    return sample_known(process, run, cond, batch.get("start", cond), SamplerSettings(steps=steps),
                        torch.Generator().manual_seed(seed), known=target, mask=mask)


def image_grid(rows: list[Tensor], pad: int = 2) -> Tensor:
    """Rows of (B,3,H,W) images in [-1,1] → one (3, H', W') tensor in [0,1] with a white gutter."""
    b, _, h, w = rows[0].shape
    grid = torch.ones(3, len(rows) * (h + pad) + pad, b * (w + pad) + pad)
    for r, imgs in enumerate(rows):
        for i in range(b):
            y, x = pad + r * (h + pad), pad + i * (w + pad)
            grid[:, y:y + h, x:x + w] = (imgs[i].float().cpu().clamp(-1, 1) + 1) / 2
    return grid


def atomic_save_png(img01: Tensor, path: Path) -> None:
    from PIL import Image

    from ..imageio.writing import atomic_write  # looked up where tests patch it

    arr = (img01.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype("uint8")
    atomic_write(path, lambda f: Image.fromarray(arr).save(f, format="PNG"))
