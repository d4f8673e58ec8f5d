"""Classical fills of unknown pixels: where a bridge model starts inpainting and uncropping.

A bridge model begins at a plausible image and learns a correction on top of it, so that an untrained
or early model already gives what a classical tool gives. Three fills, all pure tensor functions:

- :func:`smooth_fill`: a push-pull pyramid — the known pixels are averaged down level by level until every
  hole is covered, and each level's holes are filled from the coarser one on the way back up. Holes get
  the smooth colour of their surroundings (as diffusion-based inpainting does).
- :func:`reflect_fill` (holes): the known pixels reflected across the hole's border from above, below,
  left and right, weighted by closeness; textures and edges carry on into the hole. Pixels no reflection
  reaches get the smooth fill.
- :func:`mirror_fill` (uncropping, and the start of every inpainting and uncropping example): the unknown
  band outside the known rectangle is that rectangle reflected across its border, repeated as often as
  needed, so horizons carry on; holes inside it get :func:`reflect_fill`. An uncrop mask and a hole mask
  need not be told apart.

Images are (C,H,W) or (B,C,H,W) in [-1, 1]; masks (1,H,W) or (B,1,H,W) with 1 = unknown. The fills a
bridge model may start from, these and the patch synthesis of :mod:`.synthesis`, are in :mod:`.starts`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _batched(image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, bool]:
    single = image.dim() == 3
    if single:
        image, mask = image.unsqueeze(0), mask.unsqueeze(0)
    return image, mask.to(image.dtype), single


def smooth_fill(image: Tensor, mask: Tensor) -> Tensor:
    """The image with its unknown pixels (mask 1) filled by a push-pull pyramid; known pixels unchanged."""
    x, m, single = _batched(image, mask)
    known = 1 - m
    out = _push_pull(x * known, known)
    out = torch.where(m.bool().expand_as(x), out, x)
    return out[0] if single else out


def _push_pull(values: Tensor, weight: Tensor) -> Tensor:
    """Fill by a pyramid: ``values`` are pre-multiplied by ``weight`` in [0, 1] (1 known, 0 unknown).

    Push: 2×2 sums of values and weights, the weight capped at 1 (the values scaled alike, so their
    average is kept). Pull: the coarser level, upsampled, fills what this level's weight leaves open.
    """
    h, w = values.shape[-2:]
    if bool((weight > 0).all()) or min(h, w) <= 1:
        total = weight.sum((-1, -2), keepdim=True)
        mean = values.sum((-1, -2), keepdim=True) / total.clamp(min=1e-8)
        return torch.where(weight > 0, values / weight.clamp(min=1e-8), mean)
    pad = (0, w % 2, 0, h % 2)  # odd sizes: padded with zero weight, so nothing spills in
    sum_v = F.avg_pool2d(F.pad(values, pad), 2) * 4
    sum_w = F.avg_pool2d(F.pad(weight, pad), 2) * 4
    capped = sum_w.clamp(max=1)
    coarse = _push_pull(sum_v * (capped / sum_w.clamp(min=1e-8)), capped)
    up = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)[..., :h, :w]
    return values + (1 - weight) * up


def mirror_fill(image: Tensor, mask: Tensor) -> Tensor:
    """Unknown pixels (mask 1) outside the known pixels' bounding box take the value of the box reflected
    across its border (repeatedly, for bands wider than the box); holes inside the box get
    :func:`reflect_fill`. For an uncropping mask this is the mirror of the known part."""
    x, m, single = _batched(image, mask)
    outs = []
    for img, msk in zip(x, m):
        known = msk[0] < 0.5
        if not bool(known.any()):
            outs.append(torch.zeros_like(img))
            continue
        rows = torch.nonzero(known.any(1)).flatten()
        cols = torch.nonzero(known.any(0)).flatten()
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        box = reflect_fill(img[:, y0:y1, x0:x1], msk[:, y0:y1, x0:x1])
        ys = _reflect_index(torch.arange(img.shape[-2]) - y0, y1 - y0)
        xs = _reflect_index(torch.arange(img.shape[-1]) - x0, x1 - x0)
        mirrored = box[:, ys][:, :, xs]
        outs.append(torch.where(msk.bool().expand_as(img), mirrored, img))
    out = torch.stack(outs)
    return out[0] if single else out


def _reflect_index(i: Tensor, n: int) -> Tensor:
    """Indices reflected into [0, n): …, 1, 0 | 0, 1, …, n−1 | n−1, n−2, … (period 2n)."""
    i = i % (2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def reflect_fill(image: Tensor, mask: Tensor, power: float = 2.0) -> Tensor:
    """Holes filled by reflecting the known pixels across the hole's border, seen from four directions.

    For each unknown pixel at distance d (along a row or column) past the last known pixel b, the
    reflection is the known pixel at b − (d − 1) on the other side of b — what :func:`mirror_fill` does for
    an uncropped band, done from above, below, left and right. The reflections that land on known
    pixels are blended with weights 1/d^power (nearest border dominating); pixels no reflection reaches
    get :func:`smooth_fill`. Textures and edges carry on into the hole instead of a flat average."""
    x, m, single = _batched(image, mask)
    known = m < 0.5  # (B,1,H,W)
    total = torch.zeros_like(x)
    weight = torch.zeros_like(m)
    for dim, flip in ((-2, False), (-2, True), (-1, False), (-1, True)):
        xi, ki = (x.flip(dim), known.flip(dim)) if flip else (x, known)
        n = xi.shape[dim]
        shape = [1] * xi.dim()
        shape[dim] = n
        pos = torch.arange(n, device=x.device).view(shape)
        last = torch.where(ki, pos, torch.full_like(pos, -1)).cummax(dim).values  # last known index at or before
        d = pos - last  # 0 on known pixels
        src = last - (d - 1)
        ok = (last >= 0) & (d > 0) & (src >= 0)
        src = src.clamp(0, n - 1)
        ok = ok & ki.gather(dim, src)
        sample = xi.gather(dim, src.expand_as(xi))
        w = torch.where(ok, d.clamp(min=1).to(x.dtype) ** -power, torch.zeros((), dtype=x.dtype))
        if flip:
            sample, w = sample.flip(dim), w.flip(dim)
        total = total + sample * w
        weight = weight + w
    smooth = smooth_fill(x, m)
    filled = torch.where(weight > 0, total / weight.clamp(min=1e-12), smooth)
    out = torch.where(known.expand_as(x), x, filled)
    return out[0] if single else out
