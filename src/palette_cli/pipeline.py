"""Inference: a loaded model ready to sample, and the one windowed-fill routine the tasks share.

The network runs at its own working resolution (``Pipeline.resolution``, by default the size it was
trained at); the user's photo keeps its own resolution and only generated pixels are replaced. What
each task does with a photo — its inference recipe — lives in its module under :mod:`palette_cli.tasks`
(``colorize_photo``, ``inpaint_photo``, ``extend_photo`` / ``panorama_photo``, ``restore_photo``); the
methods of the same names here are the library's entry points to them:

- colorize: colour generated on a downscaled copy, put onto the input's full-resolution luminance;
- inpaint: a context window around each group of holes is sampled and only hole pixels pasted back;
- uncrop / panorama: the canvas grows in passes of at most half a window; originals stay identical;
- restore: JPEG restoration at native resolution in overlapping tiles blended at every sampling step.
"""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image
from torch import Tensor

from .checkpoint import ModelInfo, file_hash, load_model
from .devices import resolve_device
from .process import NetFn, SamplerSettings, process_from_metadata
from .tasks.base import noise_fill
from .tasks.colorize import colorize_photo
from .tasks.fill import mirror_fill
from .tasks.inpaint import inpaint_photo
from .tasks.jpeg import restore_photo
from .tasks.uncrop import extend_photo, panorama_photo
from .windows import (  # noqa: F401  (re-exported: the library's names since the first version)
    JPEG_GRID,
    SIDES,
    StepCallback,
    extension_passes,
    hole_windows,
    lock_low_frequencies,
    mask_resize,
    resize,
    tile_starts,
    tiled_net,
    working_size,
)

__all__ = ["Pipeline", "SamplerSettings", "hole_windows", "resolve_device", "tiled_net", "working_size"]


DETAIL_SIZE = 8  # the blur (at the working resolution) that splits a fill's local means from its detail


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
    def net_fn(self, y: Tensor, level: Tensor, cond: Tensor) -> Tensor:
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

        out = self.process.sample(net or self.net_fn, cond, start, settings, generator, impose=impose,
                                  on_step=on_step)
        if not torch.isfinite(out).all():  # NaN would become black pixels: refuse rather than write them
            raise ValueError("the model's output holds NaN or infinite values (a damaged model file, or a "
                             "precision overflow: try --precision fp32); nothing was written")
        return out.cpu()

    def fill_window(self, canvas: Tensor, mask: Tensor, box: tuple[int, int, int, int], settings: SamplerSettings,
                    generator: torch.Generator, on_step: StepCallback | None = None) -> Tensor:
        """Generate the unknown pixels (``mask`` 1, shape (1,1,H,W)) inside one window ``box`` = (x0, y0, x1,
        y1) of a (B,3,H,W) canvas, in place: the window is sampled at the working resolution (known pixels
        imposed, a bridge starting from the classical fill) and only its unknown pixels are written back at
        the canvas's own resolution. The one routine behind inpainting, uncropping and panoramas."""
        x0, y0, x1, y1 = box
        win, win_mask = canvas[..., y0:y1, x0:x1], mask[..., y0:y1, x0:x1]
        size = working_size(x1 - x0, y1 - y0, self.resolution, self.divisor)
        m_small = mask_resize(win_mask, size).expand(canvas.shape[0], -1, -1, -1)
        known = resize(win, size)
        cond = noise_fill(known, m_small, generator)
        start = mirror_fill(known, m_small)
        out = self.sample(cond, settings, generator, known=known, mask=m_small, on_step=on_step, start=start)
        if self.keeps_start_detail(settings):
            out = torch.where(m_small.bool(), lock_low_frequencies(start, out, DETAIL_SIZE), out)
        filled = resize(out, (x1 - x0, y1 - y0)).clamp(-1, 1)
        canvas[..., y0:y1, x0:x1] = torch.where(win_mask.bool(), filled, win)
        return canvas

    def keeps_start_detail(self, settings: SamplerSettings) -> bool:
        """Whether a fill keeps the detail of its classical start: yes for one bridge step. That step is
        the conditional mean E[photo | start]: the right local colours, but the reflected texture of the
        start averaged away where the model is unsure. The result takes the start's detail (what a
        ``DETAIL_SIZE``-pixel blur removes) on the model's local means. Chosen on training photos, where it
        lowered the perceptual distance of centre holes, free-form holes and uncropping (docs/RESULTS.md,
        Study 6)."""
        return self.process.kind == "bridge" and self.process.resolve(settings).steps == 1

    # --- the tasks' recipes (see palette_cli.tasks) ------------------------------------------
    def colorize(self, image: Image.Image, settings: SamplerSettings, generator: torch.Generator,
                 num_samples: int = 1, on_step: StepCallback | None = None) -> list[Image.Image]:
        """Colour for a photo (colour inputs are made gray first); the output keeps the input's luminance."""
        return colorize_photo(self, image, settings, generator, num_samples, on_step)

    def inpaint(self, image: Image.Image, mask: Tensor, settings: SamplerSettings, generator: torch.Generator,
                num_samples: int = 1, on_step: StepCallback | None = None) -> list[Image.Image]:
        """Fill mask pixels (1 = fill) window by window; all other pixels stay bit-identical."""
        return inpaint_photo(self, image, mask, settings, generator, num_samples, on_step)

    def extend(self, image: Image.Image, side: str, amount: int, settings: SamplerSettings,
               generator: torch.Generator, num_samples: int = 1, on_step: StepCallback | None = None,
               on_pass: Callable[[list[Image.Image]], None] | None = None) -> list[Image.Image]:
        """Grow the canvas by ``amount`` pixels on one side, in passes of at most half a window."""
        return extend_photo(self, image, side, amount, settings, generator, num_samples, on_step, on_pass)

    def panorama(self, image: Image.Image, steps: int, settings: SamplerSettings, generator: torch.Generator,
                 direction: str = "both", on_step: StepCallback | None = None,
                 on_frame: Callable[[Image.Image], None] | None = None) -> Image.Image:
        """Repeated uncropping by half the image height per step, on the left, the right or both."""
        return panorama_photo(self, image, steps, settings, generator, direction, on_step, on_frame)

    def restore(self, image: Image.Image, settings: SamplerSettings, generator: torch.Generator,
                num_samples: int = 1, tile: int | None = None, overlap: int | None = None,
                on_step: StepCallback | None = None, lock_colour: bool = True) -> list[Image.Image]:
        """JPEG restoration at native resolution in overlapping tiles on the JPEG grid, blended at every
        step; ``lock_colour`` keeps the input's local mean colour."""
        return restore_photo(self, image, settings, generator, num_samples, tile, overlap, on_step, lock_colour)

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


