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

from .checkpoint import CheckpointError, ModelInfo, file_hash, load_coarse, load_model, read_info
from .scale.devices import resolve_device
from .hub import ModelTaskError, task_of, task_refusal
from .diffusion.detail import lock_low_frequencies  # noqa: F401  (re-exported, as the windows names below)
from .diffusion.process import NetFn, SamplerSettings, sample_known
from .diffusion.registry import process_from_metadata
from .tasks.base import noise_fill
from .tasks.coarse import coarse_guess, lacks_coarse_stage
from .tasks.colorize import colorize_photo
from .tasks.starts import fill_start
from .tasks.inpaint import inpaint_photo
from .tasks.jpeg import restore_photo
from .tasks.uncrop import extend_photo, panorama_photo
from .windows import (  # noqa: F401  (re-exported: the library's names since the first version)
    JPEG_GRID,
    SIDES,
    StepCallback,
    extension_passes,
    hole_windows,
    mask_resize,
    resize,
    tile_starts,
    tiled_net,
    working_size,
)

__all__ = ["Pipeline", "SamplerSettings", "hole_windows", "resolve_device", "tiled_net", "working_size"]


class Pipeline:
    """A loaded model ready to sample, plus the task operations built on it.

    A task the model was not trained for is refused (:class:`~palette_cli.hub.ModelTaskError`, one line)
    unless ``force``; one its process cannot run is refused always."""

    #: Not deterministic: each sample is drawn afresh (a classical method gives one output per input).
    deterministic = False

    def __init__(self, net: torch.nn.Module, info: ModelInfo, *, device: str = "auto", precision: str = "auto",
                 model_id: str = "", model_hash: str = "", resolution: int | None = None, batch_size: int = 4,
                 force: bool = False, coarse: "Pipeline | None" = None):
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
        self.objective = self.process.objective
        self.force = force
        #: The coarse stage of a two-stage fill (:mod:`palette_cli.tasks.coarse`), or None.
        self.coarse = coarse
        if self.process.fill_guess == "coarse" and coarse is None:
            raise ValueError(f"{model_id or 'this model'}: its fill starts from a coarse stage, but it holds none "
                             "(export it with --coarse)")

    @classmethod
    def from_file(cls, path, *, task: str | None = None, force: bool = False, **kwargs) -> "Pipeline":
        """Load a model file; with ``task`` (a command or task name) a model that may not run it is refused
        right after its header is read, before the network is built."""
        kwargs.setdefault("model_id", str(path))
        if task is not None:
            check_task(read_info(path), kwargs["model_id"], task, force)
        net, info = load_model(path)
        kwargs.setdefault("model_hash", file_hash(path))
        stage = load_coarse(path, info)
        if stage is not None:
            c_net, c_info, size = stage
            kwargs["coarse"] = cls(c_net, c_info, device=kwargs.get("device", "auto"),
                                   precision=kwargs.get("precision", "auto"), model_id=f"{kwargs['model_id']} (coarse)",
                                   resolution=size, batch_size=kwargs.get("batch_size", 4), force=True)
        elif lacks_coarse_stage(info):
            raise CheckpointError(f"{path}: its fill starts from a coarse stage, but the file holds none "
                                  "(export it with --coarse)")
        return cls(net, info, force=force, **kwargs)

    def check_task(self, task: str) -> None:
        """Refuse, in one line, a task (or command) this model may not run."""
        check_task(self.info, self.model_id or "this model", task, self.force)

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
               net: NetFn | None = None, on_step: StepCallback | None = None,
               samples_of_one: bool = False, guess: Tensor | None = None) -> Tensor:
        """Sample targets for a (B,3,h,w) condition with the model's process; with ``known``/``mask`` the
        known pixels are imposed after every step (and a fill may keep its start's detail:
        :func:`~palette_cli.diffusion.process.sample_known`). ``start`` is a bridge's starting image (default: cond).
        ``samples_of_one``: the batch is ``-n`` samples of one input (see ``Process.sample``); ``guess``, a
        fill the process may start from part-way (``Process.fill_guess``)."""
        cond = cond.to(self.device)
        start = cond if start is None else start.to(self.device)
        if mask is not None:
            known, mask = known.to(self.device), mask.to(self.device)
        out = sample_known(self.process, net or self.net_fn, cond, start, settings, generator, known=known,
                           mask=mask, on_step=on_step, samples_of_one=samples_of_one,
                           guess=None if guess is None else guess.to(self.device))
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
        start = fill_start(self.process.fill_start, known, m_small, generator)
        kind = self.process.fill_guess
        if kind == "coarse":
            guess = coarse_guess(self.coarse, known, m_small, generator)
        else:
            guess = fill_start(kind, known, m_small, generator) if kind else None
        out = self.sample(cond, settings, generator, known=known, mask=m_small, on_step=on_step, start=start,
                          guess=guess)
        filled = resize(out, (x1 - x0, y1 - y0)).clamp(-1, 1)
        canvas[..., y0:y1, x0:x1] = torch.where(win_mask.bool(), filled, win)
        return canvas

    # --- the tasks' recipes (see palette_cli.tasks) ------------------------------------------
    def colorize(self, image: Image.Image, settings: SamplerSettings, generator: torch.Generator,
                 num_samples: int = 1, on_step: StepCallback | None = None) -> list[Image.Image]:
        """Colour for a photo (colour inputs are made gray first); the output keeps the input's luminance."""
        self.check_task("colorize")
        return colorize_photo(self, image, settings, generator, num_samples, on_step)

    def inpaint(self, image: Image.Image, mask: Tensor, settings: SamplerSettings, generator: torch.Generator,
                num_samples: int = 1, on_step: StepCallback | None = None) -> list[Image.Image]:
        """Fill mask pixels (1 = fill) window by window; all other pixels stay bit-identical."""
        self.check_task("inpaint")
        return inpaint_photo(self, image, mask, settings, generator, num_samples, on_step)

    def extend(self, image: Image.Image, side: str, amount: int, settings: SamplerSettings,
               generator: torch.Generator, num_samples: int = 1, on_step: StepCallback | None = None,
               on_pass: Callable[[list[Image.Image]], None] | None = None) -> list[Image.Image]:
        """Grow the canvas by ``amount`` pixels on one side, in passes of at most half a window."""
        self.check_task("uncrop")
        return extend_photo(self, image, side, amount, settings, generator, num_samples, on_step, on_pass)

    def panorama(self, image: Image.Image, steps: int, settings: SamplerSettings, generator: torch.Generator,
                 direction: str = "both", on_step: StepCallback | None = None,
                 on_frame: Callable[[Image.Image], None] | None = None, colour_anchor: float = 0.0) -> Image.Image:
        """Repeated uncropping by half the image height per step, on the left, the right or both; each new
        band's mean colour kept within ``colour_anchor`` ΔE of the input's (0: off)."""
        self.check_task("panorama")
        return panorama_photo(self, image, steps, settings, generator, direction, on_step, on_frame, colour_anchor)

    def restore(self, image: Image.Image, settings: SamplerSettings, generator: torch.Generator,
                num_samples: int = 1, tile: int | None = None, overlap: int | None = None,
                on_step: StepCallback | None = None, lock_colour: bool = True,
                jpeg_constraint: bool = True) -> list[Image.Image]:
        """JPEG restoration at native resolution in overlapping tiles on the JPEG grid, blended at every
        step; ``lock_colour`` keeps the input's local mean colour; ``jpeg_constraint`` keeps a JPEG file's
        result within its quantization cells (:mod:`palette_cli.tasks.quantization`)."""
        self.check_task("restore")
        return restore_photo(self, image, settings, generator, num_samples, tile, overlap, on_step, lock_colour,
                             jpeg_constraint)

    def infer(self, task: str, image: Image.Image, mask: Tensor | None, settings: SamplerSettings,
              generator: torch.Generator, num_samples: int = 1,
              on_step: StepCallback | None = None) -> list[Image.Image]:
        """The task's own recipe on one evaluation input (``mask``: (1,H,W), 1 = generated, or None)."""
        from .tasks import TASKS

        self.check_task(task)
        return TASKS[task].infer(self, image, mask, settings, generator, num_samples, on_step)

    def provenance(self, task: str, settings: SamplerSettings, seed: int) -> dict[str, str]:
        """What an output records of how it was made; a task run with ``force`` records the model's own."""
        from . import __version__

        meta = {"palette_cli_version": __version__, "task": task, "seed": str(seed), "model": self.model_id,
                "model_hash": self.model_hash, "resolution": str(self.resolution), "precision": self.precision,
                **self.describe_sampling(settings)}
        if self.info.tasks and task_of(task) not in self.info.tasks:
            meta["model_tasks"] = ",".join(self.info.tasks)
        return meta

    def record(self, settings: SamplerSettings) -> dict[str, object]:
        """The model and how it samples, as an evaluation records them."""
        return {"model": self.model_id, "model_hash": self.model_hash, "precision": self.precision,
                **self.describe_sampling(settings), "batch_size": self.batch_size, "device": str(self.device)}

    def summary(self, settings: SamplerSettings) -> str:
        """One phrase for a comparison table: the model and its sampler."""
        s = self.describe_sampling(settings)
        steps = s.get("sampling_steps")
        return f"model `{self.model_id}` ({s['sampler']}" + (
            f", {steps} step{'' if steps == '1' else 's'})" if steps else ")")

    def describe_sampling(self, settings: SamplerSettings) -> dict[str, str]:
        """The sampler settings that apply (a regression model ignores them)."""
        return self.process.describe(settings)

    def model_calls(self, settings: SamplerSettings) -> int:
        """Network evaluations per sample (per window or tile)."""
        return self.process.model_calls(settings)


def check_task(info: ModelInfo, model: str, task: str, force: bool = False) -> None:
    """Refuse (:class:`~palette_cli.hub.ModelTaskError`) a task the model file ``info`` may not run:
    one it was not trained for (unless ``force``), or one its process cannot run."""
    runs = process_from_metadata(info.extra, info.training, info.schedule).tasks
    problem = task_refusal(model, task, info.tasks, runs, force)
    if problem:
        raise ModelTaskError(problem)
