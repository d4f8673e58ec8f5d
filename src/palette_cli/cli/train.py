"""`palette train`: train or resume a model from a config file plus ``--set key=value`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import nonempty_path
from .runner import fail


def train(
    config: Annotated[Path, typer.Argument(help="Training config (.toml, .json, or .yaml with PyYAML).",
                                           metavar="CONFIG", parser=nonempty_path, show_default=False)],
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a config value: --set optim.lr=1e-4 --set data.size=128 (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in the run folder.")] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", metavar="FOLDER", parser=nonempty_path, help="Run folder (default: runs/<config name>).")]
    = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Plain log lines instead of a progress bar (for log files).")] = False,
) -> None:
    """Train a Palette model; checkpoints, metrics.jsonl and validation grids go to the run folder."""
    import warnings

    with warnings.catch_warnings():
        warnings.showwarning = _warning_line
        _train(config, set_ or [], resume, out, quiet)


def _train(config: Path, set_: list[str], resume: bool, out: Path | None, quiet: bool) -> None:
    import os

    from ..imageio import OutputError, display_name
    from ..outputs import folder_problem
    from ..training import ConfigError, Trainer, load_config

    try:
        cfg = load_config(config, set_)
        run_dir = out or Path("runs") / config.stem
        problem = folder_problem(run_dir)
        if problem:
            raise ConfigError(f"run folder {display_name(run_dir)}: {problem}")
        if not resume and any((run_dir / "checkpoints").glob("step-*.pt")):
            raise ConfigError(f"{run_dir} already holds checkpoints; pass --resume to continue or --out elsewhere")
        trainer = Trainer(cfg, run_dir, resume=resume)
    except (ConfigError, OutputError) as e:
        raise fail(str(e))

    import signal

    signal.signal(signal.SIGTERM, trainer.request_stop)
    if quiet or int(os.environ.get("RANK", "0")) != 0:
        _run_quiet(trainer)
        return
    _run_with_progress(trainer, cfg.steps)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings of a training run (an unreadable image skipped...) as one line each, not Python's two."""
    from .runner import err_console

    err_console.print(f"warning: {message}", markup=False, soft_wrap=True)


def _run_quiet(trainer) -> None:
    """Plain lines instead of a bar (for logs): one per log interval, validation and checkpoint."""
    import os

    def hook(event: str, r: dict) -> None:
        if event == "log":
            line = (f"step {r['step']} loss {r['loss']:.4f} lr {r['lr']:.2e} {r['images_per_s']:.1f} img/s "
                    f"{r['steps_per_s']:.3f} steps/s epoch {r['epoch']} wall {r['wall_s']:.0f}s")
        elif event == "val":
            line = f"step {r['step']} validation loss {r['val_loss']:.4f} grid {r['grid']}"
        elif event in ("checkpoint", "start", "end"):
            line = f"{event} " + " ".join(f"{k}={v}" for k, v in r.items())
        else:
            return
        print(line, flush=True)

    if int(os.environ.get("RANK", "0")) == 0:
        trainer.hook = hook
    try:
        trainer.run()
    except KeyboardInterrupt:
        trainer.save_checkpoint()
        raise


def _run_with_progress(trainer, steps: int) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]:.4f}  {task.fields[ips]:.1f} img/s"),
                  TimeElapsedColumn(), TimeRemainingColumn()) as progress:
        bar = progress.add_task("train", total=steps, completed=trainer.step, loss=float("nan"), ips=0.0)

        def hook(event: str, record: dict) -> None:
            if event in ("step", "log"):
                progress.update(bar, completed=record["step"], loss=record["loss"],
                                **({"ips": record["images_per_s"]} if event == "log" else {}))
            elif event == "val":
                progress.log(f"step {record['step']}: validation loss {record['val_loss']:.4f} → {record['grid']}",
                             markup=False)
            elif event == "checkpoint":
                progress.log(f"checkpoint {record['path']}", markup=False)

        trainer.hook = hook
        try:
            trainer.run()
        except KeyboardInterrupt:
            trainer.save_checkpoint()
            progress.log("interrupted: checkpoint written; continue with --resume")
            raise typer.Exit(130)
