"""The `palette` command. Command modules import torch and friends inside their bodies so --help is instant."""

from __future__ import annotations

import importlib

import typer

from ..defaults import TASK_CATALOG
from . import convert, evaluate, export, models, train
from .data import app as data_app
from .help import PaletteGroup, command
from .study import app as study_app

app = typer.Typer(cls=PaletteGroup, 
    name="palette",
    help="Restore and edit photos with Palette-style image-to-image diffusion models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# The image commands come from the task catalogue: each is a module of this package with a function of its name.
for name in (name for entry in TASK_CATALOG for name in entry.commands):
    command(app, name)(getattr(importlib.import_module(f".{name}", __package__), name))
for name, function in (("models", models.models), ("convert", convert.convert), ("train", train.train),
                       ("export", export.export), ("eval", evaluate.eval_)):
    command(app, name)(function)
app.add_typer(data_app, name="data")
app.add_typer(study_app, name="study")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        from .runner import interrupted

        interrupted()


if __name__ == "__main__":
    main()
