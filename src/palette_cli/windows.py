"""Where on a photo the network runs: working sizes, windows around holes, tiles and their blending,
and putting results back. Pure tensor / image geometry: no model, no sampling.

Shared by the pipeline and the tasks' inference recipes (:mod:`palette_cli.tasks`).
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from PIL import Image
from torch import Tensor

from .imageio import tensor_to_pil

SIDES = ("left", "right", "top", "bottom")
#: JPEG's block grid with 4:2:0 chroma subsampling: restoration tiles start on it.
JPEG_GRID = 16
MIN_EXTEND_WINDOW = 16  # pixels; an uncrop pass on a canvas only 1 pixel across still grows it by 8
StepCallback = Callable[[int, int], None]
#: ``net(y, level, cond) -> output``: a network with its precision settings bound.
NetFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def _round_to(x: float, m: int) -> int:
    return max(m, int(round(x / m)) * m)


def working_size(width: int, height: int, resolution: int, divisor: int) -> tuple[int, int]:
    """A size with about ``resolution²`` pixels, the input's aspect ratio, both sides multiples of ``divisor``."""
    scale = resolution / math.sqrt(width * height)
    return _round_to(width * scale, divisor), _round_to(height * scale, divisor)


def resize(t: Tensor, size: tuple[int, int], mode: str = "bicubic") -> Tensor:
    """Resize a (B,C,H,W) tensor to (W, H) = size; antialiased when shrinking."""
    w, h = size
    if t.shape[-2:] == (h, w):
        return t
    if mode == "nearest":
        return torch.nn.functional.interpolate(t, size=(h, w), mode="nearest")
    return torch.nn.functional.interpolate(t, size=(h, w), mode=mode, align_corners=False, antialias=True)


def mask_resize(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Shrink/grow a {0,1} mask so that any covered pixel stays unknown (area-averaged, then > 0)."""
    w, h = size
    if mask.shape[-2:] == (h, w):
        return mask
    if h <= mask.shape[-2] and w <= mask.shape[-1]:
        return (torch.nn.functional.adaptive_avg_pool2d(mask, (h, w)) > 0).to(mask.dtype)
    return torch.nn.functional.interpolate(mask, size=(h, w), mode="nearest")


def extend_window(width: int, height: int, side: str) -> int:
    """The window of an uncrop pass: the canvas's size across the direction (at least MIN_EXTEND_WINDOW)."""
    return max(height if side in ("left", "right") else width, MIN_EXTEND_WINDOW)


def extension_passes(width: int, height: int, side: str, amount: int) -> int:
    """How many sampling passes growing a ``width`` x ``height`` canvas by ``amount`` pixels on ``side`` takes."""
    return max(1, math.ceil(amount / (extend_window(width, height, side) // 2)))


def round_up(x: int, m: int) -> int:
    return ((x + m - 1) // m) * m


def offset_progress(on_step: StepCallback | None, k: int, parts: int) -> StepCallback | None:
    """Map the steps of part ``k`` of ``parts`` onto one overall progress count."""
    if on_step is None:
        return None
    return lambda i, n: on_step(k * n + i, parts * n)


def paste_exact(image: Image.Image, result: Tensor, mask: Tensor) -> list[Image.Image]:
    """Quantise results, then copy the original's exact bytes back wherever the mask is 0."""
    import numpy as np

    orig = np.asarray(image.convert("RGB"))
    keep = (mask[0, 0] == 0).numpy()
    outs = []
    for r in result:
        arr = np.asarray(tensor_to_pil(r)).copy()
        arr[keep] = orig[keep]
        outs.append(Image.fromarray(arr))
    return outs


def restore_original(out: Image.Image, image: Image.Image, side: str, amount: int) -> Image.Image:
    """Put the original's exact bytes back into the grown canvas (float round trips must not touch them)."""
    x = amount if side == "left" else 0
    y = amount if side == "top" else 0
    out = out.copy()
    out.paste(image.convert("RGB"), (x, y))
    return out


def hole_windows(mask: Tensor, resolution: int) -> Iterator[tuple[int, int, int, int]]:
    """Context windows (x0, y0, x1, y1) around groups of holes, each about twice its group's size.

    Holes closer than half a window are grouped (connected components on a coarse grid), so one
    window serves nearby strokes while holes far apart in a large photo get their own window.
    """
    h, w = mask.shape
    cell = max(1, resolution // 4)
    gh, gw = math.ceil(h / cell), math.ceil(w / cell)
    padded = torch.nn.functional.pad(mask[None, None].float(), (0, gw * cell - w, 0, gh * cell - h))
    grid = torch.nn.functional.max_pool2d(padded, cell)[0, 0] > 0
    grid = torch.nn.functional.max_pool2d(grid[None, None].float(), 3, 1, 1)[0, 0] > 0  # join near holes
    seen = torch.zeros_like(grid)
    for gy in range(gh):
        for gx in range(gw):
            if not grid[gy, gx] or seen[gy, gx]:
                continue
            stack, cells = [(gy, gx)], []
            seen[gy, gx] = True
            while stack:
                cy, cx = stack.pop()
                cells.append((cy, cx))
                for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                    if 0 <= ny < gh and 0 <= nx < gw and grid[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
            ys = [c[0] for c in cells]
            xs = [c[1] for c in cells]
            region = mask[min(ys) * cell:(max(ys) + 1) * cell, min(xs) * cell:(max(xs) + 1) * cell]
            if not region.any():
                continue
            rows = torch.nonzero(region.any(1)).flatten()
            cols = torch.nonzero(region.any(0)).flatten()
            by0, by1 = min(ys) * cell + int(rows[0]), min(ys) * cell + int(rows[-1]) + 1
            bx0, bx1 = min(xs) * cell + int(cols[0]), min(xs) * cell + int(cols[-1]) + 1
            yield _window_around(bx0, by0, bx1, by1, w, h, resolution)


def _window_around(bx0: int, by0: int, bx1: int, by1: int, w: int, h: int, resolution: int):
    """A square-ish window twice the box's size (at least ``resolution``), shifted inside the image."""
    side = max(2 * (bx1 - bx0), 2 * (by1 - by0), resolution)
    ww, wh = min(side, w), min(side, h)
    cx, cy = (bx0 + bx1) // 2, (by0 + by1) // 2
    x0 = min(max(0, cx - ww // 2), w - ww)
    y0 = min(max(0, cy - wh // 2), h - wh)
    return x0, y0, x0 + ww, y0 + wh


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Tile starts covering ``length``; with ``align``, every start is a multiple of it (length and tile
    must be multiples too). The overlap is capped at half a tile."""
    overlap = min(overlap, tile // 2)
    if length <= tile:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(length: int, overlap: int) -> Tensor:
    """1 in the middle, ramping down linearly over the overlap (at most half the length) to a small floor."""
    ramp, overlap = torch.ones(length), min(overlap, length // 2)
    if overlap > 0:
        edge = torch.linspace(0.02, 1.0, overlap)
        ramp[:overlap] = edge
        ramp[-overlap:] = edge.flip(0)
    return ramp


def _feather(height: int, width: int, overlap: int) -> Tensor:
    """Blend weights of a tile: 1 in its centre, ramping down over the overlap to a small floor."""
    return _ramp(height, overlap)[:, None] * _ramp(width, overlap)[None, :]


def tiled_net(net: NetFn, cond: Tensor, tile: int | tuple[int, int], overlap: int, align: int = 1, *,
              chunk: int = 0, calls: int = 1, on_step: StepCallback | None = None) -> NetFn:
    """The network over a canvas larger than its window: the outputs of overlapping tiles (``tile`` pixels
    square, or (height, width)) are averaged with feathered weights at every step, so the tiles agree and
    no seams form. Tile starts are multiples of ``align`` (the canvas must then be a multiple too).

    ``chunk`` tiles go to ``net`` at a time (0: all at once); ``on_step(done, total)`` then counts the chunks
    over the ``calls`` network calls the sampler is expected to make, so a large photo's progress moves
    within one sampling step."""
    h, w = cond.shape[-2:]
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    spots = [(t, l) for t in tile_starts(h, th, overlap, align) for l in tile_starts(w, tw, overlap, align)]
    weight = _feather(th, tw, overlap).to(cond.device)
    done = 0

    def run(y: Tensor, level: Tensor, _cond: Tensor) -> Tensor:
        nonlocal done
        b = y.shape[0]
        crops = [(slice(None), slice(None), slice(t, t + th), slice(l, l + tw)) for t, l in spots]
        ys, conds = torch.cat([y[c] for c in crops]), torch.cat([cond[c] for c in crops])
        levels = level.repeat(len(spots))
        size = chunk or ys.shape[0]
        parts = []
        for i in range(0, ys.shape[0], size):
            parts.append(net(ys[i:i + size], levels[i:i + size], conds[i:i + size]))
            done += 1
            if on_step is not None:
                on_step(done, max(done, max(1, calls) * -(-ys.shape[0] // size)))
        outs = torch.cat(parts).split(b)
        total = torch.zeros_like(y)
        norm = torch.zeros(1, 1, h, w, device=y.device, dtype=y.dtype)
        for c, o in zip(crops, outs):
            total[c] += o * weight
            norm[c] += weight
        return total / norm

    return run
