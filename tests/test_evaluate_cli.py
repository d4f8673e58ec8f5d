"""`palette eval` end to end on a tiny random model: inputs, outputs, references, scores, score-only mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from palette_cli.cli.app import app
from palette_cli.data import center_crop
from palette_cli.evaluate import EvalTask, EvaluationError, generate_outputs, make_eval_input
from palette_cli.imageio import read_metadata
from palette_cli.pipeline import SamplerSettings
from palette_cli.tasks.colorize import luma8
from palette_cli.tasks.jpeg import jpeg_roundtrip

from .conftest import make_photo
from .test_features import needs_effnet

runner = CliRunner()
FAST = ["--size", 32, "--sampling-steps", 2, "--device", "cpu", "--precision", "fp32", "--threads", 1, "--quiet"]
PIXEL_METRICS = {"psnr", "ssim", "ms_ssim", "colour_error", "colourfulness", "colourfulness_ratio", "ab_error"}
EFFNET_METRICS = PIXEL_METRICS | {"fid_effnet_lite0", "kid_effnet_lite0", "is_effnet_lite0",
                  "is_effnet_lite0_references", "ca_effnet_lite0", "pd_effnet_lite0", "diversity_ms_ssim", "diversity_ab",
                  "diversity_lpips_effnet_lite0"}


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def refs(tmp_path):
    """Four photos of different shapes (the eval takes their largest centre square)."""
    d = tmp_path / "refs"
    d.mkdir()
    for i, (w, h) in enumerate([(48, 40), (40, 56), (36, 36), (64, 44)]):
        make_photo(w, h, seed=i).save(d / f"photo{i}.png")
    return d


def generate(model, task, refs, out, seed=0, n=2, **kw):
    return generate_outputs(model, task, refs, out, n_images=n, size=32, seed=seed, device="cpu", precision="fp32",
                            threads=1, settings=SamplerSettings("dpmpp_2m", 1), log=None, **kw)


@needs_effnet
def test_eval_inpaint_end_to_end_then_score_only(refs, tmp_path, tiny_model_file):
    out = tmp_path / "run"
    r = run("eval", "--task", "inpaint", "--references", refs, "--n-images", 3, "--samples-per-image", 2,
            "--mask-mode", "free_form_20_30", "--model", tiny_model_file, "--seed", 5, "--out", out, *FAST)
    assert r.exit_code == 0, r.output
    assert "generation" in r.output and "s/image" in r.output and "scoring" in r.output

    names = ["photo0", "photo1", "photo2"]
    assert sorted(p.name for p in (out / "outputs").glob("*.png")) == [f"{n}_s{k}.png" for n in names for k in (0, 1)]
    for folder in ("references", "inputs", "masks"):
        assert sorted(p.stem for p in (out / folder).glob("*.png")) == names
    for path in out.rglob("*.png"):
        assert Image.open(path).size == (32, 32), path

    for i, name in enumerate(names):
        reference = pixels(out / "references" / f"{name}.png")
        expected = np.asarray(center_crop(Image.open(refs / f"{name}.png").convert("RGB"), 32), dtype=np.int16)
        assert np.array_equal(reference, expected)
        hole = np.asarray(Image.open(out / "masks" / f"{name}.png")) > 0
        assert 0.2 <= hole.mean() < 0.3  # the 20–30% free-form bucket
        degraded = pixels(out / "inputs" / f"{name}.png")
        assert np.array_equal(degraded[~hole], reference[~hole])  # known pixels untouched
        assert (degraded[hole] != reference[hole]).any(-1).mean() > 0.9  # the hole is noise
        for k in (0, 1):
            output = pixels(out / "outputs" / f"{name}_s{k}.png")
            assert np.array_equal(output[~hole], reference[~hole])  # only the hole is generated
        first, second = (pixels(out / "outputs" / f"{name}_s{k}.png") for k in (0, 1))
        assert not np.array_equal(first, second)
    meta = read_metadata(out / "outputs" / "photo0_s0.png")
    assert meta["task"] == "inpaint" and meta["mask_mode"] == "free_form_20_30" and meta["seed"] == "5"

    data = json.loads((out / "metrics.json").read_text())
    assert set(data["metrics"]) == EFFNET_METRICS | {"fill_spread"}  # the masks/ folder adds the fill metrics
    assert all(isinstance(v, float) for v in data["metrics"].values())
    spreads = []  # the samples' mean absolute difference inside each hole, in levels
    for name in names:
        hole = np.asarray(Image.open(out / "masks" / f"{name}.png")) > 0
        first, second = (pixels(out / "outputs" / f"{name}_s{k}.png") for k in (0, 1))
        spreads.append(np.abs(first - second)[hole].mean())
    assert data["metrics"]["fill_spread"] == pytest.approx(float(np.mean(spreads)), abs=1e-3)
    assert 0 < data["metrics"]["ssim"] < 1 and 5 < data["metrics"]["psnr"] < 60
    assert data["images"]["inputs"] == 3 and data["images"]["samples_per_input"] == [2]
    gen = data["generation"]
    assert gen["images"]["generated"] == 3 and gen["model_calls_per_sample"] == 2
    assert gen["settings"]["sampler"] == "dpmpp_2m_sde" and gen["timing_s"]["generation_per_image"] > 0
    assert "## Generation" in (out / "metrics.md").read_text()

    # a re-run keeps the outputs; other settings into the same folder are refused in one line
    before = (out / "outputs" / "photo0_s0.png").stat().st_mtime_ns
    r = run("eval", "--task", "inpaint", "--references", refs, "--n-images", 3, "--samples-per-image", 2,
            "--model", tiny_model_file, "--seed", 5, "--out", out, *FAST)
    assert r.exit_code == 0 and (out / "outputs" / "photo0_s0.png").stat().st_mtime_ns == before
    r = run("eval", "--task", "inpaint", "--references", refs, "--n-images", 3, "--samples-per-image", 2,
            "--model", tiny_model_file, "--seed", 6, "--out", out, *FAST)
    assert r.exit_code == 1 and "seed differ" in r.output and len(r.output.strip().splitlines()) == 1

    # score only: the same outputs against the original photos (centre-cropped and resized to fit)
    r = run("eval", "--outputs", out / "outputs", "--references", refs, "--out", tmp_path / "report", "--quiet")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["images"]["inputs"] == 3 and report["images"]["unmatched_outputs"] == 0
    assert report["metrics"]["psnr"] == pytest.approx(data["metrics"]["psnr"], abs=0.5)
    r = run("eval", "--outputs", out / "outputs", "--references", out / "references", "--out", tmp_path / "r2", "-q")
    assert r.exit_code == 0, r.output
    same = json.loads((tmp_path / "r2" / "metrics.json").read_text())["metrics"]
    assert same["psnr"] == pytest.approx(data["metrics"]["psnr"])
    assert same["ssim"] == pytest.approx(data["metrics"]["ssim"])


def test_inputs_are_the_degraded_references(refs, tmp_path, tiny_model_file):
    out = tmp_path / "colorize"
    generate(tiny_model_file, "colorize", refs, out)
    for name in ("photo0", "photo1"):
        gray = pixels(out / "inputs" / f"{name}.png")
        assert (gray == gray[..., :1]).all()  # R = G = B
        ref = pixels(out / "references" / f"{name}.png").astype(np.float64)
        assert np.abs(gray[..., 0] - ref @ [0.299, 0.587, 0.114]).max() <= 1  # BT.601 luma of the reference
        output = pixels(out / "outputs" / f"{name}_s0.png")
        assert np.array_equal(luma8(output), gray[..., 0])  # the colour keeps the input's luma exactly
        assert not (output == output[..., :1]).all()

    out = tmp_path / "jpeg"
    generate(tiny_model_file, EvalTask("jpeg", jpeg_quality=7), refs, out)
    for name in ("photo0", "photo1"):
        reference = Image.open(out / "references" / f"{name}.png")
        assert np.array_equal(pixels(out / "inputs" / f"{name}.png"), np.asarray(jpeg_roundtrip(reference, 7)))
        assert not np.array_equal(pixels(out / "inputs" / f"{name}.png"), pixels(out / "references" / f"{name}.png"))

    out = tmp_path / "uncrop"
    generate(tiny_model_file, "uncrop", refs, out)
    hole = np.asarray(Image.open(out / "masks" / "photo0.png")) > 0
    assert hole[:, 16:].all() and not hole[:, :16].any()  # the right half, as the paper evaluates
    output, reference = pixels(out / "outputs" / "photo0_s0.png"), pixels(out / "references" / "photo0.png")
    assert np.array_equal(output[:, :16], reference[:, :16]) and not np.array_equal(output, reference)


def test_same_seed_same_inputs_for_any_subset(refs, tmp_path, tiny_model_file):
    task = EvalTask("inpaint", mask_mode="free_form_10_20")
    a = make_eval_input(refs / "photo1.png", "photo1", task, 32, seed=3, index=1)
    b = make_eval_input(refs / "photo1.png", "photo1", task, 32, seed=3, index=1)
    c = make_eval_input(refs / "photo1.png", "photo1", task, 32, seed=4, index=1)
    assert torch.equal(a.mask, b.mask) and np.array_equal(np.asarray(a.input), np.asarray(b.input))
    assert not torch.equal(a.mask, c.mask)

    # two photos, then three: the first two inputs and outputs are identical
    generate(tiny_model_file, task, refs, tmp_path / "two", seed=3, n=2)
    generate(tiny_model_file, task, refs, tmp_path / "three", seed=3, n=3)
    for name in ("photo0", "photo1"):
        for folder, file in (("inputs", f"{name}.png"), ("masks", f"{name}.png"), ("outputs", f"{name}_s0.png")):
            assert np.array_equal(pixels(tmp_path / "two" / folder / file), pixels(tmp_path / "three" / folder / file))
    assert np.array_equal(pixels(tmp_path / "two" / "inputs" / "photo1.png"), np.asarray(b.input))


def test_user_errors_are_one_line(refs, tmp_path, tiny_model_file):
    def one_line_error(*args, expect):
        r = run("eval", *args)
        assert r.exit_code != 0
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and "Error" in lines[0] and expect in lines[0], r.output

    out = tmp_path / "run"
    one_line_error("--references", tmp_path / "missing", "--model", tiny_model_file, "--out", out, *FAST,
                   expect="no such file or folder")
    (tmp_path / "empty").mkdir()
    one_line_error("--references", tmp_path / "empty", "--model", tiny_model_file, "--out", out, *FAST,
                   expect="no reference photos")
    one_line_error("--references", refs, "--model", tmp_path / "nope.safetensors", "--out", out, *FAST,
                   expect="model file not found")
    one_line_error("--references", refs, "--model", tiny_model_file, *FAST, expect="--out")
    one_line_error("--outputs", tmp_path / "empty", "--references", refs, expect="folder holds no image files")
    one_line_error("--outputs", refs, "--references", tmp_path / "empty", expect="no reference photos")
    one_line_error("--references", refs, "--masks", refs, "--out", out, *FAST, expect="--masks goes with --outputs")
    one_line_error("--outputs", refs, "--references", refs, "--masks", tmp_path / "nope", expect="no such folder")
    with pytest.raises(EvaluationError, match="unknown task"):
        EvalTask("sharpen")


@needs_effnet
def test_score_only_with_masks_gives_the_copy_score_of_a_mirror_and_of_a_real_continuation(tmp_path):
    """--masks adds the fill metrics to --outputs scoring: an uncropped half that is the mirror of the known
    half copies it (copy score 1); the photo's own other half does not (near 0)."""
    refs, outs, mirrors, masks = (tmp_path / d for d in ("refs", "outs", "mirrors", "masks"))
    for d in (refs, outs, mirrors, masks):
        d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        photo = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
        Image.fromarray(photo).save(refs / f"p{i}.png")
        Image.fromarray(photo).save(outs / f"p{i}.png")
        mirrored = photo.copy()
        mirrored[:, 16:] = photo[:, :16][:, ::-1]
        Image.fromarray(mirrored).save(mirrors / f"p{i}.png")
        mask = np.zeros((32, 32), np.uint8)
        mask[:, 16:] = 255
        Image.fromarray(mask).save(masks / f"p{i}.png")
    scores = {}
    for name, folder in (("real", outs), ("mirror", mirrors)):
        r = run("eval", "--task", "uncrop", "--outputs", folder, "--references", refs, "--masks", masks,
                "--out", tmp_path / f"score-{name}", "--threads", 1, "--quiet")
        assert r.exit_code == 0, r.output
        scores[name] = json.loads((tmp_path / f"score-{name}" / "metrics.json").read_text())["metrics"]["copy_score"]
    assert scores["mirror"] > 0.99 and scores["real"] < 0.3
