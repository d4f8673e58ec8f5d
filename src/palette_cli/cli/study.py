"""`palette study`: the paper's human 2AFC study as a static page (make) and the fool rates of its answers (score)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .help import PaletteGroup, command, in_range
from .options import nonempty_path
from .runner import err_console, fail

app = typer.Typer(cls=PaletteGroup, help="The paper's two-alternative forced-choice study (\"fool rate\"): a static page for "
                       "people to answer, and the scoring of their answers.", no_args_is_help=True)


@command(app, "make")
def make(
    eval_dirs: Annotated[list[Path], typer.Argument(
        metavar="RUN_FOLDERS", help="Run folders of palette eval (or folders holding them).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for index.html and its images.",
                                      parser=nonempty_path, metavar="FOLDER", show_default=False)],
    seconds: Annotated[float, typer.Option(help="How long each pair is shown.")] = 3.0,
    method: Annotated[Optional[list[str]], typer.Option(
        metavar="LABEL", help="Only these methods (labels of the evaluation's rows; repeatable). Default: all.",
        show_default=False)] = None,
    photos: Annotated[Optional[int], typer.Option(
        metavar="N", callback=in_range(1), help="Only the first N photos of each run.")] = None,
    title: Annotated[str, typer.Option(help="The page's title.")] = "Which photo is from a camera?",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a folder that is not empty.")] = False,
) -> None:
    """Write a self-contained study page (one HTML file and its images; open it from disk, no server)."""
    from ..imageio import OutputError
    from ..study import StudyError, make_study

    try:
        manifest = make_study(eval_dirs, out, seconds=seconds, methods=method, photos=photos, title=title,
                              overwrite=overwrite)
    except (StudyError, OutputError) as e:
        raise fail(str(e))
    groups: dict[tuple[str, str], int] = {}
    for trial in manifest["trials"]:
        groups[(trial["task"], trial["method"])] = groups.get((trial["task"], trial["method"]), 0) + 1
    typer.echo(f"{len(manifest['trials'])} trials ({', '.join(f'{t} {m}: {n}' for (t, m), n in groups.items())}), "
               f"{manifest['display_seconds']:g} s each; study {manifest['study_id']}")
    typer.echo(f"page: {out / 'index.html'}")


@command(app, "score")
def score(
    answers: Annotated[list[Path], typer.Argument(metavar="ANSWERS", help="Answers files downloaded from the study page.",
                                                  show_default=False)],
    study: Annotated[Optional[Path], typer.Option(
        help="The study folder (or its study.json): answers must be to its trials.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", parser=nonempty_path, metavar="FILE",
                                      help="JSON file for the fool rates.")] = Path("fool_rates.json"),
) -> None:
    """Merge participants' answers: the fool rate per task and method with a 95% confidence interval.
    Malformed or mismatched files are refused, one line each, and the exit code is then non-zero."""
    import json

    from ..imageio import OutputError, write_text_atomic
    from ..study import StudyError, rates_markdown, score_answers

    try:
        result, refused = score_answers(answers, study=study)
    except StudyError as e:
        raise fail(str(e))
    for line in refused:
        err_console.print(f"[bold red]Refused:[/] {line}", markup=True, soft_wrap=True, highlight=False)
    if not result["rates"]:
        raise fail("no answers to score")
    try:
        write_text_atomic(out, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    except OutputError as e:
        raise fail(str(e))
    typer.echo(f"{len(result['files'])} participant(s), study {result['study_id']}; {result['interval']}\n")
    typer.echo(rates_markdown(result))
    typer.echo(f"written: {out}")
    if refused:
        raise typer.Exit(1)
