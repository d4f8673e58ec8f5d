"""Defaults shared by the library and the CLI (no heavy imports here: the CLI's --help reads them)."""

#: The stochastic second-order sampler: as fast as DPM-Solver++(2M), and the fresh noise at every step
#: corrects errors of an imperfect network that the deterministic solvers carry into the image.
DEFAULT_SAMPLER = "dpmpp_2m_sde"

# The names the CLI offers as choices, kept here so that `palette --help` needs no torch import; a test
# checks each list against the registry it mirrors.
#: Every sampler a model may use: ``palette_cli.diffusion.sampling.SAMPLERS`` and the bridge process's own.
SAMPLER_NAMES = ("dpmpp_2m_sde", "dpmpp_2m", "ddim", "ddpm", "bridge")
#: ``palette_cli.tasks.TASKS``.
TASK_NAMES = ("colorize", "inpaint", "uncrop", "jpeg")
#: The task each image command runs (a model file records the tasks it was trained for by these names).
COMMAND_TASKS = {"colorize": "colorize", "inpaint": "inpaint", "uncrop": "uncrop", "panorama": "uncrop",
                 "restore": "jpeg"}
#: ``palette_cli.tasks.masks.EVAL_MASKS``: the paper's evaluation masks.
EVAL_MASK_MODES = ("free_form_10_20", "free_form_20_30", "free_form_30_40", "center")
#: ``palette_cli.tasks.masks.UNCROP_DIRECTIONS``.
UNCROP_DIRECTIONS = ("left", "right", "top", "bottom", "all")
#: ``palette_cli.diffusion.schedule.SPACINGS``.
SPACINGS = ("logsnr", "uniform", "paper")
#: ``palette eval --method``: the model(s) and ``palette_cli.baselines.BASELINES``.
EVAL_METHODS = ("model", "identity", "telea", "ns", "nlmeans", "mirror")
