"""`palette models`: list the models (shipped, cached from the Hub, classical), or show one model's config."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from .runner import fail


def models(model: Annotated[Optional[str], typer.Argument(
        help="A model name, file or Hub repo to describe (default: list all).", show_default=False)] = None) -> None:
    """List shipped models (each command's default marked), Hub models in the local cache and the classical
    methods of palette eval, or print a model's config as JSON."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..baselines import BASELINES
    from ..checkpoint import CheckpointError, file_hash, read_info
    from ..defaults import COMMAND_TASKS
    from ..hub import ModelNotFoundError, default_model, resolve_model, shipped_models

    console = Console()
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
    table = Table(title="palette models")
    for col in ("name", "tasks", "resolution", "size", "source"):
        table.add_column(col)
    shipped = shipped_models()
    defaults = {command: default_model(command, shipped) for command in COMMAND_TASKS}
    for name, path in shipped.items():
        try:
            info = read_info(path)
            tasks, res = ", ".join(info.tasks), str(info.net.get("image_size", "?"))
        except CheckpointError as e:
            tasks, res = f"unreadable: {e}", "?"
        commands = [command for command, default in defaults.items() if default == name]
        label = name + (f" (default for {', '.join(commands)})" if commands else "")
        table.add_row(escape(label), escape(tasks), res, f"{path.stat().st_size / 1e6:.1f} MB", "shipped")
    for repo, files in _cached_hub_models():
        for f in files:
            table.add_row(escape(f"hf:{repo}/{f}"), "", "", "", "Hugging Face cache")
    for name, method in BASELINES.items():
        table.add_row(name, ", ".join(method.tasks), "any", "", "classical (palette eval --method)")
    console.print(table)


def _cached_hub_models() -> list[tuple[str, list[str]]]:
    """Hub repos in the local cache holding .safetensors files (reads the cache only, no network)."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:  # no cache folder yet, or an unreadable one: nothing to list
        return []
    out = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        files = sorted({f.file_name for rev in repo.revisions for f in rev.files if f.file_name.endswith(".safetensors")})
        if files:
            out.append((repo.repo_id, files))
    return out
