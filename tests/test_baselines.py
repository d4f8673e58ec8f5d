"""Classical baselines: known results on synthetic images, and `palette eval --method` runs side by side."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from palette_cli.baselines import BaselineError, get_baseline, run_baseline
from palette_cli.cli.app import app
from palette_cli.comparison import Method, model_label, plan_methods, read_run
from palette_cli.data import center_crop
from palette_cli.evaluate import EvaluationError
from palette_cli.tasks.jpeg import jpeg_roundtrip
from palette_cli.tasks.masks import uncrop_mask

from .conftest import make_photo
from .test_features import needs_effnet

runner = CliRunner()
FAST = ["--size", 32, "--sampling-steps", 2, "--device", "cpu", "--precision", "fp32", "--threads", 1, "--quiet"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


def psnr01(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a / 255 - b / 255) ** 2)))


@pytest.fixture
def refs(tmp_path):
    d = tmp_path / "refs"
    d.mkdir()
    for i, (w, h) in enumerate([(48, 40), (40, 56), (36, 36)]):
        make_photo(w, h, seed=i).save(d / f"photo{i}.png")
    return d


def one_line_error(result, expect):
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Error" in lines[0] and expect in lines[0], result.output


# --------------------------------------------------------------------------- the baselines themselves


@pytest.mark.parametrize("name, tolerance, far", [("ns", 0, 0), ("telea", 4, 8)])
def test_inpainting_fills_a_constant_image_with_the_constant(name, tolerance, far):
    """Navier–Stokes keeps a constant exactly; OpenCV's Telea drifts from it by a few levels, more the
    further a pixel lies from the known ones (its gradient term does not vanish exactly on flat borders)."""
    colour = np.array((200, 90, 30))
    image = np.full((32, 40, 3), colour, np.uint8)
    rng = np.random.default_rng(0)
    hole = np.zeros((32, 40), bool)
    hole[8:20, 10:30] = True
    image[hole] = rng.integers(0, 256, (hole.sum(), 3))  # noise in the hole, as the evaluation inputs have
    out = run_baseline(name, "inpaint", image, hole).astype(int)
    assert np.array_equal(out[~hole], np.broadcast_to(colour, out[~hole].shape))
    assert np.abs(out - colour).max() <= tolerance
    assert np.abs(out - colour).mean() < 0.25
    # uncropping: half the image unknown (zeros there), still the constant
    half = uncrop_mask(32, 40, "left")[0].numpy() > 0
    flat = np.full((32, 40, 3), colour, np.uint8)
    out = run_baseline(name, "uncrop", flat * ~half[..., None], half).astype(int)
    assert np.abs(out[half] - colour).max() <= far


def test_inpainting_keeps_known_pixels_and_interpolates_a_ramp():
    ramp = np.repeat(np.linspace(0, 240, 40).round().astype(np.uint8)[None, :, None], 32, 0).repeat(3, 2)
    hole = np.zeros((32, 40), bool)
    hole[12:18, 18:22] = True
    out = run_baseline("telea", "inpaint", np.where(hole[..., None], 0, ramp).astype(np.uint8), hole)
    assert np.array_equal(out[~hole], ramp[~hole])
    assert np.abs(out[hole].astype(int) - ramp[hole]).max() <= 8  # a linear ramp is continued, not a blob


def test_mirror_reflects_the_known_side():
    image = np.zeros((4, 8, 3), np.uint8)
    image[..., 0] = np.arange(8) * 10
    hole = uncrop_mask(4, 8, "right")[0].numpy() > 0
    out = run_baseline("mirror", "uncrop", image, hole)
    assert out[0, :, 0].tolist() == [0, 10, 20, 30, 30, 20, 10, 0]
    hole = uncrop_mask(4, 8, "top")[0].numpy() > 0
    image[..., 1] = np.arange(4)[:, None] * 7
    out = run_baseline("mirror", "uncrop", image, hole)
    assert out[:, 0, 1].tolist() == [21, 14, 14, 21]
    # an unknown part wider than the known one reflects again
    hole = np.ones((1, 8), bool)
    hole[0, 6:] = False
    row = np.zeros((1, 8, 3), np.uint8)
    row[0, 6:, 2] = (1, 2)
    assert run_baseline("mirror", "uncrop", row, hole)[0, :, 2].tolist() == [2, 1, 1, 2, 2, 1, 1, 2]
    with pytest.raises(BaselineError, match="one rectangle"):
        ring = np.zeros((8, 8), bool)
        ring[3:5, 3:5] = True
        run_baseline("mirror", "uncrop", np.zeros((8, 8, 3), np.uint8), ring)


def test_nlmeans_removes_noise_and_keeps_a_flat_image():
    flat = np.full((48, 48, 3), (120, 60, 200), np.uint8)
    # flat stays flat, up to OpenCV's 8-bit round trip through CIELAB
    out = run_baseline("nlmeans", "jpeg", flat).astype(int)
    assert (out == out[0, 0]).all() and np.abs(out[0, 0] - flat[0, 0]).max() <= 2
    noisy = np.clip(flat + np.random.default_rng(1).normal(0, 6, flat.shape), 0, 255).astype(np.uint8)
    out = run_baseline("nlmeans", "jpeg", noisy)
    assert psnr01(out, flat) > psnr01(noisy, flat) + 6


def test_identity_is_the_input_and_applicability_is_checked():
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert np.array_equal(run_baseline("identity", "colorize", image), image)
    with pytest.raises(BaselineError, match="does not apply to colorize"):
        get_baseline("telea", "colorize")
    with pytest.raises(BaselineError, match="applies to uncrop"):
        get_baseline("mirror", "inpaint")
    with pytest.raises(BaselineError, match="unknown baseline"):
        get_baseline("sharpen", "jpeg")


def test_missing_opencv_says_what_to_install(monkeypatch, refs, tmp_path):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 → ImportError
    with pytest.raises(BaselineError, match=r"pip install 'palette-cli\[eval\]'"):
        run_baseline("telea", "inpaint", np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), bool))
    assert np.array_equal(run_baseline("mirror", "uncrop", np.ones((2, 2, 3), np.uint8), np.eye(2) < 0),
                          np.ones((2, 2, 3), np.uint8))  # the others need no OpenCV
    r = run("eval", "--task", "inpaint", "--method", "telea", "--references", refs, "--out", tmp_path / "r", *FAST)
    one_line_error(r, "opencv-python-headless")
    assert not (tmp_path / "r" / "methods").exists()  # refused before anything is written


def test_methods_are_planned_and_labelled_with_the_model_that_runs():
    rows = plan_methods(["model", "identity", "model", "telea"], ["a/mine.safetensors", "hf-user/mine", None],
                        "inpaint")
    assert rows == [Method("mine", "a/mine.safetensors"), Method("mine-2", "hf-user/mine"),
                    Method("palette-extend", "palette-extend"), Method("identity", "identity"), Method("telea", "telea")]
    # no --model: the task's default model, by its own name; the same model named twice is one row
    assert plan_methods(["model"], [], "jpeg") == [Method("palette-restore", "palette-restore")]
    assert plan_methods(["model", "telea"], [None, "palette-extend", "telea"], "uncrop") == [
        Method("palette-extend", "palette-extend"), Method("telea", "telea")]
    assert plan_methods(["model"], [None, "palette-fill"], "uncrop") == [
        Method("palette-extend", "palette-extend"), Method("palette-fill", "palette-fill")]
    assert model_label("hf:user/repo/net.safetensors@v1") == "net"
    with pytest.raises(EvaluationError, match="unknown method"):
        plan_methods(["sharpen"], [], "jpeg")


# --------------------------------------------------------------------------- palette eval --method


@needs_effnet
def test_identity_scores_the_psnr_of_the_degradation(refs, tmp_path):
    out = tmp_path / "jpeg"
    r = run("eval", "--task", "jpeg", "--jpeg-quality", 12, "--method", "identity", "--method", "nlmeans",
            "--references", refs, "--out", out, *FAST)
    assert r.exit_code == 0, r.output
    expected = []
    for i in range(3):
        reference = center_crop(Image.open(refs / f"photo{i}.png").convert("RGB"), 32)
        degraded = np.asarray(jpeg_roundtrip(reference, 12), dtype=np.float64)
        expected.append(psnr01(degraded, np.asarray(reference, dtype=np.float64)))
    data = json.loads((out / "metrics.json").read_text())
    assert list(data["methods"]) == ["identity", "nlmeans"]
    assert data["methods"]["identity"]["metrics"]["psnr"] == pytest.approx(np.mean(expected), rel=1e-5)
    assert data["methods"]["nlmeans"]["metrics"]["psnr"] != data["methods"]["identity"]["metrics"]["psnr"]
    assert data["task"] == {"task": "jpeg", "jpeg_quality": 12}
    r = run("eval", "--task", "colorize", "--method", "identity", "--references", refs, "--out", tmp_path / "c",
            *FAST)
    assert r.exit_code == 0, r.output
    single = json.loads((tmp_path / "c" / "metrics.json").read_text())  # one method alone: a plain run folder
    assert single["generation"]["settings"]["model"] == "identity" and not (tmp_path / "c" / "methods").exists()
    gray = single["metrics"]["psnr"]
    expected = [psnr01(pixels(tmp_path / "c" / "inputs" / f"photo{i}.png"),
                       pixels(tmp_path / "c" / "references" / f"photo{i}.png")) for i in range(3)]
    assert gray == pytest.approx(np.mean(expected), rel=1e-5)


@needs_effnet
def test_mixed_run_writes_one_row_per_method_on_identical_inputs(refs, tmp_path, tiny_model_file):
    out = tmp_path / "cmp"
    r = run("eval", "--task", "inpaint", "--method", "model", "--method", "identity", "--method", "telea",
            "--method", "ns", "--model", tiny_model_file, "--references", refs, "--samples-per-image", 2,
            "--grid-photos", 2, "--seed", 3, "--out", out, *FAST)
    assert r.exit_code == 0, r.output
    labels = ["tiny", "identity", "telea", "ns"]
    assert [line.split(":")[0] for line in r.output.strip().splitlines()[:4]] == labels

    data = json.loads((out / "metrics.json").read_text())
    assert list(data["methods"]) == labels
    assert [row["model"] for row in data["methods"].values()] == [str(tiny_model_file), "identity", "telea", "ns"]
    for label, row in data["methods"].items():
        own = json.loads((out / "methods" / label / "metrics.json").read_text())
        assert row["metrics"] == own["metrics"] and own["images"]["inputs"] == 3
        assert own["generation"]["settings"]["seed"] == 3
    assert data["methods"]["tiny"]["samples_per_input"] == [2] and data["methods"]["telea"]["samples_per_input"] == [1]
    assert data["methods"]["tiny"]["description"].endswith("(dpmpp_2m_sde, 2 steps)")
    assert data["methods"]["telea"]["description"] == "OpenCV inpainting, Telea's fast marching method; radius 3"
    assert "diversity_ms_ssim" in data["methods"]["tiny"]["metrics"]
    table = (out / "metrics.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert [line.split(" | ")[0][2:] for line in rows] == labels

    for i in range(3):  # every method saw the same input; known pixels stay the input's
        hole = np.asarray(Image.open(out / "masks" / f"photo{i}.png")) > 0
        given = pixels(out / "inputs" / f"photo{i}.png")
        for label in labels:
            output = pixels(out / "methods" / label / "outputs" / f"photo{i}_s0.png")
            assert np.array_equal(output[~hole], given[~hole]), label
        assert np.array_equal(pixels(out / "methods" / "identity" / "outputs" / f"photo{i}_s0.png"), given)
    assert data["methods"]["telea"]["metrics"]["psnr"] > data["methods"]["identity"]["metrics"]["psnr"] + 3

    grid = Image.open(out / "grid.png")
    assert grid.size == (96 * 6, 18 + 96 * 2)  # columns: input, 4 methods, original; rows: 2 photos
    cell = np.asarray(grid.convert("RGB"))[18 + 96:18 + 192, 96 * 5:96 * 6]
    original = np.asarray(Image.open(out / "references" / "photo1.png").resize((96, 96), Image.Resampling.NEAREST))
    assert np.array_equal(cell, original)

    runs = read_run(out)
    assert [m.label for m in runs] == labels and runs[0].task == {"task": "inpaint", "mask_mode": "free_form_20_30"}
    assert runs[2].output("photo0") == out / "methods" / "telea" / "outputs" / "photo0_s0.png"

    # a re-run with other inputs into the same folder is refused, for models and baselines alike
    r = run("eval", "--task", "inpaint", "--method", "telea", "--references", refs, "--seed", 4, "--out", out, *FAST)
    one_line_error(r, "seed differ")


@needs_effnet
def test_uncrop_baselines_and_a_single_model_run_folder(refs, tmp_path, tiny_model_file):
    out = tmp_path / "uncrop"
    r = run("eval", "--task", "uncrop", "--method", "mirror", "--method", "telea", "--references", refs,
            "--n-images", 2, "--out", out, *FAST)
    assert r.exit_code == 0, r.output
    reference = pixels(out / "references" / "photo0.png")
    mirrored = pixels(out / "methods" / "mirror" / "outputs" / "photo0_s0.png")
    assert np.array_equal(mirrored[:, 16:], reference[:, 15::-1])  # the right half is the left one reflected
    single = tmp_path / "single"
    r = run("eval", "--task", "uncrop", "--model", tiny_model_file, "--references", refs, "--n-images", 1,
            "--out", single, *FAST)
    assert r.exit_code == 0, r.output
    assert (single / "outputs" / "photo0_s0.png").is_file() and not (single / "methods").exists()
    [only] = read_run(single)
    assert only.label == "tiny" and only.task == {"task": "uncrop", "direction": "right"}


def test_method_user_errors_are_one_line(refs, tmp_path, tiny_model_file):
    out = tmp_path / "r"
    one_line_error(run("eval", "--task", "colorize", "--method", "telea", "--references", refs, "--out", out, *FAST),
                   "does not apply to colorize")
    one_line_error(run("eval", "--task", "jpeg", "--method", "mirror", "--references", refs, "--out", out, *FAST),
                   "applies to uncrop")
    one_line_error(run("eval", "--method", "identity", "--outputs", refs, "--references", refs),
                   "does not combine with --method")
    one_line_error(run("eval", "--method", "identity", "--model", tiny_model_file, "--references", refs,
                       "--out", out, *FAST), "add --method model")
    assert not out.exists()
