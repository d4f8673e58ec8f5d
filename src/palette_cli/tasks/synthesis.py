"""Exemplar-based fill: the unknown pixels rebuilt from patches of the known ones.

The classical way to continue a scene's texture without mirroring it (Wexler, Shechtman & Irani 2007,
"Space-time completion of video"; with the randomised correspondence search of PatchMatch, Barnes et al.
2009 — what content-aware fill tools run). Coarse to fine over an image pyramid, each level alternates

1. **search**: for every p×p patch that touches the unknown region, the most similar patch lying wholly in
   the known region (sum of squared differences over all its pixels, the current estimate's included);
   exhaustively where the level is small, else by PatchMatch's propagation from the neighbours' matches and
   random search around the current match, run on every patch at once;
2. **vote**: each unknown pixel becomes the weighted mean of the pixels that the matched patches covering
   it put there (weights fall with the match's distance), so that where neighbouring matches agree the
   result is an exact copy of real texture, not a blur.

The coarsest level starts from the smooth fill plus seeded noise, so each seed lays the unknown region out
differently; the result of a level, upsampled, starts the next. Known pixels never change.

Images are (C,H,W) or (B,C,H,W) in [-1, 1]; masks (1,H,W) or (B,1,H,W) with 1 = unknown.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .fill import smooth_fill

PATCH = 7             # patch side, pixels at every level
COARSEST = 12         # the pyramid stops when its short side would fall below this
SMALL_PATCH = 5       # the patch side on levels whose short side is under SMALL_LEVEL pixels
SMALL_LEVEL = 48
PLACE = 1.0           # weight of the penalty on moving a patch across rows (columns) that hold known pixels
REUSE = 0.5           # weight of the penalty on sources matched more often than their share (Kaspar et al. 2015)
BRUTE_FORCE = 6e7     # exhaustive search when targets × sources is at most this, else PatchMatch
SWEEPS = 4            # PatchMatch rounds of propagation and random search per search
INIT_NOISE = 0.25     # spread of the seeded noise on the coarsest level's smooth fill (images in [-1, 1])


def exemplar_fill(image: Tensor, mask: Tensor, generator: torch.Generator | None = None, *,
                  patch: int = PATCH, coarsest: int = COARSEST) -> Tensor:
    """The image with its unknown pixels (mask 1) synthesised from patches of its known pixels."""
    single = image.dim() == 3
    x = image.unsqueeze(0) if single else image
    m = (mask.unsqueeze(0) if single else mask) > 0.5
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    outs = [_fill_one(img.float().cpu(), msk[0].cpu(), generator, patch, coarsest).to(image)
            for img, msk in zip(x, m)]
    out = torch.stack(outs)
    return out[0] if single else out


def _fill_one(img: Tensor, unknown: Tensor, generator: torch.Generator, patch: int, coarsest: int) -> Tensor:
    if not bool(unknown.any()):
        return img.clone()
    if bool(unknown.all()):
        return torch.zeros_like(img)
    levels = _pyramid(img, unknown, coarsest)
    estimate = None
    nnf = None
    full_patch = patch
    for depth, (ref, unk) in enumerate(reversed(levels)):
        patch = SMALL_PATCH if min(unk.shape) < SMALL_LEVEL else full_patch
        valid = _source_centres(unk, patch)
        if not bool(valid.any()):  # no whole patch is known at this level: keep the smooth fill here
            estimate = smooth_fill(ref, unk[None].to(ref.dtype)) if estimate is None else torch.where(
                unk, F.interpolate(estimate[None], size=unk.shape, mode="bilinear", align_corners=False)[0], ref)
            nnf = None
            coarse_shape = tuple(unk.shape)
            continue
        if estimate is None:
            estimate = smooth_fill(ref, unk[None].to(ref.dtype))
            noise = torch.randn(ref.shape, generator=generator) * INIT_NOISE
            estimate = torch.where(unk, (estimate + noise).clamp(-1, 1), ref)
            iterations = 6
        else:
            up = F.interpolate(estimate[None], size=unk.shape, mode="bilinear", align_corners=False)[0]
            estimate = torch.where(unk, up, ref)
            nnf = _upsample_nnf(nnf, coarse_shape, unk.shape) if nnf is not None else None
            if nnf is not None:  # the coarse matches, carried up, make this level's first estimate: the
                # upsampled image is blurred, and matched as it is it would pull in flat patches
                nnf = torch.where(valid.flatten()[nnf.clamp(min=0)], nnf, torch.full_like(nnf, -1))
                estimate = _vote(_features(estimate, patch), estimate, ref, unk, nnf, torch.zeros(nnf.shape), patch)
            iterations = 4 if depth < len(levels) - 1 else 3
        for _ in range(iterations):
            feats = _features(estimate, patch)  # what the search matches and the vote copies from
            nnf, dist = _search(feats, unk, valid, patch, nnf, generator)
            estimate = _vote(feats, estimate, ref, unk, nnf, dist, patch)
        coarse_shape = tuple(unk.shape)
    return estimate


def _pyramid(img: Tensor, unknown: Tensor, coarsest: int) -> list[tuple[Tensor, Tensor]]:
    """Levels fine to coarse: the image averaged over known pixels only, and the unknown mask grown (a
    coarse pixel is unknown if any pixel under it is)."""
    levels = [(img, unknown)]
    while min(levels[-1][1].shape) // 2 >= coarsest:
        ref, unk = levels[-1]
        h, w = unk.shape[0] // 2, unk.shape[1] // 2
        known = (~unk).to(ref.dtype)[None]
        total = F.adaptive_avg_pool2d((ref * known)[None], (h, w))[0]
        weight = F.adaptive_avg_pool2d(known[None], (h, w))[0]
        small = total / weight.clamp(min=1e-8)
        small_unk = F.adaptive_max_pool2d(unk[None, None].float(), (h, w))[0, 0] > 0
        small = torch.where(small_unk, smooth_fill(small, small_unk[None].to(small.dtype)), small)
        levels.append((small, small_unk))
    return levels


def _source_centres(unknown: Tensor, patch: int) -> Tensor:
    """(H, W) bool: centres of patches that lie inside the image and hold no unknown pixel."""
    r = patch // 2
    h, w = unknown.shape
    touched = F.max_pool2d(unknown[None, None].float(), patch, stride=1, padding=r)[0, 0] > 0
    inside = torch.zeros_like(unknown)
    if h > 2 * r and w > 2 * r:
        inside[r:h - r, r:w - r] = True
    return inside & ~touched


def _targets(unknown: Tensor, patch: int) -> Tensor:
    """(H, W) bool: centres of patches holding at least one unknown pixel."""
    return F.max_pool2d(unknown[None, None].float(), patch, stride=1, padding=patch // 2)[0, 0] > 0


def _features(estimate: Tensor, patch: int) -> Tensor:
    """(H·W, C·p²): the patch around every pixel (image borders reflected)."""
    r = patch // 2
    padded = F.pad(estimate[None], (r, r, r, r), mode="reflect")
    return F.unfold(padded, patch)[0].T.contiguous()


def _search(feats: Tensor, unknown: Tensor, valid: Tensor, patch: int, nnf: Tensor | None,
            generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The nearest source patch of every target patch, over the estimate's patches ``feats``
    (:func:`_features`): (H·W,) source indices (−1 off target) and their squared distances."""
    h, w = unknown.shape
    targets = torch.nonzero(_targets(unknown, patch).flatten()).flatten()
    sources = torch.nonzero(valid.flatten()).flatten()
    best = torch.full((h * w,), -1, dtype=torch.long)
    dist = torch.full((h * w,), math.inf)
    cost = _reuse_cost(nnf, targets, sources, feats.shape[1], h * w)
    place = _place_cost(unknown, feats.shape[1])
    if targets.numel() * sources.numel() <= BRUTE_FORCE or nnf is None:
        idx, d = _exhaustive(feats[targets], feats[sources], cost[sources], place, targets, sources, w)
        best[targets], dist[targets] = sources[idx], d
        return best, dist
    current = nnf[targets].clone()
    bad = (current < 0) | ~valid.flatten()[current.clamp(min=0)]
    if bool(bad.any()):  # matches that the finer grid made invalid: a random valid source
        pick = torch.randint(sources.numel(), (int(bad.sum()),), generator=generator)
        current[bad] = sources[pick]
    ty, tx = targets // w, targets % w

    def moved(src: Tensor) -> Tensor:
        return place(ty, tx, src // w, src % w)

    queries = feats[targets]
    cur_d = ((queries - feats[current]) ** 2).sum(1) + cost[current] + moved(current)
    index_of = torch.full((h * w,), -1, dtype=torch.long)
    index_of[targets] = torch.arange(targets.numel())
    for sweep in range(SWEEPS):
        cands = []
        # propagation: a neighbour's match, shifted back by the step to that neighbour
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            ny, nx = (ty + dy).clamp(0, h - 1), (tx + dx).clamp(0, w - 1)
            k = index_of[ny * w + nx]
            nb = torch.where(k >= 0, current[k.clamp(min=0)], current)
            sy, sx = nb // w - (ny - ty), nb % w - (nx - tx)
            cands.append((sy, sx))
        # random search around the current match, radius halving from the image size
        radius = max(h, w)
        cy, cx = current // w, current % w
        while radius >= 1:
            oy = torch.randint(-radius, radius + 1, cy.shape, generator=generator)
            ox = torch.randint(-radius, radius + 1, cx.shape, generator=generator)
            cands.append((cy + oy, cx + ox))
            radius //= 2
        for sy, sx in cands:
            ok = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
            cand = (sy.clamp(0, h - 1) * w + sx.clamp(0, w - 1))
            ok = ok & valid.flatten()[cand]
            d = ((queries - feats[cand]) ** 2).sum(1) + cost[cand] + moved(cand)
            better = ok & (d < cur_d)
            current = torch.where(better, cand, current)
            cur_d = torch.where(better, d, cur_d)
    best[targets], dist[targets] = current, cur_d
    return best, dist


def _reuse_cost(nnf: Tensor | None, targets: Tensor, sources: Tensor, dims: int, size: int) -> Tensor:
    """(size,) extra distance of each source: ``REUSE`` × (its share of the previous matches over its fair
    share, minus one, where above), in units of a mean squared difference of 0.05² per patch value. Without
    it the matches collapse onto a few flat patches and the fill comes out flat."""
    cost = torch.zeros(size)
    if nnf is None or sources.numel() == 0:
        return cost
    used = nnf[targets]
    used = used[used >= 0]
    if used.numel() == 0:
        return cost
    fair = used.numel() / sources.numel()
    count = torch.bincount(used, minlength=size).float()
    return REUSE * dims * 0.05 ** 2 * (count / fair - 1).clamp(min=0)


def _place_cost(unknown: Tensor, dims: int):
    """The extra distance of taking target (ty, tx)'s patch from source (sy, sx): ``PLACE`` × the squared
    move across rows, in quarters of the image's height, where the target's row holds known pixels (and the
    same across columns), in units of a mean squared difference of 0.05² per patch value. A horizon, a
    shore, a wall's base carry on at their height, as a mirror would keep them, without the mirror."""
    h, w = unknown.shape
    row_known = (~unknown).any(1).float()  # (H,)
    col_known = (~unknown).any(0).float()  # (W,)
    unit = PLACE * dims * 0.05 ** 2

    def cost(ty: Tensor, tx: Tensor, sy: Tensor, sx: Tensor) -> Tensor:
        dy = (ty - sy).float() / (h / 4)
        dx = (tx - sx).float() / (w / 4)
        return unit * (row_known[ty] * dy ** 2 + col_known[tx] * dx ** 2)

    return cost


def _exhaustive(queries: Tensor, keys: Tensor, key_cost: Tensor, place, targets: Tensor, sources: Tensor,
                width: int, chunk: int = 2048) -> tuple[Tensor, Tensor]:
    """For each query row (target patch), the index of its nearest key row (source patch), counting the
    sources' reuse cost and the place cost, and that distance."""
    key_sq = (keys ** 2).sum(1) + key_cost
    sy, sx = sources // width, sources % width
    idx, dist = [], []
    for q, t in zip(queries.split(chunk), targets.split(chunk)):
        d = (q ** 2).sum(1, keepdim=True) - 2 * q @ keys.T + key_sq
        d = d + place((t // width)[:, None], (t % width)[:, None], sy[None], sx[None])
        v, i = d.min(1)
        idx.append(i)
        dist.append(v.clamp(min=0))
    return torch.cat(idx), torch.cat(dist)


def _vote(feats: Tensor, estimate: Tensor, ref: Tensor, unknown: Tensor, nnf: Tensor, dist: Tensor,
          patch: int) -> Tensor:
    """Each unknown pixel: the weighted mean of what the matched patches covering it put there (``feats``,
    the estimate's patches: a source is wholly known, so its patch is the photo's)."""
    c, h, w = estimate.shape
    r = patch // 2
    on = nnf >= 0
    scale = dist[on].median().clamp(min=1e-6) if bool(on.any()) else torch.tensor(1.0)
    weight = torch.where(on, torch.exp(-dist / (2 * scale)), torch.zeros(()))
    votes = torch.zeros(h * w, c * patch * patch)
    votes[on] = feats[nnf[on]] * weight[on, None]
    total = F.fold(votes.T[None], (h + 2 * r, w + 2 * r), patch)[0, :, r:h + r, r:w + r]
    norm = F.fold(weight[None, None].expand(1, patch * patch, h * w), (h + 2 * r, w + 2 * r), patch)
    norm = norm[0, :, r:h + r, r:w + r]
    voted = total / norm.clamp(min=1e-12)
    return torch.where(unknown & (norm[0] > 0), voted, torch.where(unknown, estimate, ref))


def _upsample_nnf(nnf: Tensor, coarse: tuple[int, int], shape: tuple[int, int]) -> Tensor:
    """A coarse level's matches carried to the next level: pixel (y, x) takes the match of (y//2, x//2),
    moved by the same offset (a pixel of the finer grid)."""
    h, w = shape
    ch, cw = coarse
    ys, xs = torch.arange(h)[:, None], torch.arange(w)[None, :]
    py, px = (ys // 2).clamp(max=ch - 1), (xs // 2).clamp(max=cw - 1)
    coarse = nnf.view(-1)
    src = coarse[(py * cw + px).flatten()].view(h, w)
    on = src >= 0
    sy = (src // cw) * 2 + (ys - 2 * py)
    sx = (src % cw) * 2 + (xs - 2 * px)
    out = (sy.clamp(0, h - 1) * w + sx.clamp(0, w - 1))
    return torch.where(on, out, torch.full_like(out, -1)).flatten()
