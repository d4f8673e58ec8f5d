"""Inference: load a model, prepare a user's image, sample, paste the result back at full resolution.

The network runs at its own working resolution (``Pipeline.resolution``, by default the size it was
trained at); the user's photo keeps its own resolution and only generated pixels are replaced:

- colorize: colour generated on a downscaled copy, put onto the input's full-resolution luminance;
- inpaint: a context window around each group of holes is sampled and only hole pixels pasted back;
- uncrop / panorama: the canvas grows in passes of at most half a window; originals stay identical;
- restore: JPEG restoration at native resolution in overlapping tiles blended at every sampling step.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from PIL import Image
from torch import Tensor

from .checkpoint import ModelInfo, file_hash, load_model
from .devices import resolve_device
from .imageio import pil_to_tensor, tensor_to_pil
from .process import NetFn, SamplerSettings, process_from_metadata
from .tasks.base import noise_fill
from .tasks.fill import mirror_fill

__all__ = ["Pipeline", "SamplerSettings", "hole_windows", "resolve_device", "tiled_net", "working_size"]

SIDES = ("left", "right", "top", "bottom")
#: JPEG's block grid with 4:2:0 chroma subsampling: restoration tiles start on it.
JPEG_GRID = 16
StepCallback = Callable[[int, int], None]
MIN_EXTEND_WINDOW = 16  # pixels; an uncrop pass on a canvas only 1 pixel across still grows it by 8


def _round_to(x: float, m: int) -> int:
    return max(m, int(round(x / m)) * m)


def working_size(width: int, height: int, resolution: int, divisor: int) -> tuple[int, int]:
    """A size with about ``resolution²`` pixels, the input's aspect ratio, both sides multiples of ``divisor``."""
    scale = resolution / math.sqrt(width * height)
    return _round_to(width * scale, divisor), _round_to(height * scale, divisor)


def _resize(t: Tensor, size: tuple[int, int], mode: str = "bicubic") -> Tensor:
    """Resize a (B,C,H,W) tensor to (W, H) = size; antialiased when shrinking."""
    w, h = size
    if t.shape[-2:] == (h, w):
        return t
    if mode == "nearest":
        return torch.nn.functional.interpolate(t, size=(h, w), mode="nearest")
    return torch.nn.functional.interpolate(t, size=(h, w), mode=mode, align_corners=False, antialias=True)


def _mask_resize(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Shrink/grow a {0,1} mask so that any covered pixel stays unknown (area-averaged, then > 0)."""
    w, h = size
    if mask.shape[-2:] == (h, w):
        return mask
    if h <= mask.shape[-2] and w <= mask.shape[-1]:
        return (torch.nn.functional.adaptive_avg_pool2d(mask, (h, w)) > 0).to(mask.dtype)
    return torch.nn.functional.interpolate(mask, size=(h, w), mode="nearest")


class Pipeline:
    """A loaded model ready to sample, plus the task operations built on it."""

    def __init__(self, net: torch.nn.Module, info: ModelInfo, *, device: str = "auto", precision: str = "auto",
                 model_id: str = "", model_hash: str = "", resolution: int | None = None, batch_size: int = 4):
        from .nets import inference_mode

        self.device = resolve_device(device)
        self.info = info
        self.net, self._autocast = inference_mode(net.to(self.device).eval(), self.device, precision)
        self.precision = precision
        self.resolution = int(resolution if resolution is not None else info.net.get("image_size", 256))
        self.divisor = int(getattr(getattr(net, "config", None), "divisor", 1))
        if self.resolution <= 0:
            raise ValueError(f"resolution must be positive, got {self.resolution}")
        if self.resolution % self.divisor:
            raise ValueError(f"resolution {self.resolution} must be a multiple of {self.divisor} for this model")
        self.model_id = model_id
        self.model_hash = model_hash
        self.batch_size = max(1, batch_size)
        # What the network's output means, how sampling starts and which levels it visits: the model file says.
        self.process = process_from_metadata(info.extra, info.training, info.schedule)
        self.objective = self.process.metadata()["objective"]

    @classmethod
    def from_file(cls, path, **kwargs) -> "Pipeline":
        net, info = load_model(path)
        kwargs.setdefault("model_id", str(path))
        kwargs.setdefault("model_hash", file_hash(path))
        return cls(net, info, **kwargs)

    # --- core -------------------------------------------------------------------------------
    def _net(self, y: Tensor, level: Tensor, cond: Tensor) -> Tensor:
        """The raw network output, run in chunks of ``batch_size`` under the inference precision."""
        outs = []
        for i in range(0, y.shape[0], self.batch_size):
            with self._autocast():
                outs.append(self.net(y[i:i + self.batch_size], level[i:i + self.batch_size],
                                     cond[i:i + self.batch_size]).float())
        return torch.cat(outs)

    def sample(self, cond: Tensor, settings: SamplerSettings, generator: torch.Generator, *,
               known: Tensor | None = None, mask: Tensor | None = None, start: Tensor | None = None,
               net: NetFn | None = None, on_step: StepCallback | None = None) -> Tensor:
        """Sample targets for a (B,3,h,w) condition with the model's process; with ``known``/``mask`` the
        known pixels are imposed after every step. ``start`` is a bridge's starting image (default: cond)."""
        cond = cond.to(self.device)
        start = cond if start is None else start.to(self.device)
        impose = None
        if mask is not None:
            known_d, mask_d = known.to(self.device), mask.to(self.device)

            def impose(y: Tensor, _level: float) -> Tensor:
                return y * mask_d + known_d * (1 - mask_d)

        out = self.process.sample(net or self._net, cond, start, settings, generator, impose=impose,
                                  on_step=on_step)
        return out.cpu()

    # --- colorize -----------------------------------------------------------------------------
    def colorize(self, image: Image.Image, settings: SamplerSettings, generator: torch.Generator,
                 num_samples: int = 1, on_step: StepCallback | None = None) -> list[Image.Image]:
        """Colour for a photo (colour inputs are made gray first); the output keeps the input's luminance."""
        from .tasks.colorize import merge_luminance, to_gray

        size = working_size(image.width, image.height, self.resolution, self.divisor)
        small = pil_to_tensor(image.resize(size, Image.Resampling.LANCZOS)).unsqueeze(0)
        cond = to_gray(small).expand(num_samples, -1, -1, -1)
        out = self.sample(cond, settings, generator, on_step=on_step)
        return [merge_luminance(image, tensor_to_pil(o)) for o in out]

    # --- inpaint ------------------------------------------------------------------------------
    def inpaint(self, image: Image.Image, mask: Tensor, settings: SamplerSettings, generator: torch.Generator,
                num_samples: int = 1, on_step: StepCallback | None = None) -> list[Image.Image]:
        """Fill mask pixels (1 = fill) window by window; all other pixels stay bit-identical."""
        full = pil_to_tensor(image).unsqueeze(0).expand(num_samples, -1, -1, -1).clone()
        mask = mask.reshape(1, 1, *mask.shape[-2:]).float()
        windows = list(hole_windows(mask[0, 0], self.resolution))
        for k, (x0, y0, x1, y1) in enumerate(windows):
            win_mask = mask[..., y0:y1, x0:x1]
            win = full[..., y0:y1, x0:x1]
            size = working_size(x1 - x0, y1 - y0, self.resolution, self.divisor)
            m_small = _mask_resize(win_mask, size).expand(num_samples, -1, -1, -1)
            known = _resize(win, size)
            cond = noise_fill(known, m_small, generator)
            step_cb = _offset_progress(on_step, k, len(windows))
            out = self.sample(cond, settings, generator, known=known, mask=m_small, on_step=step_cb,
                              start=mirror_fill(known, m_small))
            filled = _resize(out, (x1 - x0, y1 - y0)).clamp(-1, 1)
            full[..., y0:y1, x0:x1] = torch.where(win_mask.bool(), filled, win)
        return _paste_exact(image, full, mask)

    # --- uncrop / panorama --------------------------------------------------------------------
    def extend(self, image: Image.Image, side: str, amount: int, settings: SamplerSettings,
               generator: torch.Generator, num_samples: int = 1, on_step: StepCallback | None = None,
               on_pass: Callable[[list[Image.Image]], None] | None = None) -> list[Image.Image]:
        """Grow the canvas by ``amount`` pixels on one side, in passes of at most half a window."""
        if side not in SIDES:
            raise ValueError(f"unknown side {side!r}; choose from {', '.join(SIDES)}")
        canvas = pil_to_tensor(image).unsqueeze(0).expand(num_samples, -1, -1, -1).clone()
        window = extend_window(image.width, image.height, side)
        passes = extension_passes(image.width, image.height, side, amount)
        done = 0
        for k in range(passes):
            add = min(window // 2, amount - done)
            canvas = self._extend_once(canvas, side, add, window, settings, generator,
                                       _offset_progress(on_step, k, passes))
            done += add
            if on_pass is not None:
                on_pass([tensor_to_pil(c) for c in canvas])
        out = [tensor_to_pil(c) for c in canvas]
        return [_restore_original(o, image, side, amount) for o in out]

    def _extend_once(self, canvas: Tensor, side: str, add: int, window: int, settings: SamplerSettings,
                     generator: torch.Generator, on_step: StepCallback | None) -> Tensor:
        b, c, h, w = canvas.shape
        if side in ("left", "right"):
            grown = torch.zeros(b, c, h, w + add)
            mask = torch.zeros(1, 1, h, w + add)
            if side == "right":
                grown[..., :w] = canvas
                mask[..., w:] = 1
                x0, x1 = max(0, w + add - window), w + add
            else:
                grown[..., add:] = canvas
                mask[..., :add] = 1
                x0, x1 = 0, min(w + add, window)
            y0, y1 = 0, h
        else:
            grown = torch.zeros(b, c, h + add, w)
            mask = torch.zeros(1, 1, h + add, w)
            if side == "bottom":
                grown[..., :h, :] = canvas
                mask[..., h:, :] = 1
                y0, y1 = max(0, h + add - window), h + add
            else:
                grown[..., add:, :] = canvas
                mask[..., :add, :] = 1
                y0, y1 = 0, min(h + add, window)
            x0, x1 = 0, w
        win, win_mask = grown[..., y0:y1, x0:x1], mask[..., y0:y1, x0:x1]
        size = working_size(x1 - x0, y1 - y0, self.resolution, self.divisor)
        m_small = _mask_resize(win_mask, size).expand(b, -1, -1, -1)
        known = _resize(win, size)
        cond = noise_fill(known, m_small, generator)
        out = self.sample(cond, settings, generator, known=known, mask=m_small, on_step=on_step,
                          start=mirror_fill(known, m_small))
        filled = _resize(out, (x1 - x0, y1 - y0)).clamp(-1, 1)
        grown[..., y0:y1, x0:x1] = torch.where(win_mask.bool(), filled, win)
        return grown

    def panorama(self, image: Image.Image, steps: int, settings: SamplerSettings, generator: torch.Generator,
                 direction: str = "both", on_step: StepCallback | None = None,
                 on_frame: Callable[[Image.Image], None] | None = None) -> Image.Image:
        """Repeated uncropping by half the image height per step, on the left, the right or both."""
        sides = {"both": ("left", "right"), "left": ("left",), "right": ("right",)}[direction]
        half = max(1, image.height // 2)
        current = image
        total = steps * len(sides)
        k = 0
        for _ in range(steps):
            for side in sides:
                current = self.extend(current, side, half, settings, generator,
                                      on_step=_offset_progress(on_step, k, total))[0]
                k += 1
                if on_frame is not None:
                    on_frame(current)
        return current

    # --- restore (JPEG) -----------------------------------------------------------------------
    def restore(self, image: Image.Image, settings: SamplerSettings, generator: torch.Generator,
                num_samples: int = 1, tile: int | None = None, overlap: int | None = None,
                on_step: StepCallback | None = None, lock_colour: bool = True) -> list[Image.Image]:
        """JPEG restoration at native resolution: overlapping tiles, blended at every sampling step.

        Tiles start on the JPEG block grid (multiples of 16 px, the 4:2:0 chroma block), where the
        artifacts the model learned sit. ``lock_colour`` keeps the output's local mean colour (its low
        frequencies) equal to the input's, which JPEG preserves well: restoration cannot shift colours.
        """
        cond_full = pil_to_tensor(image).unsqueeze(0)
        h, w = cond_full.shape[-2:]
        grid = math.lcm(self.divisor, JPEG_GRID)
        padded_h, padded_w = _round_up(h, grid), _round_up(w, grid)
        cond_full = torch.nn.functional.pad(cond_full, (0, padded_w - w, 0, padded_h - h), mode="replicate")
        cond = cond_full.expand(num_samples, -1, -1, -1).to(self.device)
        tile = tile or max(self.resolution, 256)
        overlap = overlap if overlap is not None else tile // 4
        # Tiles are clipped to the canvas on each axis on its own, so a photo 3 pixels high is covered by
        # a few 16 x 256 tiles, not by thousands of tiny ones; sizes stay multiples of the JPEG grid.
        size = tuple(max(grid, min(tile, n) - min(tile, n) % grid) for n in (padded_h, padded_w))
        net = tiled_net(self._net, cond, size, overlap, align=JPEG_GRID)
        out = self.sample(cond, settings, generator, net=net, on_step=on_step)
        if lock_colour:
            out = lock_low_frequencies(out, cond.cpu())
        return [tensor_to_pil(o[:, :h, :w]) for o in out]

    def provenance(self, task: str, settings: SamplerSettings, seed: int) -> dict[str, str]:
        from . import __version__

        return {"palette_cli_version": __version__, "task": task, "seed": str(seed), "model": self.model_id,
                "model_hash": self.model_hash, "resolution": str(self.resolution), "precision": self.precision,
                **self.describe_sampling(settings)}

    def describe_sampling(self, settings: SamplerSettings) -> dict[str, str]:
        """The sampler settings that apply (a regression model ignores them)."""
        return self.process.describe(settings)

    def model_calls(self, settings: SamplerSettings) -> int:
        """Network evaluations per sample (per window or tile)."""
        return self.process.model_calls(settings)


def extend_window(width: int, height: int, side: str) -> int:
    """The window of an uncrop pass: the canvas's size across the direction (at least MIN_EXTEND_WINDOW)."""
    return max(height if side in ("left", "right") else width, MIN_EXTEND_WINDOW)


def extension_passes(width: int, height: int, side: str, amount: int) -> int:
    """How many sampling passes growing a ``width`` x ``height`` canvas by ``amount`` pixels on ``side`` takes."""
    return max(1, math.ceil(amount / (extend_window(width, height, side) // 2)))


def _round_up(x: int, m: int) -> int:
    return ((x + m - 1) // m) * m


def _offset_progress(on_step: StepCallback | None, k: int, parts: int) -> StepCallback | None:
    """Map the steps of part ``k`` of ``parts`` onto one overall progress count."""
    if on_step is None:
        return None
    return lambda i, n: on_step(k * n + i, parts * n)


def _paste_exact(image: Image.Image, result: Tensor, mask: Tensor) -> list[Image.Image]:
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


def _restore_original(out: Image.Image, image: Image.Image, side: str, amount: int) -> Image.Image:
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


def _tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
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


def tiled_net(net: NetFn, cond: Tensor, tile: int | tuple[int, int], overlap: int, align: int = 1) -> NetFn:
    """The network over a canvas larger than its window: the outputs of overlapping tiles (``tile`` pixels
    square, or (height, width)) are averaged with feathered weights at every step, so the tiles agree and
    no seams form. Tile starts are multiples of ``align`` (the canvas must then be a multiple too)."""
    h, w = cond.shape[-2:]
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    spots = [(t, l) for t in _tile_starts(h, th, overlap, align) for l in _tile_starts(w, tw, overlap, align)]
    weight = _feather(th, tw, overlap).to(cond.device)

    def run(y: Tensor, level: Tensor, _cond: Tensor) -> Tensor:
        b = y.shape[0]
        crops = [(slice(None), slice(None), slice(t, t + th), slice(l, l + tw)) for t, l in spots]
        outs = net(torch.cat([y[c] for c in crops]), level.repeat(len(spots)),
                   torch.cat([cond[c] for c in crops])).split(b)
        total = torch.zeros_like(y)
        norm = torch.zeros(1, 1, h, w, device=y.device, dtype=y.dtype)
        for c, o in zip(crops, outs):
            total[c] += o * weight
            norm[c] += weight
        return total / norm

    return run


def lock_low_frequencies(out: Tensor, ref: Tensor, size: int = 16) -> Tensor:
    """``out`` with its local mean colour (a ``size``-pixel box blur, twice) replaced by ``ref``'s."""
    def blur(x: Tensor) -> Tensor:
        k = min(size, x.shape[-2], x.shape[-1]) | 1
        for _ in range(2):
            x = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (k // 2,) * 4, mode="replicate"), k, 1)
        return x
    ref = ref.expand_as(out).to(out.dtype)
    return (out + blur(ref) - blur(out)).clamp(-1, 1)
