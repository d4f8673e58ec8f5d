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


def test_panorama_check_catches_copied_strips_and_colour_drift():
    """A panorama whose strips are mirrors of the ones they continue scores 1; fresh texture scores low;
    a right end shifted in colour shows its CIELAB drift, the unchanged left end none."""
    import numpy as np
    from PIL import Image

    from studies.panorama_check import check

    rng = np.random.default_rng(0)
    original = rng.integers(60, 200, (32, 32, 3), dtype=np.uint8)

    def mirrored(strips: int) -> np.ndarray:
        out = original
        for _ in range(strips):  # each new 16-px strip is the last one reflected
            out = np.concatenate([out[:, :16][:, ::-1], out, out[:, -16:][:, ::-1]], axis=1)
        return out

    pano = mirrored(2)
    got = check(Image.fromarray(pano), Image.fromarray(original))
    assert got["strips"] == 4 and got["copy_score_mean"] > 0.99
    assert got["drift_delta_e"]["left"] < 5  # reflections of the original's own pixels: its colours
    fresh = np.concatenate([rng.integers(60, 200, (32, 32, 3), dtype=np.uint8), original,
                            rng.integers(60, 200, (32, 32, 3), dtype=np.uint8)], axis=1)
    assert check(Image.fromarray(fresh), Image.fromarray(original))["copy_score_max"] < 0.3
    tinted = fresh.copy()
    tinted[:, -32:, 0] = np.clip(tinted[:, -32:, 0].astype(int) + 60, 0, 255)
    drift = check(Image.fromarray(tinted), Image.fromarray(original))["drift_delta_e"]
    assert drift["right"] > 10 and drift["right"] > 3 * drift["left"]
