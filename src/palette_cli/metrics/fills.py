"""Whether a fill makes new content or copies what it was given, and how much its samples differ.

- :func:`copy_score`: the largest correlation of a generated region's *detail* (grey minus a 9-pixel box
  blur, so that smooth colour continuing across a border does not count) with a known region's detail,
  mirrored or not, shifted by up to 8 pixels each way. A mirror fill scores 1; a plausible new fill
  scores about what two unrelated parts of a real photo score (around 0.1).
- :func:`uncrop_copy_score`: that score for an uncropping mask, the generated band against the known band
  of the same width beside it.
- :func:`hole_copy_score`: that score for a rectangular hole, the hole's strip along each side against the
  known strip just outside it (what a fill by reflection copies), the largest over the sides.
- :func:`fill_spread`: the mean absolute difference of several samples inside the generated region, in
  levels of 255, over all pairs of samples.

Images are (3,H,W) or (K,3,H,W) tensors in [0, 1]; masks (1,H,W) with 1 = generated.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

from ..diffusion.chroma import LUMA_WEIGHTS

DETAIL_BLUR = 9  # pixels: the box blur whose residual is a region's detail
MAX_SHIFT = 8  # pixels each way that a copy may be shifted and still be caught


def detail(image: Tensor) -> Tensor:
    """Grey (BT.601) minus its ``DETAIL_BLUR``-pixel box blur (edges replicated): (3,H,W) → (H,W)."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float64).view(3, 1, 1)
    grey = (image.double() * weights).sum(0)[None, None]
    pad = DETAIL_BLUR // 2
    blur = F.avg_pool2d(F.pad(grey, (pad, pad, pad, pad), mode="replicate"), DETAIL_BLUR, stride=1)
    return (grey - blur)[0, 0]


def _correlation(a: Tensor, b: Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = float((a.square().sum() * b.square().sum()).sqrt())
    return float((a * b).sum()) / denom if denom > 1e-12 else 0.0


def copy_score(generated: Tensor, source: Tensor, max_shift: int = MAX_SHIFT) -> float:
    """The largest correlation of two detail maps of equal shape (H,W), ``source`` as it is or mirrored
    left–right, shifted by up to ``max_shift`` pixels in each direction (over the overlap)."""
    if generated.shape != source.shape or generated.dim() != 2:
        raise ValueError(f"need two (H, W) detail maps of one shape, got {tuple(generated.shape)} and "
                         f"{tuple(source.shape)}")
    h, w = generated.shape
    best = -1.0
    for candidate in (source, source.flip(-1)):
        for dy, dx in itertools.product(range(-max_shift, max_shift + 1), repeat=2):
            if abs(dy) >= h or abs(dx) >= w:
                continue
            g = generated[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
            c = candidate[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
            best = max(best, _correlation(g, c))
    return best


def uncrop_band(mask: Tensor) -> tuple[str, int] | None:
    """``(side, width)`` of an uncropping mask's generated band (whole columns or rows on one side), or
    None when the mask is not one band (a hole, or bands on several sides)."""
    m = mask[0] > 0.5
    cols, rows = m.all(0), m.all(1)
    if bool(m.all()) or not bool(m.any()):
        return None
    for side, lines, n in (("left", cols, m.shape[1]), ("right", cols.flip(0), m.shape[1]),
                           ("top", rows, m.shape[0]), ("bottom", rows.flip(0), m.shape[0])):
        width = int(lines.int().cumprod(0).sum())
        if 0 < width < n:
            band = torch.zeros_like(m)
            if side in ("left", "right"):
                band[:, :width] = True
            else:
                band[:width] = True
            if side in ("right", "bottom"):
                band = band.flip(1 if side == "right" else 0)
            if bool((band == m).all()):
                return side, width
    return None


def uncrop_copy_score(image: Tensor, mask: Tensor) -> float | None:
    """:func:`copy_score` of an uncropped band against the known band of the same width beside it (the
    whole known part if narrower); None for a mask that is not one band."""
    found = uncrop_band(mask)
    if found is None:
        return None
    side, width = found
    d = detail(image)
    if side in ("top", "bottom"):
        d, side = d.t(), "left" if side == "top" else "right"
    n = d.shape[1]
    width = min(width, n - width)
    if side == "left":
        generated, source = d[:, :width], d[:, width:2 * width]
    else:
        generated, source = d[:, n - width:], d[:, n - 2 * width:n - width]
    return copy_score(generated, source)


def hole_box(mask: Tensor) -> tuple[int, int, int, int] | None:
    """``(top, left, height, width)`` of a mask whose generated region is one rectangle with known pixels on
    all four sides, or None (free-form holes, bands, an all-generated mask)."""
    m = mask[0] > 0.5
    if not bool(m.any()):
        return None
    rows, cols = m.any(1).nonzero()[:, 0], m.any(0).nonzero()[:, 0]
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if top == 0 or left == 0 or bottom == m.shape[0] or right == m.shape[1]:
        return None
    if int(m.sum()) != (bottom - top) * (right - left):
        return None
    return top, left, bottom - top, right - left


def hole_copy_score(image: Tensor, mask: Tensor) -> float | None:
    """:func:`copy_score` of a rectangular hole's strips against the known strips just outside them: along
    each side, the hole's strip a quarter of its short side deep over the middle half of the side's length
    (corners left out, where a reflection takes from two sides), against the known strip of the same size
    across that side (as deep as the known part allows), both starting ``DETAIL_BLUR // 2`` pixels from the
    side (the blur's reach, which would mix the two), shifted by up to half the depth; the largest over the
    four sides. A fill by reflection scores about 1, unrelated texture about 0.1, and a photo's own hole about
    0.3 (a photo continues itself across a line). None for a mask that is not such a rectangle."""
    found = hole_box(mask)
    if found is None:
        return None
    top, left, h, w = found
    d = detail(image)
    H, W = d.shape
    best = None
    for side in ("left", "right", "top", "bottom"):
        dd, (t, l, hh, ww), n = d, (top, left, h, w), W
        if side in ("top", "bottom"):  # work on the transposed image: top/bottom become left/right
            dd, (t, l, hh, ww), n = d.t(), (left, top, w, h), H
        gap = DETAIL_BLUR // 2  # the columns whose detail the blur mixes across the side: left out
        room = l if side in ("left", "top") else n - (l + ww)
        depth = min(min(h, w) // 4, room - gap, ww // 2 - gap)
        if depth < 2:
            continue
        r0, r1 = t + hh // 4, t + hh - hh // 4
        if side in ("left", "top"):
            generated, source = dd[r0:r1, l + gap:l + gap + depth], dd[r0:r1, l - gap - depth:l - gap]
        else:
            inner, outer = l + ww - gap, l + ww + gap
            generated, source = dd[r0:r1, inner - depth:inner], dd[r0:r1, outer:outer + depth]
        score = copy_score(generated, source, max_shift=min(MAX_SHIFT, depth // 2))  # overlaps of half a strip or more
        best = score if best is None else max(best, score)
    return best


def fill_spread(samples: Tensor, mask: Tensor) -> float:
    """Mean absolute difference between samples (K,3,H,W) in [0, 1] inside ``mask`` (1,H,W), in levels of
    255, averaged over all pairs of samples."""
    if samples.dim() != 4 or samples.shape[0] < 2:
        raise ValueError(f"need (K, 3, H, W) samples with K >= 2, got shape {tuple(samples.shape)}")
    inside = (mask[0] > 0.5)
    if not bool(inside.any()):
        raise ValueError("the mask marks no generated pixel")
    values = samples[..., inside].double()  # (K, 3, P)
    diffs = [float((values[i] - values[j]).abs().mean()) for i, j in itertools.combinations(range(len(values)), 2)]
    return 255.0 * sum(diffs) / len(diffs)
