"""The `palette` command. Command modules import torch and friends inside their bodies so --help is instant."""

from __future__ import annotations

import typer

from . import colorize, convert, evaluate, export, inpaint, models, panorama, restore, train, uncrop
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

for name, function in (("colorize", colorize.colorize), ("inpaint", inpaint.inpaint), ("uncrop", uncrop.uncrop),
                       ("panorama", panorama.panorama), ("restore", restore.restore), ("models", models.models),
                       ("convert", convert.convert), ("train", train.train), ("export", export.export),
                       ("eval", evaluate.eval_)):
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
