"""The `palette` commands end to end on a tiny random model (CliRunner, no network)."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from palette_cli.cli.app import app
from palette_cli.imageio import read_metadata
from tests.conftest import make_photo

runner = CliRunner()
FAST = ["--sampling-steps", "2", "--quiet", "--device", "cpu", "--precision", "fp32", "--resolution", "32"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    make_photo(48, 40, 1).save(d / "a.png")
    make_photo(40, 40, 2).convert("L").save(d / "b.jpg", quality=90)
    make_photo(36, 44, 3).save(d / "sub" / "c.png")
    return d


def test_help_lists_every_command():
    """The top-level help lists exactly the commands the app registers (sub-apps such as ``data``
    included), and every one of them answers --help."""
    import re

    import typer

    registered = list(typer.main.get_command(app).commands)
    assert {"colorize", "inpaint", "uncrop", "panorama", "restore", "models", "convert", "train", "export",
            "eval", "data"} <= set(registered)
    r = runner.invoke(app, ["--help"], terminal_width=120)
    assert r.exit_code == 0
    listed = re.findall(r"^│ ([a-z][\w-]*)  ", r.output, flags=re.MULTILINE)
    assert listed == registered
    for name in registered:
        sub = run(name, "--help")
        assert sub.exit_code == 0 and "Usage:" in sub.output, name


def test_colorize_folder_recursive_keeps_structure_and_records_provenance(photos, tmp_path, tiny_model_file):
    out = tmp_path / "out"
    r = run("colorize", photos, "-r", "-o", out, "--model", tiny_model_file, "--seed", 7, *FAST)
    assert r.exit_code == 0, r.output
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == ["a_colorized.png", "b_colorized.png", "sub/c_colorized.png"]
    assert Image.open(out / "sub" / "c_colorized.png").size == (36, 44)
    meta = read_metadata(out / "a_colorized.png")
    assert meta["seed"] == "7" and meta["sampler"] == "dpmpp_2m_sde" and meta["task"] == "colorize"


def test_seed_reproduces_and_skip_overwrite(photos, tmp_path, tiny_model_file):
    out1, out2 = tmp_path / "o1.png", tmp_path / "o2.png"
    for out in (out1, out2):
        assert run("restore", photos / "a.png", "-o", out, "--model", tiny_model_file, "--seed", 3, *FAST).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(out1)), np.asarray(Image.open(out2)))
    before = out1.stat().st_mtime_ns
    r = run("restore", photos / "a.png", "-o", out1, "--model", tiny_model_file, "--seed", 4, *FAST)
    assert r.exit_code == 0 and out1.stat().st_mtime_ns == before  # skipped: exists
    r = run("restore", photos / "a.png", "-o", out1, "--model", tiny_model_file, "--seed", 4, "--overwrite", *FAST)
    assert r.exit_code == 0 and not np.array_equal(np.asarray(Image.open(out1)), np.asarray(Image.open(out2)))


def test_num_samples_writes_distinct_outputs(photos, tmp_path, tiny_model_file):
    out = tmp_path / "o"
    r = run("colorize", photos / "a.png", "-o", out, "-n", 2, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    a, b = (np.asarray(Image.open(out / f"a_colorized_s{k}.png")) for k in (0, 1))
    assert not np.array_equal(a, b)


def test_inpaint_mask_keeps_untouched_pixels(photos, tmp_path, tiny_model_file):
    mask = np.zeros((40, 48), np.uint8)
    mask[10:25, 12:30] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = tmp_path / "i.png"
    r = run("inpaint", photos / "a.png", "--mask", tmp_path / "m.png", "-o", out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    a, o = np.asarray(Image.open(photos / "a.png")), np.asarray(Image.open(out))
    keep = mask == 0
    assert np.array_equal(a[keep], o[keep]) and not np.array_equal(a[~keep], o[~keep])


def test_inpaint_box_and_mask_errors(photos, tmp_path, tiny_model_file):
    out = tmp_path / "i.png"
    r = run("inpaint", photos / "a.png", "--box", "5,5,10,10", "-o", out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    Image.new("L", (10, 10), 255).save(tmp_path / "small.png")
    r = run("inpaint", photos / "a.png", "--mask", tmp_path / "small.png", "-o", tmp_path / "j.png",
            "--model", tiny_model_file, *FAST)
    assert r.exit_code == 1 and "--resize-mask" in r.output
    Image.new("L", (48, 40), 0).save(tmp_path / "empty.png")
    r = run("inpaint", photos / "a.png", "--mask", tmp_path / "empty.png", "-o", tmp_path / "k.png",
            "--model", tiny_model_file, *FAST)
    assert r.exit_code == 1 and "empty" in r.output.lower()
    r = run("inpaint", photos / "a.png", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 2 and "exactly one of --mask or --box" in r.output


@pytest.mark.parametrize("direction,size", [("left", (72, 40)), ("top", (48, 60)), ("all", (96, 80))])
def test_uncrop_sizes_and_original_kept(photos, tmp_path, tiny_model_file, direction, size):
    out = tmp_path / "u.png"
    r = run("uncrop", photos / "a.png", "--direction", direction, "--amount", "0.5", "-o", out,
            "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    o = Image.open(out)
    assert o.size == size
    x = {"left": 24, "top": 0, "all": 24}[direction]
    y = {"left": 0, "top": 20, "all": 20}[direction]
    assert np.array_equal(np.asarray(o)[y:y + 40, x:x + 48], np.asarray(Image.open(photos / "a.png")))


def test_panorama_paper_proportions(tmp_path, tiny_model_file):
    make_photo(32, 32).save(tmp_path / "p.png")
    out = tmp_path / "pano.png"
    r = run("panorama", tmp_path / "p.png", "--steps", 8, "-o", out, "--frames", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (288, 32)
    assert len(list((tmp_path / "pano_frames").glob("*.png"))) == 16


def test_batch_with_a_corrupt_file_continues_and_fails_at_the_end(photos, tmp_path, tiny_model_file):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    data = (photos / "a.png").read_bytes()
    (photos / "truncated.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    r = run("colorize", photos, "-o", out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 1
    assert "broken.jpg" in r.output and "truncated.png" in r.output and "Traceback" not in r.output
    assert sorted(p.name for p in out.glob("*.png")) == ["a_colorized.png", "b_colorized.png"]


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["colorize", "{missing}"], 2, "no such file"),
        (["colorize", "{a}", "--model", "{nomodel}"], 1, "model file not found"),
        (["colorize", "{a}", "--model", "{corrupt}"], 1, "not a safetensors"),
        (["colorize", "{a}", "--model", "nosuchmodel"], 1, "unknown model"),
        (["colorize", "{zero}"], 1, "empty"),
    ],
)
def test_bad_input_messages(photos, tmp_path, tiny_model_file, args, code, message):
    (tmp_path / "corrupt.safetensors").write_bytes(b"garbage" * 10)
    (tmp_path / "zero.png").write_bytes(b"")
    subst = {"{missing}": tmp_path / "nope.png", "{a}": photos / "a.png", "{nomodel}": tmp_path / "x.safetensors",
             "{corrupt}": tmp_path / "corrupt.safetensors", "{zero}": tmp_path / "zero.png"}
    argv = [str(subst.get(a, a)) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(tiny_model_file)]
    r = run(*argv, "-o", tmp_path / "out", *FAST)
    assert r.exit_code == code, r.output
    assert message in r.output.lower() and "Traceback" not in r.output


def test_models_shows_a_checkpoint_config(tiny_model_file):
    r = run("models", tiny_model_file)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["format"] == "palette-cli" and doc["tasks"] == ["colorize", "inpaint", "uncrop", "jpeg"]
    assert doc["net"]["image_size"] > 0


def test_cli_choices_match_the_registries():
    """The CLI's choices are listed without importing torch; each list must be its registry's."""
    from palette_cli import defaults
    from palette_cli.baselines import BASELINES
    from palette_cli.diffusion.sampling import SAMPLERS
    from palette_cli.diffusion.schedule import SPACINGS
    from palette_cli.tasks import TASKS
    from palette_cli.tasks.masks import EVAL_MASKS, UNCROP_DIRECTIONS

    assert set(defaults.SAMPLER_NAMES) == set(SAMPLERS) | {"bridge"}
    assert defaults.TASK_NAMES == tuple(TASKS)
    assert defaults.EVAL_MASK_MODES == tuple(EVAL_MASKS)
    assert defaults.UNCROP_DIRECTIONS == UNCROP_DIRECTIONS
    assert defaults.SPACINGS == SPACINGS
    assert set(defaults.EVAL_METHODS) == {"model"} | set(BASELINES)
    from palette_cli.cli.evaluate import EvalTaskName, MaskMode, MethodName
    from palette_cli.cli.options import SamplerName, Spacing
    from palette_cli.cli.uncrop import Direction

    for enum, names in ((EvalTaskName, TASKS), (MaskMode, EVAL_MASKS), (MethodName, defaults.EVAL_METHODS),
                        (SamplerName, defaults.SAMPLER_NAMES), (Spacing, SPACINGS), (Direction, UNCROP_DIRECTIONS)):
        assert [e.value for e in enum] == list(names)


def test_the_task_catalogue_makes_every_task_registry():
    """One catalogue line per task makes its registry entry, its commands and its default models; the
    sampler defaults table makes the sampler registry's defaults and the help that lists them."""
    import typer

    from palette_cli import defaults, hub
    from palette_cli.cli.app import app
    from palette_cli.diffusion import sampling
    from palette_cli.tasks import TASKS

    for entry in defaults.TASK_CATALOG:
        assert TASKS[entry.name]().name == entry.name
        assert hub.TASK_MODELS[entry.name] == entry.models
        for command in entry.commands:
            assert defaults.COMMAND_TASKS[command] == entry.name == hub.task_of(command)
    group = typer.main.get_command(app)
    commands = list(group.commands)
    image_commands = [c for entry in defaults.TASK_CATALOG for c in entry.commands]
    assert commands[:len(image_commands)] == image_commands
    assert set(hub.TASK_MODELS) == set(TASKS) == set(defaults.TASK_NAMES)

    assert sampling.DEFAULT_STEPS == {n: s for n, (s, _) in defaults.SAMPLER_DEFAULTS.items()}
    assert sampling.DEFAULT_SPACING == {n: p for n, (_, p) in defaults.SAMPLER_DEFAULTS.items()}
    option = next(p for p in group.commands["colorize"].params if p.name == "sampling_steps")
    for name, steps in defaults.SAMPLER_STEPS.items():
        assert f"{steps} {name}" in option.help
