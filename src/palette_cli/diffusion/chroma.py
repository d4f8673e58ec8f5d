"""BT.601 luma/chroma of [-1, 1] RGB tensors, and a grid of chroma bins for colour classification.

In [-1, 1] units ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cb = (B − Y) / 1.772`` and ``Cr = (R − Y) / 1.402``
(JPEG/JFIF's YCbCr without its offsets), so Cb and Cr lie in [-1, 1] and the conversion is exactly
invertible.

:class:`ChromaGrid` is a square grid of (Cb, Cr) bin centres. A colour is encoded softly on the four
bins around it (bilinear weights, so the encoding's mean is the colour itself, exactly, inside the
grid), and a predicted distribution is decoded by its *annealed mean* (Zhang, Isola & Efros, ECCV 2016):
the mean of ``p^(1/T)`` renormalised. T = 1 is the distribution's mean (what a squared-error regressor
predicts: muted where colours are uncertain); T → 0 its mode; in between keeps the mean's smoothness
with more of the mode's saturation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601
CB_SCALE = 2 * (1 - LUMA_WEIGHTS[2])  # 1.772
CR_SCALE = 2 * (1 - LUMA_WEIGHTS[0])  # 1.402


def rgb_to_ycc(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """(…,3,H,W) RGB → luma (…,1,H,W) and chroma (…,2,H,W) = (Cb, Cr)."""
    r, g, b = rgb.unbind(-3)
    y = LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
    return y.unsqueeze(-3), torch.stack([(b - y) / CB_SCALE, (r - y) / CR_SCALE], dim=-3)


def ycc_to_rgb(y: Tensor, chroma: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycc`: luma (…,1,H,W) and chroma (…,2,H,W) → RGB (…,3,H,W), not clamped."""
    yy = y.squeeze(-3)
    cb, cr = chroma.unbind(-3)
    r = yy + CR_SCALE * cr
    b = yy + CB_SCALE * cb
    g = (yy - LUMA_WEIGHTS[0] * r - LUMA_WEIGHTS[2] * b) / LUMA_WEIGHTS[1]
    return torch.stack([r, g, b], dim=-3)


@dataclass(frozen=True)
class ChromaGrid:
    """``bins × bins`` bin centres spaced evenly over [-extent, extent]² of (Cb, Cr)."""

    bins: int = 17
    extent: float = 0.8

    def __post_init__(self) -> None:
        if not 2 <= self.bins <= 64:
            raise ValueError(f"chroma bins per axis must be in [2, 64], got {self.bins}")
        if not 0 < self.extent <= 1:
            raise ValueError(f"chroma extent must be in (0, 1], got {self.extent}")

    @property
    def classes(self) -> int:
        return self.bins * self.bins

    @property
    def spacing(self) -> float:
        return 2 * self.extent / (self.bins - 1)

    def centres(self, device=None, dtype=torch.float32) -> Tensor:
        """(K, 2) bin centres, class k = i·bins + j for Cb index i and Cr index j."""
        axis = torch.linspace(-self.extent, self.extent, self.bins, device=device, dtype=dtype)
        cb, cr = torch.meshgrid(axis, axis, indexing="ij")
        return torch.stack([cb.reshape(-1), cr.reshape(-1)], dim=-1)

    def encode(self, chroma: Tensor) -> tuple[Tensor, Tensor]:
        """Soft targets of (B,2,h,w) chroma: class indices and weights, each (B,4,h,w) (weights sum to 1).

        Colours outside the grid are clamped to its edge first."""
        pos = (chroma.float().clamp(-self.extent, self.extent) + self.extent) / self.spacing
        lo = pos.floor().clamp(max=self.bins - 2)
        frac = pos - lo
        lo = lo.long()
        i0, j0 = lo[:, 0], lo[:, 1]
        fi, fj = frac[:, 0], frac[:, 1]
        index = torch.stack([i0 * self.bins + j0, i0 * self.bins + j0 + 1,
                             (i0 + 1) * self.bins + j0, (i0 + 1) * self.bins + j0 + 1], dim=1)
        weight = torch.stack([(1 - fi) * (1 - fj), (1 - fi) * fj, fi * (1 - fj), fi * fj], dim=1)
        return index, weight

    def cross_entropy(self, logits: Tensor, chroma: Tensor, weight: Tensor | None = None,
                      rebalance: float = 0.0) -> Tensor:
        """Mean soft cross-entropy of (B,K,h,w) logits against (B,2,h,w) chroma, optionally per-pixel
        weighted by (B,1,h,w) and rebalanced towards rare colours (:meth:`rarity_weights`)."""
        index, w = self.encode(chroma)
        logp = F.log_softmax(logits.float(), dim=1)
        nll = -(logp.gather(1, index) * w).sum(1, keepdim=True)
        weight = torch.ones_like(nll) if weight is None else weight.float().expand_as(nll)
        if rebalance > 0:
            weight = weight * self.rarity_weights(index, w, weight, rebalance)
        return (nll * weight).sum() / weight.sum().clamp(min=1e-8)

    def histogram(self, index: Tensor, w: Tensor, weight: Tensor) -> Tensor:
        """The (K,) share of each bin among soft-encoded pixels (``weight`` (B,1,h,w) counts each pixel)."""
        counts = torch.zeros(self.classes, dtype=torch.float32, device=index.device)
        counts.index_add_(0, index.reshape(-1), (w * weight).reshape(-1).float())
        return counts / counts.sum().clamp(min=1e-8)

    def rarity_weights(self, index: Tensor, w: Tensor, weight: Tensor, strength: float) -> Tensor:
        """Per-pixel (B,1,h,w) class-rebalancing weights (Zhang, Isola & Efros 2016, within one batch).

        The batch's colour histogram p, blurred over neighbouring bins, mixed with the uniform
        distribution: ``r = 1 / (strength·p + (1 − strength)/K)``, scaled so that the weighted pixel mean
        is 1. Each pixel takes the ``r`` of its soft bins. ``strength`` 0 is no rebalancing; the paper's
        is 0.5 (its λ = 1 − strength).
        Common colours (grays, browns, sky) then weigh less and the likeliest colour of an object is
        no longer the most common colour of all photos."""
        p = self.histogram(index, w, weight).view(1, 1, self.bins, self.bins)
        kernel = torch.tensor([0.25, 0.5, 0.25], device=p.device)
        p = F.conv2d(F.pad(p, (1, 1, 1, 1), mode="replicate"), (kernel[:, None] * kernel[None, :]).view(1, 1, 3, 3))
        p = (p / p.sum()).reshape(-1)
        r = 1.0 / (strength * p + (1 - strength) / self.classes)
        per_pixel = (r[index] * w).sum(1, keepdim=True)
        scale = (per_pixel * weight).sum() / weight.sum().clamp(min=1e-8)
        return (per_pixel / scale.clamp(min=1e-8)).detach()

    def decode(self, logits: Tensor, temperature: float = 1.0, noise: Tensor | None = None) -> Tensor:
        """Annealed-mean chroma (B,2,h,w) of (B,K,h,w) logits at ``temperature`` T > 0.

        With ``noise`` (Gumbel, e.g. :func:`coherent_gumbel`, times a strength), the annealed mean of the
        perturbed logits: a *draw* of the colours, which tends to the exact Gumbel-max sample of
        ``softmax(logits)`` as T → 0 at strength 1, and keeps the annealed mean's smoothness at T > 0."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        logits = logits.float() if noise is None else logits.float() + noise.to(logits.device, torch.float32)
        p = F.softmax(logits / temperature, dim=1)
        return torch.einsum("bkhw,kc->bchw", p, self.centres(logits.device))


def coherent_gumbel(shape: tuple[int, int, int, int], generator: torch.Generator | None, cells: int,
                    device=None) -> Tensor:
    """Gumbel(0, 1) noise of ``shape`` (B, K, h, w) that varies smoothly over space: for each (b, k), a
    Gaussian field on a ``(cells+1)²`` lattice, interpolated bilinearly over the h×w grid, rescaled to unit
    variance at every location and mapped through the normal and Gumbel CDFs.

    Each location's noise is exactly Gumbel, so ``argmax(logits + noise)`` is, at every location, an exact
    draw from ``softmax(logits)`` (the Gumbel-max trick); neighbouring locations share their noise, so
    neighbours with similar distributions draw the same colour and a draw makes coherent regions rather
    than per-pixel speckle."""
    b, k, h, w = shape
    cells = max(1, int(cells))
    z = torch.randn((b * k, 1, cells + 1, cells + 1), generator=generator, dtype=torch.float32)
    z = F.interpolate(z.to(device), size=(h, w), mode="bilinear", align_corners=True)

    def spread(n: int) -> Tensor:  # Σ of the squared bilinear weights along one axis
        pos = torch.linspace(0, cells, n, device=device) if n > 1 else torch.zeros(1, device=device)
        frac = pos - pos.floor()
        return (1 - frac) ** 2 + frac ** 2

    z = z / (spread(h)[:, None] * spread(w)[None, :]).sqrt()
    return _gaussian_to_gumbel(z).reshape(b, k, h, w)


def _gaussian_to_gumbel(z: Tensor) -> Tensor:
    """Standard normal values mapped through the normal and Gumbel CDFs: exactly Gumbel(0, 1)."""
    u = (0.5 * (1 + torch.erf(z / math.sqrt(2)))).clamp(1e-7, 1 - 1e-7)
    return -torch.log(-torch.log(u))


def segments_of(logits: Tensor, segments: int, iterations: int = 10) -> Tensor:
    """Soft segment memberships (B, S, h, w) of each location, from what the network predicts there: k-means
    (farthest-point start, so no randomness) on the square roots of ``softmax(logits)`` (Hellinger distance),
    hard assignments blurred over a 5×5 window so that a draw changes colour smoothly where segments meet.

    Locations with the same colour distribution (one object, the sky, a wall) fall in one segment wherever
    they are, and a draw gives them one colour; the photo's luma plays no part."""
    b, k, h, w = logits.shape
    feats = F.softmax(logits.float(), dim=1).sqrt().flatten(2).transpose(1, 2).contiguous()  # (B, N, K)
    s = max(1, min(int(segments), h * w))

    def nearest(x: Tensor, centres: Tensor) -> Tensor:  # squared distances up to a per-row constant
        return (centres.pow(2).sum(1) - 2 * x @ centres.T).argmin(1)

    member = torch.empty(b, h * w, dtype=torch.long, device=logits.device)
    for i in range(b):
        x = feats[i]
        picks = [int((x - x.mean(0)).pow(2).sum(1).argmin())]
        dist = (x - x[picks[0]]).pow(2).sum(1)
        for _ in range(s - 1):
            picks.append(int(dist.argmax()))
            dist = torch.minimum(dist, (x - x[picks[-1]]).pow(2).sum(1))
        centres = x[picks]
        for _ in range(iterations):
            assign = nearest(x, centres)
            sums = torch.zeros_like(centres).index_add_(0, assign, x)
            counts = torch.bincount(assign, minlength=s).unsqueeze(1).to(x.dtype)
            centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
        member[i] = nearest(x, centres)
    onehot = F.one_hot(member, s).transpose(1, 2).reshape(b, s, h, w).float()
    return F.avg_pool2d(onehot, 5, stride=1, padding=2, count_include_pad=False)


def segment_gumbel(logits: Tensor, generator: torch.Generator | None, segments: int,
                   samples: int | None = None) -> Tensor:
    """Gumbel(0, 1) noise of the logits' shape (B, K, h, w) shared within segments of what the network
    predicts (:func:`segments_of`): one standard normal per (sample, segment, class), mixed at each location
    by its memberships, rescaled to unit variance and mapped to Gumbel. With ``samples``, the logits of one
    photo (B = 1) are segmented once and ``samples`` draws of noise come back.

    As with :func:`coherent_gumbel`, each location's noise is exactly Gumbel, so ``argmax(logits + noise)`` is
    an exact draw from ``softmax(logits)`` there; here a whole segment (an object, wherever it reaches)
    shares its draw, where a lattice's smooth noise varies with the position alone."""
    weights = segments_of(logits, segments)  # (B, S, h, w)
    if samples is not None:
        if logits.shape[0] != 1:
            raise ValueError("samples= draws noise for the logits of one photo (batch of 1)")
        weights = weights.expand(samples, -1, -1, -1)
    b, k = weights.shape[0], logits.shape[1]
    z = torch.randn((b, weights.shape[1], k), generator=generator, dtype=torch.float32).to(logits.device)
    mixed = torch.einsum("bshw,bsk->bkhw", weights, z)
    norm = weights.pow(2).sum(1, keepdim=True).sqrt()
    return _gaussian_to_gumbel(mixed / norm)


def joint_bilateral_upsample(chroma: Tensor, luma: Tensor, radius: int = 2, sigma_space: float = 1.0,
                             sigma_range: float = 0.1) -> Tensor:
    """Kopf et al.'s joint bilateral upsampling: low-resolution ``chroma`` (B,C,h,w) to the size of
    ``luma`` (B,1,H,W), each output pixel a weighted mean of the (2r+1)² low-resolution chroma samples
    around it, weighted by their distance (Gaussian ``sigma_space``, in low-resolution pixels) and by how
    close their luma (``luma`` averaged over each low-resolution cell) is to the pixel's own (Gaussian
    ``sigma_range``, in [-1, 1] units).

    Upsampled bilinearly, chroma bleeds across the edges of the photo; here colour changes where the
    luma changes, as on a photograph, and stays smooth elsewhere."""
    b, c, h, w = chroma.shape
    big_h, big_w = luma.shape[-2:]
    k = 2 * radius + 1
    low_luma = F.adaptive_avg_pool2d(luma.float(), (h, w))
    pad = (radius,) * 4
    chroma_n = F.unfold(F.pad(chroma.float(), pad, mode="replicate"), k).view(b, c, k * k, h, w)
    luma_n = F.unfold(F.pad(low_luma, pad, mode="replicate"), k).view(b, 1, k * k, h, w)
    # Each high-resolution pixel's position in low-resolution units, its cell, and the offset within it.
    ys = (torch.arange(big_h, device=luma.device, dtype=torch.float32) + 0.5) * h / big_h - 0.5
    xs = (torch.arange(big_w, device=luma.device, dtype=torch.float32) + 0.5) * w / big_w - 0.5
    cy, cx = ys.round().clamp(0, h - 1).long(), xs.round().clamp(0, w - 1).long()
    dy, dx = ys - cy, xs - cx
    offsets = torch.arange(-radius, radius + 1, device=luma.device, dtype=torch.float32)
    oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
    oy, ox = oy.reshape(-1, 1, 1), ox.reshape(-1, 1, 1)
    dist2 = (oy - dy.view(1, -1, 1)) ** 2 + (ox - dx.view(1, 1, -1)) ** 2  # (k², H, W)
    spatial = torch.exp(-dist2 / (2 * sigma_space ** 2))
    gather_c = chroma_n[:, :, :, cy][:, :, :, :, cx]  # (B, C, k², H, W)
    gather_l = luma_n[:, :, :, cy][:, :, :, :, cx]
    weight = spatial.unsqueeze(0).unsqueeze(0) * torch.exp(
        -(gather_l - luma.float().unsqueeze(2)) ** 2 / (2 * sigma_range ** 2))
    return (weight * gather_c).sum(2) / weight.sum(2).clamp(min=1e-12)
