"""`palette export`: a training run (or one checkpoint) → a slim EMA-only .safetensors model file."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .help import in_range
from .options import ANNEAL_RANGE, nonempty_path
from .runner import fail


class StorageDtype(str, Enum):
    fp16 = "fp16"
    bf16 = "bf16"
    fp32 = "fp32"


def export(
    source: Annotated[Path, typer.Argument(help="Run folder (its newest checkpoint), a checkpoint .pt file, or a "
                                                "model .safetensors file (same weights, new --decode defaults).",
                                           metavar="SOURCE", parser=nonempty_path, show_default=False)],
    out: Annotated[Path, typer.Argument(help="Output model file (.safetensors).", metavar="OUT",
                                        parser=nonempty_path, show_default=False)],
    dtype: Annotated[StorageDtype, typer.Option(help="Storage precision of the weights.")] = StorageDtype.fp16,
    anneal: Annotated[Optional[float], typer.Option(
        "--anneal", metavar="T", callback=in_range(*ANNEAL_RANGE),
        help="Chroma-bin colorizers: the annealed-mean temperature the file records as its default, "
             "0.01 to 10.")] = None,
    decode: Annotated[Optional[list[str]], typer.Option(
        "--decode", metavar="KEY=VALUE",
        help="A sampling default the file records: chroma-bin colorizers draw_strength, draw_cells, "
             "draw_segments, draw_temperature, chroma_gain, guide_radius; bridge models steps, time_power, "
             "start (mirror, smooth or exemplar), guess (none or a start to begin part-way from), guess_time, "
             "eta and marginal (1: below eta 1 each state keeps the bridge's own noise level). "
             "E.g. --decode steps=8 (repeatable).")] = None,
    coarse: Annotated[Optional[Path], typer.Option(
        "--coarse", metavar="MODEL", parser=nonempty_path,
        help="A fill model file to hold as the coarse stage of a two-stage fill (with --decode guess=coarse "
             "--decode guess_time=T: the fill starts part-way from its enlarged low-resolution layout).")] = None,
    coarse_size: Annotated[Optional[int], typer.Option(
        "--coarse-size", metavar="N", callback=in_range(8, 16384),
        help="The coarse stage's working size (about N² pixels per window); default: the size it trained at.")] = None,
) -> None:
    """Export the EMA weights with their network config, schedule, tasks and training facts."""
    from ..checkpoint import read_info, storage_dtype
    from ..imageio import ImageInputError, OutputError, path_kind
    from ..outputs import output_problem
    from ..training import ConfigError, export_checkpoint
    from ..training.export import attach_coarse, check_stages

    if out.suffix != ".safetensors":
        raise fail(f"{out}: the output must be a .safetensors file")
    decoding: dict[str, float | str] = {}
    for item in decode or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise fail(f"--decode {item!r}: expected KEY=VALUE")
        try:
            decoding[key.strip()] = float(value)
        except ValueError:  # a word: a named setting (a bridge's fill start); the process checks it
            decoding[key.strip()] = value.strip()
    try:
        kind = path_kind(source)
    except ImageInputError as e:
        raise fail(str(e))
    if kind not in ("file", "folder"):
        raise fail(f"{source}: " + ("no such run folder or checkpoint" if kind == "missing" else
                                    f"is {kind}, not a run folder or checkpoint"))
    problem = output_problem(out)
    if problem:
        raise fail(f"{out}: {problem}")
    if coarse_size is not None and coarse is None:
        raise fail("--coarse-size: give the coarse stage with --coarse")
    if coarse is not None:
        try:
            coarse_kind = path_kind(coarse)
        except ImageInputError as e:
            raise fail(str(e))
        if coarse_kind != "file":
            raise fail(f"{coarse}: " + ("no such coarse model file" if coarse_kind == "missing" else
                                        f"is {coarse_kind}, not a model file"))
        if coarse.resolve() == out.resolve():
            raise fail(f"{out}: the output may not be the coarse model file")
    # written beside OUT first and moved onto it only when whole and usable, so a refusal leaves OUT as it was
    partial = out.with_name(f".{out.stem}.partial.safetensors")
    try:
        path = export_checkpoint(source, partial, dtype=dtype.value, temperature=anneal, decoding=decoding)
        if coarse is not None:
            path = attach_coarse(path, coarse, path, coarse_size)
        check_stages(path)
        os.replace(path, out)
        path = out
    except (ConfigError, ValueError, OutputError) as e:
        raise fail(str(e).replace(str(partial), str(out)))
    finally:
        partial.unlink(missing_ok=True)
    info = read_info(path)
    typer.echo(f"{path}: {', '.join(info.tasks)}; {info.training.get('steps')} steps, "
               f"{path.stat().st_size / 1e6:.1f} MB ({storage_dtype(path)})")
