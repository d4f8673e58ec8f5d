"""Options shared by the image commands (Typer ``Annotated`` aliases) and their bundle."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import SAMPLER_NAMES, SPACINGS

#: Sampler choices, built from the samplers the library has (diffusion samplers and the bridge's).
SamplerName = Enum("SamplerName", {name: name for name in SAMPLER_NAMES}, type=str)


Spacing = Enum("Spacing", {n: n for n in SPACINGS}, type=str)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


Inputs = Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.", show_default=False)]
Output = Annotated[Optional[Path], typer.Option(
    "-o", "--output", help="Output file (one input) or folder. Default: next to each input, with a suffix.")]
Model = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="Shipped model name, a local .safetensors file, or a Hugging Face repo USER/REPO[@REV].")]
Sampler = Annotated[Optional[SamplerName], typer.Option(
    help="Sampler (default: the model's own: dpmpp_2m_sde for diffusion models, bridge for bridge models).")]
SamplingSteps = Annotated[Optional[int], typer.Option(
    "--sampling-steps", min=1, max=1000, help="Model evaluations per image (default: 20 for dpmpp_2m_sde / dpmpp_2m, 50 ddim, 1000 ddpm, 1 bridge).")]
SpacingOpt = Annotated[Optional[Spacing], typer.Option(
    "--spacing", help="Noise-level spacing (default: logsnr; the paper's for ddpm).")]
Anneal = Annotated[Optional[float], typer.Option(
    "--anneal", min=0.01, max=10.0, help=(
        "Colour-distribution models only: the annealed-mean temperature. Lower gives more vivid, "
        "less cautious colour; 1 is the distribution's mean (default: the model's own)."))]
MAX_SEED = 2**64 - 1  # what a torch.Generator takes
Seed = Annotated[Optional[int], typer.Option(
    min=0, max=MAX_SEED, help="Random seed; the same seed reproduces an output exactly.")]
NumSamples = Annotated[int, typer.Option("--num-samples", "-n", min=1, help="Diverse outputs per input.")]
DeviceOpt = Annotated[Device, typer.Option(help="Where to run.")]
PrecisionOpt = Annotated[Precision, typer.Option(help="Numeric precision (auto: bf16 on capable CPUs, fp16 on GPUs).")]
BatchSize = Annotated[int, typer.Option(min=1, help="Windows / tiles per network call.")]
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
    min=1, max=MAX_RESOLUTION, help="Working resolution of the network in pixels (default: the model's training size).")]


@dataclass
class RunOptions:
    """The shared options of one image command."""

    output: Path | None = None
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

    @classmethod
    def from_cli(cls, **kw) -> "RunOptions":
        return cls(**{k: (v.value if isinstance(v, Enum) else v) for k, v in kw.items()})
