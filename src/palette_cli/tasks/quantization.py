"""The JPEG quantization constraint: a restored photo must still be a possible source of its JPEG file.

A JPEG stores each 8×8 block's DCT coefficients (of luma, and of the chroma planes after subsampling)
divided by the file's quantization table and rounded. Whatever the original photo was, each of its
coefficients lay within half a quantization step of the one the file decodes to. :func:`project` moves a
restoration's coefficients into those intervals (the quantization constraint set of constrained JPEG
decoding: Zakhor 1992, Yang et al. 1993, and the decoders that use it). Where the steps are small — a
high-quality JPEG — the restoration can hardly leave the decoded file; where they are large it keeps its
detail.

The tables come from the file (``load_image`` records them), so the constraint
applies to JPEG files and to nothing else; EXIF orientation is undone first, so the blocks line up with the
file's own grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..imageio.reading import INFO_JPEG_QUANTIZATION

__all__ = ["JpegQuantization", "project", "violation"]


@dataclass(frozen=True)
class JpegQuantization:
    """A JPEG file's quantization steps: ``luma`` (8×8, row = vertical frequency), ``chroma`` (or None for
    a greyscale file), the chroma planes' subsampling ``factor`` (vertical, horizontal) and the EXIF
    ``orientation`` that turned the stored image into the one the user sees."""

    luma: Tensor
    chroma: Tensor | None = None
    factor: tuple[int, int] = (1, 1)
    orientation: int = 1

    @classmethod
    def from_info(cls, info: dict[str, Any] | None) -> "JpegQuantization | None":
        """The constraint of a file's record (:func:`~palette_cli.imageio.reading.quantization_info`); None
        when it is missing or unusable."""
        if not info:
            return None
        try:
            tables, layers = info["tables"], info["layers"]
            steps = {k: torch.tensor(v, dtype=torch.float32).reshape(8, 8) for k, v in tables.items()}
            if any(bool((s <= 0).any()) for s in steps.values()):
                return None
            (hy, vy, ty), *rest = layers
            luma = steps[ty]
            if not rest:
                return cls(luma, None, (1, 1), int(info.get("orientation", 1)))
            if len(rest) != 2 or rest[0] != rest[1]:
                return None
            hc, vc, tc = rest[0]
            if hy % hc or vy % vc:
                return None
            return cls(luma, steps[tc], (vy // vc, hy // hc), int(info.get("orientation", 1)))
        except (KeyError, TypeError, ValueError, RuntimeError):
            return None

    @classmethod
    def from_image(cls, img: Image.Image) -> "JpegQuantization | None":
        """The constraint a loaded image carries (``load_image`` records it for JPEG files), or None."""
        return cls.from_info(img.info.get(INFO_JPEG_QUANTIZATION))


def _dct_matrix(n: int = 8) -> Tensor:
    k = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m.float()  # orthonormal DCT-II: JPEG's transform


_D = _dct_matrix()


def _blocks(x: Tensor) -> Tensor:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 8, 8, w // 8, 8).permute(0, 1, 2, 4, 3, 5)


def _unblocks(b: Tensor) -> Tensor:
    n, c, bh, bw = b.shape[:4]
    return b.permute(0, 1, 2, 4, 3, 5).reshape(n, c, bh * 8, bw * 8)


def dct_blocks(x: Tensor) -> Tensor:
    """(N, C, H, W), H and W multiples of 8 → each 8×8 block's DCT coefficients (N, C, H/8, W/8, 8, 8)."""
    d = _D.to(x)
    return d @ _blocks(x) @ d.T


def idct_blocks(coeffs: Tensor) -> Tensor:
    d = _D.to(coeffs)
    return _unblocks(d.T @ coeffs @ d)


def _clamp_change(out: Tensor, c_ref: Tensor, steps: Tensor) -> Tensor:
    """The change to add to ``out`` so that every block coefficient lies within half a step of ``c_ref``
    (the reference's :func:`dct_blocks`, broadcast over ``out``'s samples)."""
    half = steps.to(out) / 2
    delta = dct_blocks(out) - c_ref
    return idct_blocks(torch.maximum(torch.minimum(delta, half), -half) - delta)


_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def _to_ycc(rgb: Tensor) -> Tensor:  # [-1, 1] RGB → JFIF YCbCr in 0..255 levels, centred (−128)
    x = (rgb + 1) * 127.5
    return torch.einsum("ij,njhw->nihw", _TO_YCC.to(x), x) - torch.tensor([128.0, 0.0, 0.0]).to(x).view(1, 3, 1, 1)


def _to_rgb(ycc: Tensor) -> Tensor:
    x = ycc + torch.tensor([128.0, 0.0, 0.0]).to(ycc).view(1, 3, 1, 1)
    rgb = torch.einsum("ij,njhw->nihw", torch.linalg.inv(_TO_YCC.double()).to(x), x)
    return rgb / 127.5 - 1


def _stored(x: Tensor, orientation: int) -> Tensor:
    """The displayed image (…, H, W) turned back into the file's stored orientation."""
    if orientation in (2, 3):
        x = x.flip(-1)
    if orientation in (3, 4):
        x = x.flip(-2)
    if orientation == 5:
        x = x.transpose(-1, -2)
    if orientation == 7:
        x = x.flip(-1, -2).transpose(-1, -2)
    if orientation == 6:  # displayed = stored rotated 90° clockwise
        x = torch.rot90(x, 1, (-2, -1))
    if orientation == 8:  # displayed = stored rotated 90° counter-clockwise
        x = torch.rot90(x, -1, (-2, -1))
    return x


def _displayed(x: Tensor, orientation: int) -> Tensor:
    if orientation in (6, 8):
        return _stored(x, 14 - orientation)
    return _stored(x, orientation)  # the other transposes are their own inverses


def project(out: Tensor, decoded: Tensor, quant: JpegQuantization, iterations: int = 3) -> Tensor:
    """``out`` (N, 3, H, W in [-1, 1]) moved into the quantization cells of the JPEG that decodes to
    ``decoded`` (1 or N, 3, H, W): each luma coefficient within half a step of the file's, each chroma one
    (on the subsampled planes) too; a greyscale file's result is grey. The passes alternate with the
    encoder's own edge rule (a partial block is completed by repeating the last row and column), and the
    chroma correction is brought back to full size bilinearly, the decoder's upsampling; ``iterations``
    passes tighten both."""
    o = quant.orientation
    out_s, ref_s = _stored(out.float(), o), _stored(decoded.float(), o)
    h, w = out_s.shape[-2:]
    fv, fh = quant.factor
    mh, mw = 8 * fv, 8 * fh
    pad = (0, (-w) % mw, 0, (-h) % mh)  # the encoder extends a partial block by repeating the edge
    y = _to_ycc(out_s)
    # the file's coefficients: computed once, for every pass and every sample
    ref = F.pad(_to_ycc(ref_s), pad, mode="replicate")
    c_luma = dct_blocks(ref[:, :1])
    if quant.chroma is not None:
        c_chroma = dct_blocks(F.avg_pool2d(ref[:, 1:], (fv, fh)) if (fv, fh) != (1, 1) else ref[:, 1:])
    for _ in range(max(1, iterations)):
        y = F.pad(y[..., :h, :w], pad, mode="replicate")
        luma = y[:, :1] + _clamp_change(y[:, :1], c_luma, quant.luma)
        chroma = y[:, 1:]
        if quant.chroma is None:  # a one-component (greyscale) file: the photo had no colour
            chroma = torch.zeros_like(chroma)
        else:
            low = F.avg_pool2d(chroma, (fv, fh)) if (fv, fh) != (1, 1) else chroma
            change = _clamp_change(low, c_chroma, quant.chroma)
            if (fv, fh) != (1, 1):
                change = F.interpolate(change, scale_factor=(fv, fh), mode="bilinear", align_corners=False)
            chroma = chroma + change
        y = torch.cat([luma, chroma], 1)
    rgb = _to_rgb(y)[..., :h, :w]
    return _displayed(rgb, o).to(out.dtype)


def violation(out: Tensor, decoded: Tensor, quant: JpegQuantization, whole_blocks: bool = False) -> float:
    """The largest luma coefficient change from ``decoded``, in quantization steps (≤ 0.5 inside the set);
    ``whole_blocks``: only the blocks that lie inside the image."""
    o = quant.orientation
    a, b = _to_ycc(_stored(out.float(), o))[:, :1], _to_ycc(_stored(decoded.float(), o))[:, :1]
    h, w = a.shape[-2:]
    pad = (0, (-w) % 8, 0, (-h) % 8)
    a, b = F.pad(a, pad, mode="replicate"), F.pad(b.expand_as(a), pad, mode="replicate")
    change = (dct_blocks(a) - dct_blocks(b)).abs() / quant.luma.to(a)
    if whole_blocks:
        change = change[:, :, : h // 8, : w // 8]
    return float(change.max())
