"""Every model a command or an evaluation runs, by name, in one registry: the neural ones — model files,
shipped, local or on the Hugging Face Hub (:mod:`.hub`) — and the classical methods of :mod:`.baselines`
(the identity, OpenCV's inpainting and denoising, the mirror), as IOPaint keeps its OpenCV model beside its
neural ones. No name means the task's default model (:data:`.hub.TASK_MODELS`).

:func:`check_model` decides whether a model may run a task from what is known before anything slow: a
classical method's tasks, or a model file's header (the tasks it was trained for, its process), and refuses
in one line (:class:`~palette_cli.hub.ModelTaskError`). :func:`open_model` gives the ready model, a
:class:`~palette_cli.pipeline.Pipeline` or a :class:`~palette_cli.baselines.ClassicalModel`; both have what
evaluation uses (``infer``, ``record``, ``summary``, ``provenance``, ``model_calls``, ``deterministic``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .baselines import BASELINES, ClassicalModel, get_baseline
from .hub import ModelTaskError, resolve_model, task_of


@dataclass(frozen=True)
class ModelEntry:
    """A model of the registry as known before it is loaded: its name (display id), the tasks it was trained
    for or applies to (empty: not recorded) and its file (None for a classical method)."""

    name: str
    tasks: tuple[str, ...]
    path: Path | None = None

    @property
    def classical(self) -> bool:
        return self.path is None


def check_model(spec: str | None, task: str, *, force: bool = False, classical: bool = True) -> ModelEntry:
    """The model ``spec`` names (none: ``task``'s default), checked to run ``task`` (a command or task name):
    refused in one line when it was not trained for it (unless ``force``) or cannot run it at all. Reads a
    model file's header only. ``classical=False`` refuses the classical methods (the image commands)."""
    if spec in BASELINES:
        if not classical:
            raise ModelTaskError(f"{spec} is a classical method of palette eval (--method {spec}), not a model "
                                 f"for {task}")
        return ModelEntry(spec, get_baseline(spec, task_of(task)).tasks)  # BaselineError: one line
    from .checkpoint import read_info
    from .pipeline import check_task

    path, name = resolve_model(spec, task)
    info = read_info(path)
    check_task(info, name, task, force)
    return ModelEntry(name, tuple(info.tasks), path)


def open_model(spec: str | None, task: str, *, force: bool = False, classical: bool = True,
               **pipeline: Any) -> Any:
    """The ready model ``spec`` names for ``task`` (checked first by :func:`check_model`): a
    :class:`~palette_cli.pipeline.Pipeline` built with the keyword arguments ``pipeline`` (device,
    precision, resolution, batch_size), or a :class:`~palette_cli.baselines.ClassicalModel`."""
    entry = check_model(spec, task, force=force, classical=classical)
    if entry.classical:
        return ClassicalModel(BASELINES[entry.name])
    from .pipeline import Pipeline

    return Pipeline.from_file(entry.path, model_id=entry.name, force=force, **pipeline)


def classical_models() -> dict[str, tuple[str, ...]]:
    """The classical methods and the tasks each applies to."""
    return {name: baseline.tasks for name, baseline in BASELINES.items()}
