"""`palette models`: list the models (shipped, cached from the Hub, classical), or show one model's config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .runner import fail

COLUMNS = ("name", "tasks", "resolution", "sampling", "size", "source")


def models(model: Annotated[Optional[str], typer.Argument(
        help="A model name, file or Hub repo to describe (default: list all).", metavar="MODEL",
        show_default=False)] = None) -> None:
    """List shipped models (each command's default marked), Hub models in the local cache and the classical
    methods of palette eval, or print a model's config as JSON."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..baselines import BASELINES
    from ..checkpoint import CheckpointError, file_hash, read_info
    from ..defaults import COMMAND_TASKS
    from ..hub import ModelNotFoundError, default_model, resolve_model, shipped_models

    if model in BASELINES:
        method = BASELINES[model]
        doc = {"model": model, "classical": True, "tasks": list(method.tasks), "description": method.description,
               "parameters": dict(method.parameters)}
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    if model is not None:
        try:
            path, model_id = resolve_model(model)
            info = read_info(path)
        except (ModelNotFoundError, CheckpointError) as e:
            raise fail(str(e))
        doc = {"model": model_id, "file": str(path), "sha256_12": file_hash(path), **info.to_metadata()}
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    shipped = shipped_models()
    defaults = {command: default_model(command, shipped) for command in COMMAND_TASKS}
    rows = []
    for name, path in shipped.items():
        commands = [command for command, default in defaults.items() if default == name]
        label = name + (f" (default for {', '.join(commands)})" if commands else "")
        rows.append((label, *_describe(path, read_info, CheckpointError), "shipped"))
    for repo, filename, path in _cached_hub_models():
        rows.append((f"hf:{repo}/{filename}", *_describe(path, read_info, CheckpointError), "Hugging Face cache"))
    for name, method in BASELINES.items():
        rows.append((name, ", ".join(method.tasks), "any", "", "", "classical (palette eval --method)"))
    console = Console()
    # Names are never cut: piped output is as wide as its longest row, a narrow terminal wraps them.
    needed = sum(max(len(col), *(len(r[k]) for r in rows)) + 3 for k, col in enumerate(COLUMNS)) + 1 if rows else 0
    if not console.is_terminal and needed > console.width:
        console = Console(width=needed)
    table = Table(title="palette models")
    for col in COLUMNS:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)


def _describe(path: Path, read_info, error: type[Exception]) -> tuple[str, str, str, str]:
    """(tasks, resolution, default sampling, size) of a model file, from its header; an unreadable one says why."""
    try:
        size = f"{path.stat().st_size / 1e6:.1f} MB"
    except OSError:
        size = "?"
    try:
        info = read_info(path)
    except error as e:
        return f"unreadable: {e}", "?", "?", size
    return ", ".join(info.tasks) or "—", str(info.net.get("image_size", "?")), _sampling(info), size


def _sampling(info) -> str:
    """The sampler and step count a model file samples with by default ("?" if this version cannot say)."""
    from ..diffusion.process import SamplerSettings
    from ..diffusion.registry import process_from_metadata

    try:
        described = process_from_metadata(info.extra, info.training, info.schedule).describe(SamplerSettings())
    except ValueError:
        return "?"
    steps = described.get("sampling_steps")
    return described["sampler"] + (f", {steps} step{'' if steps == '1' else 's'}" if steps else "")


def _cached_hub_models() -> list[tuple[str, str, Path]]:
    """(repo, file name, local file) of the .safetensors files of Hub repos in the local cache (reads the
    cache only, no network), newest revision's file first where a file has several."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:  # no cache folder yet, or an unreadable one: nothing to list
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        files: dict[str, Path] = {}
        for rev in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            for f in rev.files:
                if f.file_name.endswith(".safetensors"):
                    files.setdefault(f.file_name, Path(f.file_path))
        out.extend((repo.repo_id, name, path) for name, path in sorted(files.items()))
    return out
