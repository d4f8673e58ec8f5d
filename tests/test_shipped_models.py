"""Contract tests over the shipped weight files × the image commands, one suite for every file (as diffusers'
SchedulerCommonTest runs one over every scheduler): each file in weights/ loads, runs every command of a
task it was trained for on a small photo, and is refused in one line — before its weights are read — by
every other command. The README's first command depends on these files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from palette_cli import checkpoint, pipeline
from palette_cli.checkpoint import file_hash, read_info
from palette_cli.cli.app import app
from palette_cli.defaults import COMMAND_TASKS, TASK_NAMES
from palette_cli.hub import ModelTaskError, default_model, task_of
from palette_cli.models import check_model
from palette_cli.pipeline import Pipeline
from palette_cli.tasks.jpeg import jpeg_roundtrip

from .conftest import make_photo
from .test_features import needs_effnet
from .test_study import answers_file

runner = CliRunner()
WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
SHIPPED = sorted(WEIGHTS.glob("*.safetensors"))
#: What each shipped file says it was trained for (the README's table of models and defaults).
TRAINED = {"palette-colorize": ["colorize"], "palette-fill": ["inpaint", "uncrop"], "palette-restore": ["jpeg"],
           "palette-extend": ["inpaint", "uncrop"],
           "palette-multitask-small": ["colorize", "inpaint", "uncrop", "jpeg"]}
W, H = 48, 32
#: Each command on a W x H photo, at a small working resolution (restore works at the photo's own size).
COMMANDS = {"colorize": [], "inpaint": ["--box", "12,8,16,12"], "uncrop": ["--direction", "right", "--amount", "16"],
            "panorama": ["--steps", "1", "--direction", "right"], "restore": []}
FAST = ["--resolution", "32", "--seed", "0", "--device", "cpu", "--precision", "fp32", "--quiet"]


def luma(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.int64)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    """The input of each command: a colour photo; a JPEG of it for restore."""
    root = tmp_path_factory.mktemp("inputs")
    photo = make_photo(W, H, seed=3)
    photo.save(root / "photo.png")
    jpeg_roundtrip(photo, 15).save(root / "photo.jpg", quality=100)
    return {command: root / ("photo.jpg" if command == "restore" else "photo.png") for command in COMMANDS}


def test_the_shipped_files_are_the_documented_ones():
    assert {path.stem: read_info(path).tasks for path in SHIPPED} == TRAINED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_file_loads(path):
    pipe = Pipeline.from_file(path, device="cpu", precision="fp32", resolution=32)
    assert pipe.info.tasks == TRAINED[path.stem] and pipe.resolution == 32
    assert sum(p.numel() for p in pipe.net.parameters()) > 1_000_000
    assert pipe.process.kind == {"palette-colorize": "chroma-bins", "palette-multitask-small": "eps",
                                 "palette-extend": "preconditioned-bridge"}.get(path.stem, "bridge")
    # the generating fill holds its coarse stage (the layout at 64², then the detail)
    assert (pipe.coarse is not None) == (path.stem == "palette-extend")


@pytest.mark.parametrize("task", TASK_NAMES)
def test_each_task_defaults_to_a_shipped_model_trained_for_it(task):
    name = default_model(task)
    assert (WEIGHTS / f"{name}.safetensors").is_file() and task in TRAINED[name]
    assert check_model(None, task).name == name
    assert name == {"colorize": "palette-colorize", "jpeg": "palette-restore"}.get(task, "palette-extend")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_model_runs_its_commands_and_is_refused_by_the_others(path, command, photos, tmp_path, monkeypatch):
    name, source = path.stem, photos[command]
    loaded, real = [], checkpoint.load_model

    def load_model(file, *args, **kwargs):  # records whether a network was built from the file
        loaded.append(file)
        return real(file, *args, **kwargs)

    for module in (checkpoint, pipeline):
        monkeypatch.setattr(module, "load_model", load_model)
    out = tmp_path / "out.png"
    r = runner.invoke(app, [command, str(source), "-o", str(out), "--model", name, *COMMANDS[command], *FAST])
    if task_of(command) not in TRAINED[name]:
        lines = r.output.strip().splitlines()
        assert r.exit_code == 1 and len(lines) == 1, r.output
        assert lines[0].startswith(f"Error: model {name} ") and command in lines[0] and "internal error" not in lines[0]
        assert f"it does {', '.join(TRAINED[name])}" in lines[0]
        assert f"{command}'s default model is {default_model(command)}" in lines[0]
        assert not out.exists() and not loaded  # refused from the file's header, before any weight was read
        return
    assert r.exit_code == 0, r.output
    result, given = Image.open(out), Image.open(source).convert("RGB")
    meta = result.text
    assert meta["model"] == name and meta["task"] == command and "model_tasks" not in meta
    got = np.asarray(result.convert("RGB"), dtype=np.int64)
    original = np.asarray(given, dtype=np.int64)
    if command == "colorize":  # colour on the input's own luminance, exactly
        assert result.size == (W, H) and np.array_equal(luma(result), luma(given))
        assert np.abs(got - got.mean(-1, keepdims=True)).mean() > 1  # some colour, not gray
    elif command == "inpaint":  # only the box changes
        outside = np.ones((H, W), bool)
        outside[8:20, 12:28] = False
        assert result.size == (W, H) and np.array_equal(got[outside], original[outside])
        assert not np.array_equal(got[~outside], original[~outside])
    elif command in ("uncrop", "panorama"):  # the canvas grows on the right; the original stays
        grown = 16 if command == "uncrop" else H // 2
        assert result.size == (W + grown, H) and np.array_equal(got[:, :W], original)
        assert got[:, W:].std() > 1  # the new band is filled, not flat
    else:  # restore: same size, the local mean colour locked to the JPEG's
        assert result.size == (W, H) and not np.array_equal(got, original)
        assert np.abs(got.mean((0, 1)) - original.mean((0, 1))).max() < 2


def test_force_runs_a_model_on_a_task_it_can_run_and_records_its_own_tasks(photos, tmp_path):
    out = tmp_path / "forced.png"
    r = runner.invoke(app, ["colorize", str(photos["colorize"]), "-o", str(out), "--model", "palette-fill",
                            "--force", *FAST])
    assert r.exit_code == 0, r.output
    result = Image.open(out)
    assert result.text["model"] == "palette-fill" and result.text["model_tasks"] == "inpaint,uncrop"
    assert np.array_equal(luma(result), luma(Image.open(photos["colorize"])))


@pytest.mark.parametrize("command", ["restore", "inpaint", "panorama"])
def test_force_never_runs_a_model_on_a_task_it_cannot_run(command, photos, tmp_path):
    out = tmp_path / "out.png"
    r = runner.invoke(app, [command, str(photos[command]), "-o", str(out), "--model", "palette-colorize", "--force",
                            *COMMANDS[command], *FAST])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and not out.exists(), r.output
    assert lines[0] == (f"Error: model palette-colorize cannot run {command}"
                        + (f" ({COMMAND_TASKS[command]})" if COMMAND_TASKS[command] != command else "")
                        + f": it does colorize only; {command}'s default model is {default_model(command)}")


def test_the_library_refuses_a_task_the_model_cannot_run():
    pipe = Pipeline.from_file(WEIGHTS / "palette-colorize.safetensors", device="cpu", resolution=32, force=True)
    with pytest.raises(ModelTaskError, match="cannot run restore"):
        pipe.restore(make_photo(W, H), None, None)
    with pytest.raises(ModelTaskError, match="palette-fill.safetensors was not trained for colorize"):
        Pipeline.from_file(WEIGHTS / "palette-fill.safetensors", task="colorize")


@pytest.fixture
def refs(tmp_path):
    folder = tmp_path / "refs"
    folder.mkdir()
    for i in range(2):
        make_photo(40, 40, seed=i).save(folder / f"photo{i}.png")
    return folder


EVAL = ["--size", "32", "--device", "cpu", "--threads", "1", "--quiet"]


@needs_effnet
def test_eval_and_study_name_the_default_model_that_ran(refs, tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["eval", "--task", "inpaint", "--method", "model", "--method", "identity", "--references",
                            str(refs), "--grid-photos", "1", "--out", str(out), *EVAL])
    assert r.exit_code == 0, r.output
    rows = json.loads((out / "metrics.json").read_text())["methods"]
    assert list(rows) == ["palette-extend", "identity"] and (out / "methods" / "palette-extend" / "outputs").is_dir()
    assert rows["palette-extend"]["model"] == "palette-extend"
    assert rows["palette-extend"]["description"] == "model `palette-extend` (bridge, 8 steps)"
    settings = json.loads((out / "methods" / "palette-extend" / "generation.json").read_text())["settings"]
    assert settings["model_hash"] == file_hash(WEIGHTS / "palette-extend.safetensors")
    study = tmp_path / "study"
    assert runner.invoke(app, ["study", "make", str(out), "-o", str(study)]).exit_code == 0
    manifest = json.loads((study / "study.json").read_text())
    assert sorted({t["method"] for t in manifest["trials"]}) == ["identity", "palette-extend"]
    answers = answers_file(tmp_path / "a.json", manifest, {t["id"]: True for t in manifest["trials"]})
    r = runner.invoke(app, ["study", "score", str(answers), "--study", str(study), "-o", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    rates = json.loads((tmp_path / "r.json").read_text())["rates"]
    assert [(x["method"], x["answers"]) for x in rates] == [("identity", 2), ("palette-extend", 2)]


def test_eval_refuses_a_model_for_a_task_before_any_method_runs(refs, tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["eval", "--task", "inpaint", "--method", "telea", "--method", "model", "--model",
                            "palette-colorize", "--force", "--references", str(refs), "--out", str(out), *EVAL])
    assert r.exit_code == 1 and r.output.strip() == ("Error: model palette-colorize cannot run inpaint: it does "
                                                     "colorize only; inpaint's default model is palette-extend")
    assert not out.exists()
    r = runner.invoke(app, ["eval", "--task", "jpeg", "--model", "palette-fill", "--references", str(refs),
                            "--out", str(out), *EVAL])
    assert r.exit_code == 1 and "was not trained for jpeg: it does inpaint, uncrop" in r.output and not out.exists()
