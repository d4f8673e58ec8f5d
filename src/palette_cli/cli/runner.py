"""The batch loop every image command shares: inputs → outputs, progress, skip/overwrite, errors.

A bad file is reported in one line and skipped, the rest continue, and the command exits non-zero at
the end when any file failed; a failure that is not the user's (a bug) says so, and ``PALETTE_DEBUG=1``
prints its traceback. Output locations are checked before any work. Each output is claimed before it is
worked on, so concurrent runs over the same files split the work. Outputs are written atomically, so
Ctrl-C leaves no partial file and a re-run finishes what is missing (and clears the temporaries a killed
run left behind).

Several processes can share a batch (:mod:`palette_cli.scale.sharding`): under torchrun each rank takes its part
on its own device and rank 0 prints the merged summary; ``--shard K/N`` takes one part without torchrun.
Each file's seed comes from ``--seed`` and its path relative to its input root, so the split does not
change any result.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Callable

import typer
from rich.console import Console
from rich.markup import escape

from .options import RunOptions

err_console = Console(stderr=True, highlight=False)
DEBUG_ENV = "PALETTE_DEBUG"


def debugging() -> bool:
    """``PALETTE_DEBUG=1``: print the traceback of every failure."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def fail(message: str, code: int = 1, speak: bool = True) -> typer.Exit:
    """Print one error line to stderr and return the Exit to raise (``message`` is text, never markup).

    ``speak=False`` exits without the line: for errors every torchrun rank meets alike, told by rank 0.
    """
    if speak:
        err_console.print(f"[bold red]Error:[/] {escape(message)}", markup=True, soft_wrap=True)
    return typer.Exit(code)


@dataclass
class Job:
    """One input file and the output files it should produce (one per sample)."""

    source: Path
    rel: Path
    outputs: list[Path] = field(default_factory=list)


def plan_jobs(inputs: list[str], opts: RunOptions, suffix: str, speak: bool = True) -> list[Job]:
    """Expand inputs and decide output names (``_s0``, ``_s1``… when several samples are asked for)."""
    from ..imageio import ImageInputError, expand_inputs, plan_outputs

    try:
        pairs = expand_inputs(inputs, opts.recursive)
        plan = plan_outputs(pairs, opts.output, suffix, opts.ext, folder=opts.output_folder)
    except ImageInputError as e:
        raise fail(str(e), 2, speak)
    jobs = []
    for (src, rel), (_, base) in zip(pairs, plan):
        if opts.num_samples == 1:
            outs = [base]
        else:
            outs = [base.with_name(f"{base.stem}_s{k}{base.suffix}") for k in range(opts.num_samples)]
        jobs.append(Job(src, rel, outs))
    return jobs


def load_pipeline(opts: RunOptions, task: str):
    """The model of ``--model`` (default: ``task``'s), refused in one line before it is loaded when it may not
    run ``task``; user-facing failures become one line."""
    from ..models import open_model

    try:
        return open_model(opts.model, task, force=opts.force, classical=False, device=opts.device,
                          precision=opts.precision, resolution=opts.resolution, batch_size=opts.batch_size)
    except ValueError as e:  # unknown or unreadable models, refused tasks, bad settings: all one line
        raise fail(str(e))


def sampler_settings(opts: RunOptions):
    from ..pipeline import SamplerSettings

    return SamplerSettings(opts.sampler, opts.sampling_steps, opts.spacing, temperature=opts.anneal)


#: What a command does with one loaded image: ``(pipe, image, settings, generator, on_step, extra) -> images``.
PerImage = Callable[..., list]
#: ``check(job, (width, height))``: refuse a file's own settings (a box off the image, a mask of another size,
#: a result too large) from its header's size, before the model loads; raises ImageInputError or ValueError.
Check = Callable[[Job, tuple[int, int]], object]


def describe_failure(source: Path, error: BaseException) -> str:
    """One line for a file that failed: the user's problem as it is, anything else marked as a bug."""
    import torch

    from ..imageio import ImageInputError, OutputError, display_name

    if isinstance(error, (ImageInputError, OutputError)):
        return str(error)
    if isinstance(error, OSError) and error.strerror:  # the file concerned and the reason, never '[Errno 28]'
        return f"{display_name(error.filename) if error.filename else display_name(source)}: {error.strerror}"
    text = " ".join((str(error).splitlines() or [""])[0].split())
    if isinstance(error, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        text = "out of memory" + (f" ({text})" if text else "")
    elif not isinstance(error, (ValueError, OSError)):
        hint = "" if debugging() else f"; run with {DEBUG_ENV}=1 for its traceback"
        text = f"internal error, please report it ({type(error).__name__}: {text}){hint}"
    return f"{display_name(source)}: {text}"


def run_batch(task: str, inputs: list[str], opts: RunOptions, suffix: str, process: PerImage,
              prepare: Callable[[Job, tuple[int, int]], object] | None = None, check: Check | None = None) -> None:
    """Run ``process(pipe, image, settings, generator, on_step, extra)`` for every input and save results.

    ``prepare(job, size)`` may load per-file extras (e.g. a mask) for an image of ``size``; it raises
    ImageInputError for a bad one. It also serves as the ``check`` made before the model loads (from the
    size in the file's header) unless another is given. ``process`` returns one PIL image per sample.
    SIGTERM and SIGHUP stop the batch as Ctrl-C does: finished outputs kept, claims released.
    """
    try:
        with stop_on_signals():
            _run_batch(task, inputs, opts, suffix, process, prepare, check or prepare)
    except KeyboardInterrupt as stop:
        interrupted(stop)


class Stopped(KeyboardInterrupt):
    """The process was asked to stop by a signal (SIGTERM, SIGHUP): handled as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Stopped` for the duration (main thread only), so a batch that
    is killed politely releases its claims and removes its temporaries on the way out."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    saved = {n: signal.signal(getattr(signal, n), stop) for n in names}
    try:
        yield
    finally:
        for n, handler in saved.items():
            signal.signal(getattr(signal, n), handler)


@dataclass
class Share:
    """Which part of a batch this process does: part ``index`` of ``count`` (``--shard`` and torchrun's ranks)."""

    index: int = 0
    count: int = 1
    shard: tuple[int, int] | None = None

    def label(self) -> str:
        return f"shard {self.shard[0]}/{self.shard[1]}" if self.shard else ""

    def of(self, jobs: list[Job]) -> list[Job]:
        """This part's jobs, the parts balanced by pixel count (from the files' headers)."""
        if self.count == 1:
            return jobs
        from ..imageio import header_pixels
        from ..scale.sharding import balanced_parts

        weights = [header_pixels(job.source) or 1 for job in jobs]
        return [job for job, part in zip(jobs, balanced_parts(weights, self.count)) if part == self.index]


@dataclass
class Tally:
    """What one process did with its share of a batch; torchrun's ranks send theirs to rank 0."""

    share: int = 0
    written: int = 0
    skipped: int = 0
    busy: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (file, message)
    sampled: bool = False


INFERENCE_TIMEOUT = timedelta(days=7)  # how long a rank that is done waits for the slowest one


def _run_batch(task: str, inputs: list[str], opts: RunOptions, suffix: str, process: PerImage,
               prepare: Callable[[Job, tuple[int, int]], object] | None, check: Check | None) -> None:
    from ..scale.distributed import (broadcast_object, close, dist_from_env, gather_objects, init_distributed,
                               split_cpu_threads)
    from ..scale.sharding import parse_shard

    d = dist_from_env()
    share = Share()
    if opts.shard is not None:
        try:
            share.shard = parse_shard(opts.shard)
        except ValueError as e:
            raise fail(str(e), 2, d.main)
    jobs = plan_jobs(inputs, opts, suffix, d.main)
    k, n = share.shard or (0, 1)
    share.index, share.count = k * d.world + d.rank, n * d.world
    if d.world > 1:
        try:
            d, device = init_distributed(opts.device, backend="gloo", timeout=INFERENCE_TIMEOUT)
        except ValueError as e:
            raise fail(str(e))
        if device.type == "cpu":
            split_cpu_threads(d)
        opts = replace(opts, device=str(device))
    console = Console(stderr=True, quiet=opts.quiet or not d.main, highlight=False)
    if not opts.recursive:
        from ..imageio import subfolders_left_out

        left_out = subfolders_left_out(inputs)
        if left_out:
            console.print(f"{left_out} sub-folder(s) holding images left out; -r (--recursive) takes them too.",
                          markup=False)
    try:
        seed = broadcast_object(d, opts.seed if opts.seed is not None else secrets.randbelow(2**31))
        mine = share.of(jobs)
        if share.count > 1:
            who = share.label() or f"{d.world} processes"
            console.print(f"{who}: {len(jobs)} input(s) split by pixel count into {share.count} parts; "
                          f"this process takes {len(mine)}.")
        tally = _run_share(task, mine, opts, process, prepare, check, seed, console, tell_skipped=d.world == 1)
        tallies = gather_objects(d, tally)
    finally:
        close(d)
    if d.main:
        _report(tallies, share, seed, console)


def _run_share(task: str, jobs: list[Job], opts: RunOptions, process: PerImage, prepare, check: Check | None,
               seed: int, console: Console, tell_skipped: bool) -> Tally:
    """Run this process's jobs: skip finished outputs, check where outputs go and each file's settings,
    claim, sample, write."""
    from ..imageio import display_name, header_size
    from ..outputs import OUTPUT_OVERHEAD, claim, output_problem
    from .progress import BatchProgress

    tally = Tally(share=len(jobs))
    todo = [j for j in jobs if opts.overwrite or not all(o.exists() for o in j.outputs)]
    tally.skipped = len(jobs) - len(todo)
    if tally.skipped and tell_skipped:
        done = [j for j in jobs if j not in todo]
        console.print(f"{tally.skipped} of {len(jobs)} output(s) exist already; skipping them (use --overwrite to "
                      f"redo).{settings_changes(done, requested_settings(task, opts))}", markup=False)

    def failed(job: Job, message: str) -> None:
        tally.failures.append((display_name(job.source), message))
        err_console.print(f"failed: {message}", markup=False, soft_wrap=True)

    # Before any work: where outputs go, room on their disk, and the file's own settings against its size.
    for job in list(todo):
        size = header_size(job.source)
        needed = len(job.outputs) * (3 * size[0] * size[1] + OUTPUT_OVERHEAD) if size else OUTPUT_OVERHEAD
        problem = next((f"{display_name(o)}: {p}" for o in job.outputs if (p := output_problem(o, needed))), None)
        if problem is None and check is not None and size is not None:
            try:
                check(job, size)
            except ValueError as e:  # ImageInputError included
                problem = describe_failure(job.source, e)
        if problem:
            failed(job, problem)
            todo.remove(job)
    if todo:
        tally.sampled = True
        pipe = load_pipeline(opts, task)
        try:
            settings = pipe.process.resolve(sampler_settings(opts))
        except ValueError as e:
            raise fail(str(e))
        if opts.num_samples > 1 and pipe.process.is_deterministic(settings):
            raise fail(f"-n {opts.num_samples}: with these settings this model's sampler adds no randomness, so the "
                       "samples would be copies of one result; use -n 1, or more --sampling-steps for varied samples")
        with BatchProgress(console, len(todo), opts.quiet) as progress:
            for job in todo:
                progress.start(display_name(job.rel))
                try:
                    with claim(job.outputs[0]) as mine:
                        if not mine:
                            tally.busy += 1
                            progress.finish(sampled=False)
                        elif not opts.overwrite and all(o.exists() for o in job.outputs):
                            tally.skipped += 1  # another run wrote it meanwhile
                            progress.finish(sampled=False)
                        else:
                            _run_job(job, task, opts, pipe, settings, seed, process, prepare, progress.step)
                            progress.finish(sampled=True)
                except Exception as e:  # one file's failure, whatever it is, must not end the batch
                    progress.failed()
                    if debugging():
                        traceback.print_exception(e)
                    failed(job, describe_failure(job.source, e))
    tally.written = len(jobs) - tally.skipped - tally.busy - len(tally.failures)
    return tally


def requested_settings(task: str, opts: RunOptions) -> dict[str, str]:
    """What this run asks for, under the keys outputs record them (:meth:`Pipeline.provenance`): the model
    (by file hash where it is a local file), and every other setting the user gave; defaults of the
    sampler that only the model knows are left out (it is not loaded yet)."""
    wanted = {key: str(value) for key, value in (("seed", opts.seed), ("sampler", opts.sampler),
                                                  ("sampling_steps", opts.sampling_steps), ("spacing", opts.spacing),
                                                  ("resolution", opts.resolution)) if value is not None}
    if opts.anneal is not None:
        wanted["temperature"] = f"{opts.anneal:g}"
    wanted.update(opts.task_options)
    model, model_hash = model_identity(opts.model, task)
    wanted["model"] = model
    if model_hash:
        wanted["model_hash"] = model_hash
    return wanted


def model_identity(spec: str | None, task: str) -> tuple[str, str | None]:
    """(the model as outputs record it, the short hash of its file where it is on this machine), found
    without loading or downloading anything."""
    from ..checkpoint import file_hash
    from ..hub import default_model, hub_ref_valid, parse_hub_ref, shipped_models

    shipped = shipped_models()
    spec = spec or default_model(task, shipped)
    try:
        if spec in shipped:
            return spec, file_hash(shipped[spec])
        path = Path(spec).expanduser()
        if path.is_file():
            return str(path), file_hash(path)
    except (OSError, ValueError):
        return spec, None
    ref = parse_hub_ref(spec)
    return (ref.display() if ref and hub_ref_valid(ref) else spec), None


def settings_changes(jobs: list[Job], wanted: dict[str, str]) -> str:
    """A sentence for the skip line when existing outputs were made with other settings than ``wanted``
    (read from their metadata): how many, and what differs in the first of them; '' when none does."""
    from ..imageio import ImageInputError, read_metadata

    changed: list[list[str]] = []
    for job in jobs:
        try:
            made = read_metadata(job.outputs[0])
        except (ImageInputError, OSError):
            continue  # no readable record: nothing to compare
        differs = []
        for key, value in wanted.items():
            if key == "model" and "model_hash" in wanted and "model_hash" in made:
                continue  # the file's hash decides
            if key in made and made[key] != value:
                shown = ("model", made.get("model", "?"), wanted["model"]) if key == "model_hash" else \
                    (key, made[key], value)
                differs.append(f"{shown[0]} {shown[1]}, now {shown[2]}")
        if differs:
            changed.append(differs)
    if not changed:
        return ""
    were = "was" if len(changed) == 1 else "were"
    return (f" {len(changed)} of them {were} made with other settings than this run asks for "
            f"({'; '.join(changed[0])}{'; ...' if len(changed) > 1 else ''}); --overwrite remakes them.")


def _report(tallies: list[Tally], share: Share, seed: int, console: Console) -> None:
    """The summary of a batch (every rank's, merged), and a non-zero exit when any file failed."""
    written, skipped, busy = (sum(getattr(t, k) for t in tallies) for k in ("written", "skipped", "busy"))
    failures = [f for t in tallies for f in t.failures]
    total = sum(t.share for t in tallies)
    label = share.label()
    other = f", {busy} left to another run working on them" if busy else ""
    ranks = f" across {len(tallies)} ranks" if len(tallies) > 1 else ""
    console.print(f"{label + ': ' if label else ''}{written} written, {skipped} skipped{other}, "
                  f"{len(failures)} failed{ranks}" + (f" (seed {seed})." if any(t.sampled for t in tallies) else "."))
    if failures:
        where = f" of {label}" if label else ""
        raise fail(f"{len(failures)} of {total} input(s){where} failed: " + ", ".join(name for name, _ in failures))


def _run_job(job: Job, task: str, opts: RunOptions, pipe, settings, seed: int, process: PerImage, prepare,
             on_step) -> None:
    """One input, its output claimed: clear leftovers, load, check room on disk, sample, write."""
    import torch

    from ..imageio import display_name, load_image, save_image_atomic
    from ..outputs import OUTPUT_OVERHEAD, check_free_space, remove_stale_temporaries
    from ..scale.sharding import file_seed

    for out in job.outputs:
        remove_stale_temporaries(out)
    image = load_image(job.source, allow_huge=opts.allow_huge)
    check_free_space(job.outputs[0], len(job.outputs) * (3 * image.width * image.height + OUTPUT_OVERHEAD))
    extra = prepare(job, image.size) if prepare else None
    generator = torch.Generator().manual_seed(file_seed(seed, job.rel))
    results = process(pipe, image, settings, generator, on_step, extra)
    meta = pipe.provenance(task, settings, seed)
    meta.update(opts.task_options)
    meta["seed_path"] = display_name(job.rel.as_posix())  # the file's seed comes from the seed and this path
    meta["source"] = display_name(job.source.name)
    for out, result in zip(job.outputs, results):
        save_image_atomic(result, out, metadata=meta, overwrite=True, icc_profile=image.info.get("icc_profile"))


def interrupted(stop: BaseException | None = None) -> None:
    """Ctrl-C (or SIGTERM / SIGHUP): atomic writes leave no partial file; say so and exit like a shell would."""
    import signal

    signum = stop.signum if isinstance(stop, Stopped) else signal.SIGINT
    what = "Interrupted" if signum == signal.SIGINT else f"Stopped by {signal.Signals(signum).name}"
    err_console.print(f"{what}; finished outputs are kept, re-run to do the rest.")
    sys.exit(128 + signum)
