"""Defaults shared by the library and the CLI (no heavy imports here: the CLI's --help reads them)."""

from __future__ import annotations

from dataclasses import dataclass

#: The stochastic second-order sampler: as fast as DPM-Solver++(2M), and the fresh noise at every step
#: corrects errors of an imperfect network that the deterministic solvers carry into the image.
DEFAULT_SAMPLER = "dpmpp_2m_sde"

# The names the CLI offers as choices, kept here so that `palette --help` needs no torch import; a test
# checks each list against the registry it mirrors.
#: Each sampler of ``palette_cli.diffusion.sampling.SAMPLERS`` with the number of model evaluations that gives
#: it its usual quality and the noise-level spacing it is meant for (``SPACINGS``). A new sampler is its
#: function and registry line there, and one line here (the CLI's choices and help are made from it).
SAMPLER_DEFAULTS = {
    "dpmpp_2m_sde": (20, "logsnr"),
    "dpmpp_2m": (20, "logsnr"),
    "ddim": (50, "logsnr"),
    "ddpm": (1000, "paper"),
}
SAMPLER_STEPS = {name: steps for name, (steps, _) in SAMPLER_DEFAULTS.items()}
SAMPLER_SPACING = {name: spacing for name, (_, spacing) in SAMPLER_DEFAULTS.items()}
#: Every sampler a model may use: those, and the bridge process's own (its steps are in the model file).
SAMPLER_NAMES = (*SAMPLER_DEFAULTS, "bridge")


@dataclass(frozen=True)
class TaskEntry:
    """One task of the catalogue: its name (a model file records the tasks it was trained for by these
    names), its class as ``module:Class`` in ``palette_cli.tasks`` (imported only when the tasks are), the
    commands that run it (each a module of ``palette_cli.cli`` with a function of the command's name) and
    its default models, best first: the shipped specialist measured best for the task (docs/RESULTS.md),
    then the multi-task model, used where the specialist is not installed."""

    name: str
    implementation: str
    commands: tuple[str, ...]
    models: tuple[str, ...]


#: The task registry: a new task is its module in ``tasks/``, its command in ``cli/`` and one line here.
#: ``tasks.TASKS``, the CLI's commands and choices, and each task's default model (``hub.TASK_MODELS``,
#: read by the commands, ``palette eval``, ``palette study`` and the library) all come from it.
TASK_CATALOG = (
    TaskEntry("colorize", "colorize:ColorizeTask", ("colorize",), ("palette-colorize", "palette-multitask-small")),
    TaskEntry("inpaint", "inpaint:InpaintTask", ("inpaint",), ("palette-extend", "palette-fill", "palette-multitask-small")),
    TaskEntry("uncrop", "uncrop:UncropTask", ("uncrop", "panorama"),
              ("palette-extend", "palette-fill", "palette-multitask-small")),
    TaskEntry("jpeg", "jpeg:JpegTask", ("restore",), ("palette-restore", "palette-multitask-small")),
)
#: The tasks' names, in catalogue order.
TASK_NAMES = tuple(entry.name for entry in TASK_CATALOG)
#: The task each image command runs.
COMMAND_TASKS = {command: entry.name for entry in TASK_CATALOG for command in entry.commands}

#: ``palette_cli.tasks.masks.EVAL_MASKS``: the paper's evaluation masks.
EVAL_MASK_MODES = ("free_form_10_20", "free_form_20_30", "free_form_30_40", "center")
#: ``palette_cli.tasks.masks.UNCROP_DIRECTIONS``.
UNCROP_DIRECTIONS = ("left", "right", "top", "bottom", "all")
#: ``palette_cli.diffusion.schedule.SPACINGS``.
SPACINGS = ("logsnr", "uniform", "paper")
#: ``palette eval --method``: the model(s) and ``palette_cli.baselines.BASELINES``.
EVAL_METHODS = ("model", "identity", "telea", "ns", "nlmeans", "mirror", "exemplar")
