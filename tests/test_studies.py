"""The study matrix: every arm is a valid change of the study recipe, in one setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from palette_cli.training import load_config
from studies.matrix import STUDIES, main, overrides, trained_tasks

RECIPE = Path(__file__).resolve().parent.parent / "configs" / "study.toml"


@pytest.mark.parametrize("name", list(STUDIES))
def test_each_arm_changes_the_recipe_in_at_most_one_setting(name):
    reference = load_config(RECIPE).to_dict()
    arm = load_config(RECIPE, overrides(name)).to_dict()
    changed = {k for k in reference if arm[k] != reference[k]}
    assert changed == {a.split("=", 1)[0] for a in overrides(name)}
    assert len(changed) == (0 if name == "reference" else 1)


def test_trained_tasks_and_the_command_line(capsys):
    assert trained_tasks("jpeg-only") == ["jpeg"] and trained_tasks("l1") is None
    assert main(["v-prediction"]) == 0 and capsys.readouterr().out == "prediction=v\n"
    assert main(["reference"]) == 0 and capsys.readouterr().out == ""
    assert main(["nope"]) == 2 and "unknown study run: nope" in capsys.readouterr().err
