"""The study matrix of docs/RESULTS.md (Studies 2-4): study models trained under one recipe, each changing
one setting against ``reference``, given as the ``--set`` overrides of ``palette train``.

The recipe is the caller's: ``configs/study.toml`` for ``scripts/train_studies.sh`` (CPU), the shipped
recipe at 64² crops for ``scripts/gpu_session.py``; ``studies/study_training.py`` scores the results.

    python -m studies.matrix            # the study names, one per line
    python -m studies.matrix NAME       # NAME's overrides, one per line (exit status 2 if unknown)
"""

from __future__ import annotations

import sys

STUDIES: dict[str, list[str]] = {
    "reference": [],
    "regression": ["objective=regression"],
    "l1": ["loss=l1"],
    "v-prediction": ["prediction=v"],
    "colorize-only": ["task=colorize"],
    "inpaint-only": ["task=inpaint"],
    "jpeg-only": ["task=jpeg"],
}

#: How tables and charts name a study model (others: by their study name).
LABELS = {"reference": "Palette (diffusion, L2)", "regression": "regression (L2)", "l1": "Palette (diffusion, L1)",
          "v-prediction": "diffusion, L2, v-prediction"}


def overrides(name: str) -> list[str]:
    """The ``key=value`` overrides of a study model; ``KeyError`` names the known ones."""
    if name not in STUDIES:
        raise KeyError(f"unknown study run: {name} (known: {', '.join(STUDIES)})")
    return list(STUDIES[name])


def trained_tasks(name: str) -> list[str] | None:
    """The tasks a study model trains on when it changes the recipe's task (None: the recipe's tasks)."""
    for assignment in overrides(name):
        key, value = assignment.split("=", 1)
        if key == "task":
            return value.split("+")
    return None


def main(argv: list[str]) -> int:
    try:
        lines = overrides(argv[0]) if argv else list(STUDIES)
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
