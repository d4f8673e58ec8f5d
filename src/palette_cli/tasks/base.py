"""What every task shares: the training example, the task interface, and generator-driven draws.

Every random choice goes through the ``torch.Generator`` that is passed in, so one seed reproduces a
training example exactly, in any process (DataLoader workers included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from PIL import Image

    from ..diffusion.process import SamplerSettings


@dataclass
class Example:
    """One training example: ``cond`` and ``target`` are (3,H,W) in [-1,1]; ``mask`` is (1,H,W) in {0,1}.

    ``mask`` marks the unknown pixels (1), where the loss is computed; it is all ones for tasks that
    regenerate the whole image (colorization, JPEG restoration). ``start`` is where a bridge process
    starts (the degraded image itself by default; a classical fill for inpainting and uncropping).
    ``task`` names the task that made it.
    """

    cond: Tensor
    target: Tensor
    mask: Tensor
    task: str = ""
    start: Tensor | None = None

    def as_dict(self) -> dict[str, Tensor]:
        """The tensors only, as a dataset item (``task`` is left out so batches collate)."""
        return {"cond": self.cond, "target": self.target, "mask": self.mask,
                "start": self.cond if self.start is None else self.start}


class PipelineLike(Protocol):
    """What a task's inference recipe needs of a loaded model; :class:`palette_cli.pipeline.Pipeline` is one.
    (A protocol, so that tasks need not import the pipeline that calls them.)"""

    resolution: int
    divisor: int
    device: torch.device
    batch_size: int

    def net_fn(self, y: Tensor, level: Tensor, cond: Tensor) -> Tensor: ...

    def model_calls(self, settings: "SamplerSettings") -> int: ...

    def sample(self, cond: Tensor, settings: "SamplerSettings", generator: torch.Generator, *,
               known: Tensor | None = None, mask: Tensor | None = None, start: Tensor | None = None,
               net: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
               on_step: Callable[[int, int], None] | None = None, samples_of_one: bool = False) -> Tensor: ...

    def fill_window(self, canvas: Tensor, mask: Tensor, box: tuple[int, int, int, int], settings: "SamplerSettings",
                    generator: torch.Generator, on_step: Callable[[int, int], None] | None = None) -> Tensor: ...


@runtime_checkable
class TrainingTask(Protocol):
    """What training needs of a task or of a mixture of tasks: a clean image (3,H,W) in [-1,1] turned into a
    training example, drawing randomness from ``generator``."""

    name: str

    def make_example(self, image: Tensor, generator: torch.Generator) -> Example: ...


@runtime_checkable
class Task(TrainingTask, Protocol):
    """One task, owning all of it: its training examples, its evaluation input (the paper's protocol:
    the degraded input of a reference (3,H,W) and its mask, 1 = generated, or None) and its inference recipe
    on one evaluation input (``palette eval``)."""

    @staticmethod
    def evaluation_input(image: Tensor, generator: torch.Generator, **setting: Any) -> tuple[Tensor, Tensor | None]: ...

    @staticmethod
    def infer(pipe: PipelineLike, image: "Image.Image", mask: Tensor | None, settings: "SamplerSettings",
              generator: torch.Generator, num_samples: int = 1,
              on_step: Callable[[int, int], None] | None = None) -> list["Image.Image"]: ...


def full_mask(image: Tensor) -> Tensor:
    """The all-ones (1,H,W) loss mask of an image: every pixel is generated."""
    return torch.ones(1, *image.shape[-2:], dtype=image.dtype)


def noise_fill(image: Tensor, mask: Tensor, generator: torch.Generator) -> Tensor:
    """The image with its unknown pixels (mask 1) replaced by standard Gaussian noise."""
    noise = torch.randn(image.shape, generator=generator, dtype=image.dtype)
    return torch.where(mask.bool().expand_as(image), noise, image)


# --------------------------------------------------------------------------- scalar draws


def uniform(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    """One float drawn uniformly from [low, high)."""
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def randint(generator: torch.Generator, low: int, high: int) -> int:
    """One integer drawn uniformly from [low, high] (both ends included)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def normal(generator: torch.Generator, mean: float = 0.0, std: float = 1.0) -> float:
    """One float from N(mean, std²)."""
    return mean + std * float(torch.randn((), generator=generator, dtype=torch.float64))


def log_uniform(generator: torch.Generator, low: float, high: float) -> float:
    """One float whose logarithm is uniform on [log low, log high)."""
    return math.exp(uniform(generator, math.log(low), math.log(high)))


def choice(generator: torch.Generator, weights: list[float] | Tensor) -> int:
    """An index drawn with probability proportional to ``weights``."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.ndim != 1 or len(w) == 0 or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {w.tolist()}")
    return int(torch.multinomial(w, 1, generator=generator))
