"""Options shared by the image commands (Typer ``Annotated`` aliases) and their bundle."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from ..defaults import SAMPLER_NAMES, SAMPLER_SPACING, SAMPLER_STEPS, SPACINGS
from .help import in_range

#: Sampler choices, built from the samplers the library has (diffusion samplers and the bridge's).
SamplerName = Enum("SamplerName", {name: name for name in SAMPLER_NAMES}, type=str)


Spacing = Enum("Spacing", {n: n for n in SPACINGS}, type=str)


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?|mps)$")


def device_name(text: str) -> str:
    """``--device``: auto, cpu, cuda, cuda:N or mps (whether it is present is checked when the model loads)."""
    if not DEVICE_PATTERN.match(text):
        raise typer.BadParameter(f"{text!r} is none of auto, cpu, cuda, cuda:N (N = 0, 1, ...), mps")
    return text


def nonempty(what: str) -> Callable[[str | None], str | None]:
    """An option callback refusing an empty value ('' would silently mean the current folder or a
    default)."""
    def check(value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise typer.BadParameter(f"{what} is empty")
        return value

    return check


def nonempty_path(text: str) -> Path:
    """A path parameter that may not be empty: ``''`` would silently mean the current folder."""
    if not text.strip():
        raise typer.BadParameter("the path is empty; give a file or folder ('.' for the current folder)")
    return Path(text)


class Ext(str, Enum):
    auto = "auto"
    png = "png"
    jpg = "jpg"
    webp = "webp"


Inputs = Annotated[list[str], typer.Argument(
    help="Image files, folders or glob patterns.", metavar="IMAGES", show_default=False)]
Output = Annotated[Optional[str], typer.Option(
    "-o", "--output", metavar="PATH", callback=nonempty("-o/--output"), help=(
        "Output file (one input) or folder (a name ending in '/' always is one). Default: next to each input, "
        "with a suffix."))]
OutputExt = Annotated[Optional[Ext], typer.Option(
    "--ext", help=(
        "Format of outputs named by palette: png (the default; lossless), jpg, webp, or auto: the input's own "
        "format (JPEG at quality 95, metadata in a .json sidecar). -o FILE's extension picks its own."),
    show_default=False)]
Model = Annotated[Optional[str], typer.Option(
    "--model", "-m", metavar="NAME|FILE|USER/REPO", callback=nonempty("--model"),
    help="Shipped model name, a local .safetensors file, or a Hugging Face repo USER/REPO[@REV] (its "
         "model.safetensors; hf:USER/REPO/FILE for another file).")]
Sampler = Annotated[Optional[SamplerName], typer.Option(
    help="Sampler (default: the model's own: dpmpp_2m_sde for diffusion models, bridge for bridge models).")]
SamplingSteps = Annotated[Optional[int], typer.Option(
    "--sampling-steps", metavar="N", callback=in_range(1, 1000), help=(
        "Model evaluations per image, 1 to 1000 (default: "
        + ", ".join(f"{steps} {name}" for name, steps in SAMPLER_STEPS.items())
        + "; a bridge model's own, recorded in its file: `palette models` shows it)."))]
SpacingOpt = Annotated[Optional[Spacing], typer.Option(
    "--spacing", help="Noise-level spacing (default: the sampler's own: " + ", ".join(
        f"{spacing} for " + " / ".join(n for n, s in SAMPLER_SPACING.items() if s == spacing)
        for spacing in dict.fromkeys(SAMPLER_SPACING.values())) + ").")]
ANNEAL_RANGE = (0.01, 10.0)
Anneal = Annotated[Optional[float], typer.Option(
    "--anneal", metavar="T", callback=in_range(*ANNEAL_RANGE), help=(
        "Colour-distribution models only: the annealed-mean temperature, 0.01 to 10. Lower gives more vivid, "
        "less cautious colour; 1 is the distribution's mean (default: the model's own)."))]
MAX_SEED = 2**64 - 1  # what a torch.Generator takes
Seed = Annotated[Optional[int], typer.Option(
    metavar="N", callback=in_range(0, MAX_SEED),
    help="Random seed, 0 to 2^64-1; the same seed reproduces an output exactly.")]
NumSamples = Annotated[int, typer.Option(
    "--num-samples", "-n", metavar="N", callback=in_range(1), help="Diverse outputs per input (_s0, _s1, ...).")]
DeviceOpt = Annotated[str, typer.Option(
    metavar="auto|cpu|cuda[:N]|mps", callback=device_name, help="Where to run.")]
PrecisionOpt = Annotated[Precision, typer.Option(help="Numeric precision (auto: bf16 on capable CPUs, fp16 on GPUs).")]
BatchSize = Annotated[int, typer.Option(metavar="N", callback=in_range(1), help="Windows / tiles per network call.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace outputs that exist (default: skip them).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Recursive = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders of folder inputs.")]
AllowHuge = Annotated[bool, typer.Option("--allow-huge", help=(
    "Open images above the decompression-bomb limit and make results above it (still only what fits in memory)."))]
Shard = Annotated[Optional[str], typer.Option(
    "--shard", metavar="K/N", help=(
        "Do only shard K of N (0/N … N-1/N) of the inputs, split by pixel count: for job arrays. "
        "Under torchrun the ranks split the work without it."), show_default=False)]
Force = Annotated[bool, typer.Option("--force", help=(
    "Run a model on a task it was not trained for (a model that cannot run the task is refused all the same)."))]
MAX_RESOLUTION = 4096
Resolution = Annotated[Optional[int], typer.Option(
    metavar="PIXELS", callback=in_range(1, MAX_RESOLUTION),
    help=f"Working resolution of the network, 1 to {MAX_RESOLUTION} pixels (default: the model's training size).")]


@dataclass
class RunOptions:
    """The shared options of one image command."""

    output: Path | None = None
    output_folder: bool = False  # -o ended with '/': a folder whatever its name
    ext: str | None = None
    model: str | None = None
    sampler: str | None = None
    sampling_steps: int | None = None
    spacing: str | None = None
    anneal: float | None = None
    seed: int | None = None
    num_samples: int = 1
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 4
    overwrite: bool = False
    quiet: bool = False
    recursive: bool = False
    allow_huge: bool = False
    resolution: int | None = None
    shard: str | None = None
    force: bool = False

    task_options: dict[str, str] = field(default_factory=dict)  # what the command's own options ask for

    @classmethod
    def from_cli(cls, **kw) -> "RunOptions":
        """The options as the command received them: enums as their values, ``-o`` as a path."""
        values = {k: (v.value if isinstance(v, Enum) else v) for k, v in kw.items()}
        output = values.pop("output", None)
        if output is not None:
            values["output_folder"] = output.endswith(("/", os.sep))
            values["output"] = Path(output)
        return cls(**values)
