"""Tasks: colorization (and its exact luminance merge), inpainting, uncropping, JPEG, the mixture."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from palette_cli.imageio import pil_to_tensor, tensor_to_pil
from palette_cli.tasks import (DEFAULT_MULTITASK, TASKS, Task, TaskMixture, get_task, parse_task_spec,
                               task_names)
from palette_cli.tasks.colorize import luma8, merge_luminance, to_gray
from palette_cli.tasks.jpeg import jpeg_degrade, quality_probabilities, sample_jpeg_quality
from palette_cli.tasks.masks import training_mask, uncrop_mask

from .conftest import make_photo


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return pil_to_tensor(make_photo(32, 32, seed=1))


# --------------------------------------------------------------------------- registry and interface


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_makes_a_valid_reproducible_example(name, image):
    task = get_task(name)
    assert isinstance(task, Task) and task.name == name
    a, b = task.make_example(image, gen(5)), task.make_example(image, gen(5))
    assert a.cond.shape == a.target.shape == (3, 32, 32) and a.mask.shape == (1, 32, 32)
    assert torch.equal(a.target, image)
    assert set(a.mask.unique().tolist()) <= {0.0, 1.0} and a.mask.sum() > 0
    assert torch.equal(a.cond, b.cond) and torch.equal(a.mask, b.mask)
    assert a.task == name and set(a.as_dict()) == {"cond", "target", "mask", "start"}


def test_unknown_tasks_and_options_are_refused():
    with pytest.raises(ValueError, match="unknown task"):
        get_task("deblur")
    with pytest.raises(ValueError, match="unknown mask kind"):
        get_task("inpaint", masks="circles")
    with pytest.raises(ValueError):
        get_task("uncrop", directions=("sideways",))
    with pytest.raises(ValueError):
        get_task("jpeg", low=40, high=30)


# --------------------------------------------------------------------------- colorization


def test_colorize_condition_is_bt601_luma_in_three_channels(image):
    ex = get_task("colorize").make_example(image, gen(0))
    r, g, b = image
    expected = 0.299 * r + 0.587 * g + 0.114 * b
    for c in range(3):
        torch.testing.assert_close(ex.cond[c], expected)
    assert ex.mask.min() == 1
    batch = torch.stack([image, -image])
    assert torch.equal(to_gray(batch)[1], to_gray(-image))


def test_luma8_is_pillows_gray_conversion():
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert np.array_equal(luma8(rgb), np.asarray(Image.fromarray(rgb).convert("L")))


def test_merge_keeps_the_gray_input_exactly_at_full_resolution():
    """Exact, not ±1: each output pixel is solved among its 8 integer roundings for the input's luma."""
    rng = np.random.default_rng(1)
    gray_values = np.array(make_photo(61, 47, seed=2).convert("L"))
    gray_values[0, :5] = [0, 1, 254, 255, 128]  # extremes, where the colour must shrink to fit
    gray = Image.fromarray(gray_values)
    colour = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))  # wild, saturated colours
    out = merge_luminance(gray, colour)
    assert out.size == (61, 47) and out.mode == "RGB"
    assert np.array_equal(np.asarray(out.convert("L")), gray_values)
    rgb = np.asarray(out).astype(int)
    assert (rgb.max(-1) - rgb.min(-1)).mean() > 20  # it is coloured, not just gray


def test_merge_accepts_tensors_and_colour_inputs():
    photo = make_photo(40, 30, seed=3)
    small = pil_to_tensor(make_photo(16, 12, seed=4))
    expected = np.asarray(photo.convert("L"))
    for full in (photo, pil_to_tensor(photo)):
        out = merge_luminance(full, small.unsqueeze(0))
        assert np.array_equal(np.asarray(out.convert("L")), expected)
    gray_tensor = pil_to_tensor(photo.convert("L").convert("RGB"))[:1]
    out = merge_luminance(gray_tensor, small)
    assert np.array_equal(np.asarray(out.convert("L")), expected)


def test_merge_takes_its_colour_from_the_generated_image():
    gray = Image.new("L", (48, 48), 120)
    out = np.asarray(merge_luminance(gray, Image.new("RGB", (8, 8), (200, 90, 60)))).astype(int)
    r, g, b = out[..., 0], out[..., 1], out[..., 2]
    assert (r > g + 60).all() and (g > b + 10).all()  # a warm orange-red, like the generated colour
    assert np.array_equal(np.asarray(Image.fromarray(out.astype(np.uint8)).convert("L")), np.full((48, 48), 120))
    same = merge_luminance(gray, Image.new("RGB", (8, 8), (77, 77, 77)))
    assert np.array_equal(np.asarray(same), np.full((48, 48, 3), 120))  # gray colour → the input itself


# --------------------------------------------------------------------------- inpainting and uncropping


def test_inpaint_fills_the_training_mask_with_standard_noise():
    image = torch.zeros(3, 64, 64)
    ex = get_task("inpaint").make_example(image, gen(11))
    g = gen(11)
    mask = training_mask(64, 64, g)
    assert torch.equal(ex.mask, mask)
    noise = torch.randn(3, 64, 64, generator=g)
    assert torch.equal(ex.cond, torch.where(mask.bool().expand(3, -1, -1), noise, image))
    known = ~mask.bool().expand(3, -1, -1)
    assert torch.equal(ex.cond[known], image[known])


def test_inpaint_noise_is_standard_gaussian_in_the_hole():
    image = torch.full((3, 64, 64), 0.5)
    hole = torch.cat([ex.cond[ex.mask.bool().expand(3, -1, -1)]
                      for ex in (get_task("inpaint", masks="center").make_example(image, gen(s)) for s in range(4))])
    assert hole.numel() == 4 * 3 * 32 * 32
    assert abs(float(hole.mean())) < 0.05 and abs(float(hole.std()) - 1) < 0.05
    assert stats.kstest(hole.numpy(), "norm").pvalue > 1e-3


def test_uncrop_example_hides_exactly_half(image):
    task = get_task("uncrop")
    for seed in range(10):
        ex = task.make_example(image, gen(seed))
        assert int(ex.mask.sum()) == 32 * 32 // 2
        assert any(torch.equal(ex.mask, uncrop_mask(32, 32, d)) for d in task.directions)
        known = ~ex.mask.bool().expand(3, -1, -1)
        assert torch.equal(ex.cond[known], image[known])
    right = get_task("uncrop", directions="right").make_example(image, gen(0))
    assert torch.equal(right.mask, uncrop_mask(32, 32, "right"))


# --------------------------------------------------------------------------- JPEG


def test_jpeg_quality_follows_exp_minus_q_over_10():
    g = gen(2024)
    draws = [sample_jpeg_quality(g) for _ in range(20000)]
    assert min(draws) >= 5 and max(draws) <= 30
    probs = quality_probabilities()
    assert list(probs) == list(range(5, 31))
    assert probs[5] / probs[15] == pytest.approx(math.e)
    observed = np.bincount(draws, minlength=31)[5:31]
    expected = np.array(list(probs.values())) * len(draws)
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    # the test has power: uniform qualities are rejected outright
    uniform = np.full(26, len(draws) / 26)
    assert stats.chisquare(uniform, expected).pvalue < 1e-12


def test_jpeg_condition_is_the_pillow_decoded_jpeg_at_the_drawn_quality():
    image = pil_to_tensor(make_photo(40, 32, seed=6))
    ex = get_task("jpeg").make_example(image, gen(9))
    quality = sample_jpeg_quality(gen(9))
    buffer = io.BytesIO()
    tensor_to_pil(image).save(buffer, format="JPEG", quality=quality)
    reference = pil_to_tensor(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    assert torch.equal(ex.cond, reference)
    assert torch.equal(jpeg_degrade(image, quality), reference)
    assert not torch.equal(ex.cond, image) and ex.mask.min() == 1
    errors = [float((jpeg_degrade(image, q) - image).abs().mean()) for q in (5, 30, 95)]
    assert errors[0] > errors[1] > errors[2]
    batch = jpeg_degrade(torch.stack([image, image]), quality)
    assert torch.equal(batch[0], reference) and torch.equal(batch[1], reference)


# --------------------------------------------------------------------------- mixtures and specs


def test_task_specs():
    assert parse_task_spec("colorize").name == "colorize"
    paper = parse_task_spec("colorize+inpaint+jpeg")
    assert isinstance(paper, TaskMixture) and paper.name == "colorize+inpaint+jpeg"
    assert parse_task_spec("multitask").name == "+".join(DEFAULT_MULTITASK) == TaskMixture().name
    weighted = parse_task_spec("colorize:1, inpaint:2")
    assert weighted.probabilities() == pytest.approx({"colorize": 1 / 3, "inpaint": 2 / 3})
    assert parse_task_spec(weighted.name).probabilities() == weighted.probabilities()
    assert TaskMixture.paper(uncrop=True).name == "colorize+inpaint+jpeg+uncrop"
    assert task_names("colorize:1,jpeg:3") == ["colorize", "jpeg"] and task_names("inpaint") == ["inpaint"]
    for bad in ("", "colorize+", "colorize:x", "colorize:0,jpeg:1", "colorize+colorize", "sketch"):
        with pytest.raises(ValueError):
            parse_task_spec(bad)


def test_mixture_draws_tasks_in_proportion_to_weights(image):
    mixture = parse_task_spec("colorize:1,jpeg:3")
    small = image[:, :8, :8]
    seen = [mixture.make_example(small, gen(seed)).task for seed in range(800)]
    jpeg_share = seen.count("jpeg") / len(seen)
    assert set(seen) == {"colorize", "jpeg"}
    assert abs(jpeg_share - 0.75) < 4 * math.sqrt(0.75 * 0.25 / 800)
    default = TaskMixture()
    assert {default.make_example(small, gen(s)).task for s in range(60)} == set(DEFAULT_MULTITASK)
