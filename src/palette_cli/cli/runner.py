"""The batch loop every image command shares: inputs → outputs, progress, skip/overwrite, errors.

A bad file is reported and skipped, the rest continue, and the command exits non-zero at the end
when any file failed. Outputs are written atomically, so Ctrl-C leaves no partial file and a re-run
finishes what is missing.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .options import RunOptions

err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line to stderr and return the Exit to raise."""
    err_console.print(f"[bold red]Error:[/] {message}", markup=True, soft_wrap=True)
    return typer.Exit(code)


@dataclass
class Job:
    """One input file and the output files it should produce (one per sample)."""

    source: Path
    rel: Path
    outputs: list[Path] = field(default_factory=list)


def plan_jobs(inputs: list[str], opts: RunOptions, suffix: str) -> list[Job]:
    """Expand inputs and decide output names (``_s0``, ``_s1``… when several samples are asked for)."""
    from ..imageio import ImageInputError, expand_inputs, plan_outputs

    try:
        pairs = expand_inputs(inputs, opts.recursive)
        plan = plan_outputs(pairs, opts.output, suffix, None)
    except ImageInputError as e:
        raise fail(str(e), 2)
    jobs = []
    for (src, rel), (_, base) in zip(pairs, plan):
        if opts.num_samples == 1:
            outs = [base]
        else:
            outs = [base.with_name(f"{base.stem}_s{k}{base.suffix}") for k in range(opts.num_samples)]
        jobs.append(Job(src, rel, outs))
    return jobs


def load_pipeline(opts: RunOptions, task: str | None = None):
    """Resolve ``--model`` (default: ``task``'s) and build the pipeline; user-facing failures become one line."""
    from ..checkpoint import CheckpointError
    from ..hub import ModelNotFoundError, resolve_model
    from ..pipeline import Pipeline

    try:
        path, model_id = resolve_model(opts.model, task)
        return Pipeline.from_file(path, device=opts.device, precision=opts.precision, model_id=model_id,
                                  resolution=opts.resolution, batch_size=opts.batch_size)
    except (ModelNotFoundError, CheckpointError, ValueError) as e:
        raise fail(str(e))


def sampler_settings(opts: RunOptions):
    from ..pipeline import SamplerSettings

    return SamplerSettings(opts.sampler, opts.sampling_steps, opts.spacing)


Process = Callable[..., list]


def run_batch(task: str, inputs: list[str], opts: RunOptions, suffix: str, process: Process,
              prepare: Callable[[Job, object], object] | None = None) -> None:
    """Run ``process(pipe, image, settings, generator, on_step, extra)`` for every input and save results.

    ``prepare(job, image)`` may load per-file extras (e.g. a mask) before the model runs; it raises
    ImageInputError for a bad one. ``process`` returns one PIL image per sample.
    """
    import torch

    from ..imageio import ImageInputError, OutputError, load_image, save_image_atomic

    jobs = plan_jobs(inputs, opts, suffix)
    todo = [j for j in jobs if opts.overwrite or not all(o.exists() for o in j.outputs)]
    skipped = len(jobs) - len(todo)
    console = Console(stderr=True, quiet=opts.quiet)
    if skipped:
        console.print(f"{skipped} of {len(jobs)} output(s) exist already; skipping them (use --overwrite to redo).")
    if not todo:
        return
    pipe = load_pipeline(opts, task)
    try:
        settings = pipe.process.resolve(sampler_settings(opts))
    except ValueError as e:
        raise fail(str(e))
    seed = opts.seed if opts.seed is not None else secrets.randbelow(2**31)
    failures: list[tuple[Path, str]] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=opts.quiet, transient=False) as progress:
        files = progress.add_task("images", total=len(todo))
        steps = progress.add_task("sampling", total=settings.steps, visible=False)

        def on_step(i: int, n: int) -> None:
            progress.update(steps, completed=i, total=n, visible=True)

        for job in todo:
            progress.update(steps, description=f"sampling {job.rel}", completed=0)
            try:
                image = load_image(job.source, allow_huge=opts.allow_huge)
                extra = prepare(job, image) if prepare else None
                generator = torch.Generator().manual_seed(seed)
                results = process(pipe, image, settings, generator, on_step, extra)
                meta = pipe.provenance(task, settings, seed)
                meta["source"] = job.source.name
                for out, result in zip(job.outputs, results):
                    save_image_atomic(result, out, metadata=meta, overwrite=True,
                                      icc_profile=image.info.get("icc_profile"))
            except (ImageInputError, OutputError, ValueError) as e:
                message = str(e) if isinstance(e, (ImageInputError, OutputError)) else f"{job.source}: {e}"
                failures.append((job.source, message))
                err_console.print(f"failed: {message}", markup=False, soft_wrap=True)
            progress.advance(files)
    done = len(todo) - len(failures)
    console.print(f"{done} written, {skipped} skipped, {len(failures)} failed (seed {seed}).")
    if failures:
        raise fail(f"{len(failures)} of {len(todo)} input(s) failed: " + ", ".join(str(p) for p, _ in failures))


def interrupted() -> None:
    """Ctrl-C: atomic writes leave no partial file; say so and exit like a shell would."""
    err_console.print("Interrupted; finished outputs are kept, re-run to do the rest.")
    sys.exit(130)
