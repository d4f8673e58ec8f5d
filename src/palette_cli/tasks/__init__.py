"""Tasks: how a clean photo becomes a training example (condition, target, loss mask), an evaluation input,
and an output (the task's inference recipe).

One module per task behind the small :class:`Task` interface (training sees a task, or a mixture of them,
as a :class:`TrainingTask`); :data:`TASKS` is the registry, made from the task catalogue
(``defaults.TASK_CATALOG``, where the CLI reads it without importing torch): a new task is its module here,
its command and one catalogue line. A task spec string picks one task or a weighted mixture:
``"colorize"``, ``"colorize+inpaint+jpeg"`` (equal weights), ``"colorize:1,inpaint:2"`` or
``"multitask"`` (the paper's multi-task set: colorization, inpainting and JPEG restoration).
"""

from __future__ import annotations

import importlib
import math
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..defaults import TASK_CATALOG
from .base import Example, Task, TrainingTask, choice

__all__ = ["DEFAULT_MULTITASK", "Example", "TASKS", "Task", "TaskMixture", "TrainingTask", "get_task",
           "parse_task_spec", "task_names"]



def _task_class(implementation: str) -> Callable[..., Task]:
    module, _, name = implementation.partition(":")
    return getattr(importlib.import_module(f".{module}", __name__), name)


TASKS: dict[str, Callable[..., Task]] = {entry.name: _task_class(entry.implementation) for entry in TASK_CATALOG}

DEFAULT_MULTITASK = ("colorize", "inpaint", "jpeg")
MULTITASK_ALIASES = ("multitask", "multi")


def get_task(name: str, **options) -> Task:
    """A task by registry name, built with ``options`` (e.g. ``get_task("inpaint", masks="center")``)."""
    try:
        factory = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}") from None
    return factory(**options)


class TaskMixture:
    """Each example comes from one task, drawn with the generator with probability ∝ its weight.

    The default is Palette's multi-task set, colorization + inpainting + JPEG restoration, with equal
    weights; ``TaskMixture.paper(uncrop=True)`` adds uncropping. There is no task id: the condition
    itself shows which task it is (gray, noise-filled hole, blocky JPEG).
    """

    def __init__(self, tasks: Sequence[Task] | None = None, weights: Sequence[float] | None = None):
        self.tasks = list(tasks) if tasks is not None else [get_task(n) for n in DEFAULT_MULTITASK]
        self.weights = [float(w) for w in weights] if weights is not None else [1.0] * len(self.tasks)
        if not self.tasks:
            raise ValueError("a task mixture needs at least one task")
        if len(self.weights) != len(self.tasks):
            raise ValueError(f"{len(self.tasks)} tasks but {len(self.weights)} weights")
        if any(not math.isfinite(w) or w <= 0 for w in self.weights):
            raise ValueError(f"task weights must be positive, got {self.weights}")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"a task appears twice in the mixture: {names}")

    @classmethod
    def paper(cls, uncrop: bool = False) -> "TaskMixture":
        """Colorization + inpainting + JPEG restoration (equal weights), optionally uncropping too."""
        return cls([get_task(n) for n in DEFAULT_MULTITASK + (("uncrop",) if uncrop else ())])

    @property
    def name(self) -> str:
        """A spec that :func:`parse_task_spec` reads back: ``a+b`` for equal weights, else ``a:w,b:w``."""
        if len(set(self.weights)) == 1:
            return "+".join(t.name for t in self.tasks)
        return ",".join(f"{t.name}:{w:g}" for t, w in zip(self.tasks, self.weights))

    def probabilities(self) -> dict[str, float]:
        total = sum(self.weights)
        return {t.name: w / total for t, w in zip(self.tasks, self.weights)}

    def make_example(self, image: Tensor, generator: torch.Generator) -> Example:
        task = self.tasks[choice(generator, self.weights)]
        example = task.make_example(image, generator)
        example.task = task.name
        return example

    def __repr__(self) -> str:
        return f"TaskMixture({self.name!r})"


def parse_task_spec(spec: str, options: dict[str, dict[str, Any]] | None = None) -> TrainingTask:
    """``"colorize"`` → that task; ``"colorize+inpaint+jpeg"`` or ``"colorize:1,inpaint:2"`` → a mixture.

    ``options`` maps a task's name to the keyword arguments it is built with (e.g. ``{"jpeg": {"high": 95}}``);
    an option for a task the spec does not name, or one the task does not take, is a ``ValueError``."""
    options = {str(k).lower(): dict(v) for k, v in (options or {}).items()}
    text = spec.strip().lower()
    if text in MULTITASK_ALIASES:
        if options:
            raise ValueError("task options need the tasks named (e.g. colorize+inpaint+jpeg), not an alias")
        return TaskMixture.paper()
    items = [part.strip() for part in text.replace("+", ",").split(",")]
    if not text or any(not part for part in items):
        raise ValueError(f"empty task name in task spec {spec!r}")
    names, weights = [], []
    for part in items:
        name, _, weight = part.partition(":")
        names.append(name.strip())
        try:
            weights.append(float(weight) if weight.strip() else 1.0)
        except ValueError:
            raise ValueError(f"task weight must be a number in {part!r}") from None
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ValueError(f"options for {', '.join(unknown)}, which the task spec {spec!r} does not train")
    tasks = []
    for n in names:
        try:
            tasks.append(get_task(n, **options.get(n, {})))
        except TypeError as e:
            raise ValueError(f"{n} options {options.get(n)}: {e}") from None
    if len(tasks) == 1:
        if weights[0] <= 0:
            raise ValueError(f"task weights must be positive, got {weights[0]:g}")
        return tasks[0]
    return TaskMixture(tasks, weights)


def task_names(task: TrainingTask | str) -> list[str]:
    """The names of the tasks a task (or a spec) trains: one name, or each task of a mixture."""
    if isinstance(task, str):
        task = parse_task_spec(task)
    if isinstance(task, TaskMixture):
        return [t.name for t in task.tasks]
    return [task.name]
