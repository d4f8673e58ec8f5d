"""The paper's evaluation protocol (``palette eval``): generation and scoring apart.

:mod:`.generation` builds a run folder: degraded inputs from reference photos (each task's
``evaluation_input``), the model's outputs on them, ``generation.json``; :func:`evaluate` generates and
then scores. :mod:`.scoring` scores any outputs against their references (``palette eval --outputs``):
the feature networks, the metric values and their descriptions, ``metrics.json`` and ``metrics.md``.
:mod:`.pairs` finds which output belongs to which reference. Scoring knows nothing of generation.
"""

from .generation import (
    EVAL_MASK_MODES,
    EVAL_TASKS,
    GENERATION_JSON,
    INPUTS_DIR,
    MASKS_DIR,
    OUTPUTS_DIR,
    REFERENCES_DIR,
    EvalInput,
    EvalTask,
    ImageProgress,
    StepProgress,
    check_method,
    check_previous,
    degrade,
    eval_names,
    evaluate,
    generate_outputs,
    generation_markdown,
    load_method,
    make_eval_input,
    make_run_folders,
    save_eval_input,
    select_references,
)
from .pairs import EvaluationError, Pair, PathSpec, References, fit_reference, pair_outputs, read_labels
from .scoring import (
    FEATURE_NET_CHOICES,
    METRICS_JSON,
    METRICS_MD,
    NOT_COMPARABLE,
    Log,
    StandardWeights,
    is_splits_for,
    metrics_markdown,
    score_outputs,
)

__all__ = [
    "EVAL_MASK_MODES",
    "EVAL_TASKS",
    "FEATURE_NET_CHOICES",
    "GENERATION_JSON",
    "INPUTS_DIR",
    "MASKS_DIR",
    "METRICS_JSON",
    "METRICS_MD",
    "NOT_COMPARABLE",
    "OUTPUTS_DIR",
    "REFERENCES_DIR",
    "EvalInput",
    "EvalTask",
    "EvaluationError",
    "ImageProgress",
    "Log",
    "Pair",
    "PathSpec",
    "References",
    "StandardWeights",
    "StepProgress",
    "check_method",
    "check_previous",
    "degrade",
    "eval_names",
    "evaluate",
    "fit_reference",
    "generate_outputs",
    "generation_markdown",
    "is_splits_for",
    "load_method",
    "make_eval_input",
    "make_run_folders",
    "metrics_markdown",
    "pair_outputs",
    "read_labels",
    "save_eval_input",
    "score_outputs",
    "select_references",
]
