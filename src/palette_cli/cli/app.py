"""The `palette` command. Command modules import torch and friends inside their bodies so --help is instant."""

from __future__ import annotations

import typer

from . import colorize, inpaint, models, panorama, restore, uncrop

app = typer.Typer(
    name="palette",
    help="Restore and edit photos with Palette-style image-to-image diffusion models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command()(colorize.colorize)
app.command()(inpaint.inpaint)
app.command()(uncrop.uncrop)
app.command()(panorama.panorama)
app.command()(restore.restore)
app.command()(models.models)


def _register_optional() -> None:
    """Commands whose modules other parts of the package provide."""
    import importlib

    for module, name in (("convert", "convert"), ("train", "train"), ("export", "export"), ("evaluate", "eval_")):
        try:
            mod = importlib.import_module(f"palette_cli.cli.{module}")
        except ModuleNotFoundError:
            continue
        app.command(name.rstrip("_"))(getattr(mod, name))
    try:
        from .data import app as data_app
    except ModuleNotFoundError:
        return
    app.add_typer(data_app, name="data")


_register_optional()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        from .runner import interrupted

        interrupted()
