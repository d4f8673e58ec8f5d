"""`palette eval`: the paper's evaluation protocol — generate outputs for reference photos and score them."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import EVAL_MASK_MODES, EVAL_METHODS, TASK_NAMES
from .help import in_range
from .options import (
    MAX_SEED,
    Anneal,
    BatchSize,
    DeviceOpt,
    Force,
    PrecisionOpt,
    Quiet,
    Sampler,
    SamplingSteps,
    SpacingOpt,
    nonempty_path,
)
from .runner import fail
from .uncrop import Direction

EvalTaskName = Enum("EvalTaskName", {n: n for n in TASK_NAMES}, type=str)


MaskMode = Enum("MaskMode", {n: n for n in EVAL_MASK_MODES}, type=str)


class FeatureNetChoice(str, Enum):
    effnet_lite0 = "effnet-lite0"
    effnet_lite2 = "effnet-lite2"
    effnets = "effnets"
    standard = "standard"
    all = "all"


class LpipsNet(str, Enum):
    alex = "alex"
    vgg = "vgg"


MethodName = Enum("MethodName", {n: n for n in EVAL_METHODS}, type=str)


Weights = Optional[str]
_WEIGHTS_HELP = "Local file or hf:USER/REPO/FILE (@REV optional)."


def eval_(
    task: Annotated[EvalTaskName, typer.Option(help="Task to evaluate.")] = EvalTaskName.colorize,
    references: Annotated[Optional[list[str]], typer.Option(
        metavar="FOLDER|LIST|IMAGE", help="Reference photos: a folder, an image list file or one image (repeatable).",
        show_default=False)]
    = None,
    out: Annotated[Optional[Path], typer.Option(
        metavar="FOLDER", parser=nonempty_path,
        help="Run folder for references/, inputs/, masks/, outputs/ and the scores (with --outputs: "
             "where the scores go; default the outputs folder).")] = None,
    outputs: Annotated[Optional[Path], typer.Option(
        metavar="FOLDER", parser=nonempty_path,
        help="Only score the images in this folder (made by any tool, named NAME[_suffix][_sK].*) "
             "against the references; nothing is generated.")] = None,
    masks: Annotated[Optional[Path], typer.Option(
        metavar="FOLDER", parser=nonempty_path,
        help="With --outputs: the generated region of each output (NAME.png, white = generated, as "
             "the masks/ of a run folder), adding the fill metrics (copy score, fill spread).")] = None,
    n_images: Annotated[Optional[int], typer.Option(
        metavar="N", callback=in_range(1), help="Use the first N reference photos (default: all).")]
    = None,
    samples_per_image: Annotated[int, typer.Option(
        metavar="N", callback=in_range(1), help="Samples per input (2+ gives diversity metrics).")] = 1,
    size: Annotated[int, typer.Option(
        metavar="PIXELS", callback=in_range(8),
        help="Largest centre square resized to SIZE x SIZE, at least 8 (paper: 256).")] = 256,
    mask_mode: Annotated[MaskMode, typer.Option(help="Inpainting masks: free-form area bucket or the centre box.")]
    = MaskMode.free_form_20_30,
    jpeg_quality: Annotated[int, typer.Option(
        metavar="Q", callback=in_range(1, 100), help="JPEG quality of the jpeg task's inputs, 1 to 100.")] = 10,
    direction: Annotated[Direction, typer.Option(help="Side that uncropping generates (paper: right).")]
    = Direction.right,
    feature_net: Annotated[FeatureNetChoice, typer.Option(
        help="effnet-lite0: offline, not comparable to published numbers; effnet-lite2: a second offline "
             "judge that no shipped model contains; effnets: both; standard: the paper's networks from the "
             "weights below; all: effnet-lite0 and standard.")] = FeatureNetChoice.effnet_lite0,
    inception_v3: Annotated[Weights, typer.Option(
        metavar="FILE", help=f"FID Inception-v3 weights (FID, KID, IS). {_WEIGHTS_HELP}")]
    = None,
    inception_v1: Annotated[Weights, typer.Option(
        metavar="FILE", help=f"Inception-v1 weights (perceptual distance). {_WEIGHTS_HELP}")]
    = None,
    resnet50: Annotated[Weights, typer.Option(
        metavar="FILE", help=f"ResNet-50 weights (classification accuracy). {_WEIGHTS_HELP}")]
    = None,
    lpips: Annotated[Weights, typer.Option(
        metavar="FILE", help=f"LPIPS v0.1 linear layers (diversity). {_WEIGHTS_HELP}")] = None,
    lpips_backbone: Annotated[Weights, typer.Option(
        metavar="FILE", help=f"LPIPS backbone weights (torchvision). {_WEIGHTS_HELP}")]
    = None,
    lpips_net: Annotated[LpipsNet, typer.Option(help="LPIPS backbone kind.")] = LpipsNet.alex,
    labels: Annotated[Optional[Path], typer.Option(
        metavar="FILE",
        help="JSON {reference name: ImageNet class}: classification accuracy instead of agreement.")] = None,
    method: Annotated[Optional[list[MethodName]], typer.Option(
        metavar="|".join(EVAL_METHODS),
        help="Method to evaluate on the same inputs (repeatable): model (each --model; none given: the task's "
             "default model), identity (the degraded input), telea / ns (OpenCV inpainting: inpaint, uncrop), "
             "nlmeans (OpenCV denoising: jpeg), mirror (uncrop). Several give one table with a row per method and "
             "grid.png. Default: model.",
        show_default=False)] = None,
    model: Annotated[Optional[list[str]], typer.Option(
        "--model", "-m", metavar="NAME|FILE|USER/REPO",
        help="Shipped model name, a local .safetensors file, or a Hugging Face repo "
             "USER/REPO[@REV]; repeatable (each is a row of --method model).",
        show_default=False)] = None,
    grid_photos: Annotated[int, typer.Option(
        metavar="N", callback=in_range(0), help="Photos (rows) in the comparison's grid.png.")] = 8,
    sampler: Sampler = None, sampling_steps: SamplingSteps = None,
    spacing: SpacingOpt = None, anneal: Anneal = None,
    seed: Annotated[int, typer.Option(metavar="N", callback=in_range(0, MAX_SEED),
                                      help="Seed of the inputs (masks, noise) and of the samples.")] = 0,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto", batch_size: BatchSize = 4,
    threads: Annotated[Optional[int], typer.Option(
        metavar="N", callback=in_range(1),
        help="CPU threads (default: all cores, fewer while other processes keep them busy).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Regenerate outputs that exist (default: keep them, finishing an interrupted run).")]
    = False,
    quiet: Quiet = False, force: Force = False,
) -> None:
    """Evaluate a model with the paper's protocol: build degraded inputs from reference photos, generate,
    and write FID/KID/IS/accuracy/perceptual distance/PSNR/SSIM/diversity to metrics.json and metrics.md.
    With --method, several methods (models, classical baselines) on the same inputs: a row per method."""
    from rich.console import Console

    from ..checkpoint import CheckpointError
    from ..comparison import compare, is_comparison, plan_methods
    from ..evaluate import EvalTask, EvaluationError, StandardWeights, evaluate
    from ..hub import ModelNotFoundError
    from ..imageio import ImageInputError, OutputError
    from ..metrics.features import FeatureWeightsError
    from ..pipeline import SamplerSettings

    if not references:
        raise fail("give the reference photos with --references DIR_OR_LIST", 2)
    if outputs is None and out is None:
        raise fail("give a run folder with --out RUN_DIR (or --outputs DIR to score existing results)", 2)
    if outputs is not None and not outputs.is_dir():
        raise fail(f"--outputs {outputs}: no such folder", 2)
    kinds = [value(m) for m in method or [MethodName.model]]
    if model and "model" not in kinds:
        raise fail("--model gives the rows of --method model; add --method model", 2)
    if masks is not None and outputs is None:
        raise fail("--masks goes with --outputs (a generating run writes its own masks/)", 2)
    if masks is not None and not masks.is_dir():
        raise fail(f"--masks {masks}: no such folder", 2)
    if outputs is not None and (method or len(model or []) > 1):
        raise fail("--outputs scores existing results; it does not combine with --method or several --model", 2)
    standard = StandardWeights(inception_v3, inception_v1, resnet50, lpips, lpips_backbone, value(lpips_net))
    console = Console(stderr=True, quiet=quiet, highlight=False)
    try:
        spec = EvalTask(value(task), value(mask_mode), jpeg_quality, value(direction))
        settings = SamplerSettings(value(sampler) if sampler else None, sampling_steps,
                                   value(spacing) if spacing else None, temperature=anneal)
        common = dict(n_images=n_images, samples_per_image=samples_per_image, feature_net=value(feature_net),
                      standard=standard, labels=labels, device=value(device), threads=threads,
                      log=lambda msg: console.print(msg, markup=False))
        rows = plan_methods(kinds, model or [], spec.name)
        if outputs is not None:
            result = evaluate(None, spec, references, out or outputs, outputs=outputs, masks=masks, **common)
        else:
            generation = dict(size=size, settings=settings, seed=seed, precision=value(precision),
                              batch_size=batch_size, overwrite=overwrite, force=force)
            with _Progress(console, quiet) as (on_step, on_image):
                if is_comparison(rows, out):
                    common.pop("samples_per_image")
                    result = compare(rows, spec, references, out, samples_per_image=samples_per_image,
                                     grid_photos=grid_photos, on_step=on_step, on_image=on_image,
                                     **generation, **common)
                else:
                    result = evaluate(rows[0].model, spec, references, out, on_step=on_step, on_image=on_image,
                                      **generation, **common)
    except (EvaluationError, ModelNotFoundError, CheckpointError, FeatureWeightsError, ImageInputError,
            OutputError) as e:
        raise fail(str(e))
    if "methods" in result:
        _comparison_summary(result, Path(out))
    else:
        _summary(result, Path(out or outputs))


def value(choice):
    """The string of a choice (Typer passes Enum members, defaults may be plain strings)."""
    return choice.value if isinstance(choice, Enum) else choice


class _Progress:
    """Two rich progress bars (photos M of N, sampling steps) and the callbacks that drive them."""

    def __init__(self, console, quiet: bool):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, disable=quiet,
                                 transient=True)

    def __enter__(self):
        self.progress.__enter__()
        images = self.progress.add_task("photos", total=None)
        steps = self.progress.add_task("sampling", total=None, visible=False)

        def on_step(i: int, n: int) -> None:
            self.progress.update(steps, completed=i, total=n, visible=True)

        def on_image(done: int, total: int, name: str) -> None:
            from rich.markup import escape

            self.progress.update(images, completed=done, total=total, description=f"photos ({escape(str(name))})")

        return on_step, on_image

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)


HEADLINE = ("psnr", "ssim", "fid_effnet_lite0", "fid_inception_v3")


def _comparison_summary(result: dict, folder: Path) -> None:
    """One line per method with the headline numbers, and where the table and grid are."""
    for label, row in result["methods"].items():
        shown = ", ".join(f"{k} {row['metrics'][k]:.4g}" for k in HEADLINE if row["metrics"].get(k) is not None)
        typer.echo(f"{label}: {shown}")
    typer.echo(f"report: {folder / 'metrics.md'}" + (f", grid: {folder / result['grid']}" if result.get("grid") else ""))


def _summary(result: dict, folder: Path) -> None:
    """The headline numbers and where the full report is."""
    metrics = result["metrics"]
    shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if v is not None)
    typer.echo(f"{result['images']['inputs']} inputs scored: {shown}")
    generation = result.get("generation")
    if generation:
        t = generation["timing_s"]
        per_image = f" ({t['generation_per_image']:.2f} s/image)" if t["generation_per_image"] is not None else ""
        typer.echo(f"generation {t['generation']:.1f} s{per_image}, scoring {result['timing_s']['total']:.1f} s")
    else:
        typer.echo(f"scoring {result['timing_s']['total']:.1f} s")
    typer.echo(f"report: {folder / 'metrics.md'}")
