"""Where a bridge model's fill starts: the fills a process may name (``Process.fill_start``).

- ``mirror``: the known part reflected into the unknown one (:func:`.fill.mirror_fill`); the model refines a copy.
- ``smooth``: local mean colours only (:func:`.fill.smooth_fill`); the model must make every detail.
- ``exemplar``: the unknown part rebuilt from patches of the known one (:func:`.synthesis.exemplar_fill`):
  real texture, laid out anew by each seed, never a mirror.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .fill import mirror_fill, smooth_fill
from .synthesis import exemplar_fill

Start = Callable[[Tensor, Tensor, "torch.Generator | None"], Tensor]

#: The fills a bridge model may start from, by the name its process records.
FILL_STARTS: dict[str, Start] = {
    "mirror": lambda image, mask, generator: mirror_fill(image, mask),
    "smooth": lambda image, mask, generator: smooth_fill(image, mask),
    "exemplar": exemplar_fill,
}


def fill_start(kind: str, image: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The starting image of a fill under the process's ``kind`` of start (:data:`FILL_STARTS`); a start
    that draws (``exemplar``) takes its randomness from ``generator``."""
    if kind not in FILL_STARTS:
        raise ValueError(f"unknown fill start {kind!r}; known: {', '.join(FILL_STARTS)}")
    return FILL_STARTS[kind](image, mask, generator)


def restart_fills(batch: dict[str, Tensor], kind: str, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """A batch whose fill examples (those with known pixels) start from the ``kind`` fill instead of the
    tasks' mirror fill; other examples (colorization, restoration) and a ``mirror`` kind are left as they are."""
    if kind == "mirror" or "start" not in batch:
        return batch
    mask = batch["mask"]
    fills = (mask < 0.5).flatten(1).any(1)
    if not bool(fills.any()):
        return batch
    start = batch["start"].clone()
    start[fills] = fill_start(kind, batch["target"][fills], mask[fills], generator).to(start.dtype)
    return {**batch, "start": start}
