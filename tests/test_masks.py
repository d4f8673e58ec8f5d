"""Mask statistics against the paper's settings; masks are binary, pure and reproducible."""

from __future__ import annotations

import math

import pytest
import torch

from palette_cli.tasks import masks as M


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_binary(mask: torch.Tensor, h: int, w: int) -> None:
    assert mask.shape == (1, h, w) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_box_masks_have_one_to_five_boxes_covering_10_to_40_percent():
    counts, areas = [], []
    for seed in range(400):
        boxes = M.random_boxes(48, 64, gen(seed))
        mask = M.boxes_to_mask(48, 64, boxes)
        assert_binary(mask, 48, 64)
        counts.append(len(boxes))
        areas.append(M.mask_area(mask))
        for top, left, bh, bw in boxes:
            assert 0 <= top and top + bh <= 48 and 0 <= left and left + bw <= 64 and bh >= 1 and bw >= 1
    assert set(counts) == {1, 2, 3, 4, 5}
    for c in range(1, 6):  # the count is uniform on 1..5: each about 80 of 400
        assert 45 <= counts.count(c) <= 120
    assert min(areas) >= 0.10 and max(areas) < 0.40
    assert min(areas) < 0.13 and max(areas) > 0.37  # the whole range is used
    assert torch.equal(M.box_mask(48, 64, gen(3)), M.boxes_to_mask(48, 64, M.random_boxes(48, 64, gen(3))))


def test_free_form_masks_are_brush_strokes_of_plausible_area():
    areas = []
    for seed in range(200):
        mask = M.free_form_mask(64, 64, gen(seed))
        assert_binary(mask, 64, 64)
        areas.append(M.mask_area(mask))
    areas_t = torch.tensor(areas)
    assert areas_t.min() > 0 and areas_t.max() < 0.7
    assert 0.08 < areas_t.median() < 0.25  # DeepFill v2 strokes cover ~15% of the image on average


@pytest.mark.parametrize("name,low,high", [("free_form_10_20", 0.1, 0.2), ("free_form_20_30", 0.2, 0.3),
                                           ("free_form_30_40", 0.3, 0.4)])
def test_free_form_eval_buckets_hit_their_range(name, low, high):
    for seed in range(40):
        mask = M.EVAL_MASKS[name](32, 32, gen(seed))
        assert_binary(mask, 32, 32)
        assert low <= M.mask_area(mask) < high


def test_centre_box_is_128_at_256_and_scales_with_resolution():
    mask = M.center_box_mask(256, 256)
    assert mask.sum() == 128 * 128
    assert mask[0, 64:192, 64:192].all() and mask[0, :64].sum() == 0 and mask[0, :, 192:].sum() == 0
    small = M.center_box_mask(32, 48)
    assert small.sum() == 16 * 24 and small[0, 8:24, 12:36].all()


def test_training_mixture_is_sixty_percent_free_form():
    free_form = 0
    n = 600
    for seed in range(n):
        g = gen(seed)
        mask = M.training_mask(32, 32, g)
        g2 = gen(seed)
        chose_free_form = float(torch.rand((), generator=g2, dtype=torch.float64)) < M.FREE_FORM_SHARE
        expected = M.free_form_mask(32, 32, g2) if chose_free_form else M.box_mask(32, 32, g2)
        assert torch.equal(mask, expected)
        free_form += chose_free_form
    # binomial(600, 0.6): sd = 12
    assert abs(free_form - 0.6 * n) < 4 * math.sqrt(n * 0.6 * 0.4)


@pytest.mark.parametrize("fn", [M.free_form_mask, M.box_mask, M.training_mask, M.EVAL_MASKS["free_form_20_30"]])
def test_masks_are_reproducible_per_seed_and_vary_across_seeds(fn):
    a, b, c = fn(40, 56, gen(7)), fn(40, 56, gen(7)), fn(40, 56, gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("h,w", [(64, 64), (256, 256), (32, 48), (40, 24)])
@pytest.mark.parametrize("direction", M.UNCROP_DIRECTIONS)
def test_uncrop_masks_are_exactly_half(h, w, direction):
    mask = M.uncrop_mask(h, w, direction)
    assert_binary(mask, h, w)
    assert int(mask.sum()) == h * w // 2


def test_uncrop_directions_are_right():
    h, w = 16, 20
    left, right = M.uncrop_mask(h, w, "left"), M.uncrop_mask(h, w, "right")
    top, bottom = M.uncrop_mask(h, w, "top"), M.uncrop_mask(h, w, "bottom")
    assert left[0, :, :10].all() and left[0, :, 10:].sum() == 0
    assert right[0, :, 10:].all() and right[0, :, :10].sum() == 0
    assert top[0, :8].all() and top[0, 8:].sum() == 0
    assert bottom[0, 8:].all() and bottom[0, :8].sum() == 0
    frame = M.uncrop_mask(h, w, "all")
    # all four borders unknown, the centre known
    assert frame[0, 0].all() and frame[0, -1].all() and frame[0, :, 0].all() and frame[0, :, -1].all()
    assert frame[0, h // 2, w // 2] == 0


def test_uncrop_all_is_a_centred_near_square_at_256():
    frame = M.uncrop_mask(256, 256, "all")[0]
    known = (frame == 0).nonzero()
    rows, cols = known[:, 0], known[:, 1]
    assert int(frame.sum()) == 32768
    # 181 ≈ 256/√2 rows by 181 columns, plus a partial 182nd column of fewer than 181 pixels
    assert rows.max() - rows.min() + 1 == 181
    assert 181 <= cols.max() - cols.min() + 1 <= 182
    assert abs((rows.min() + rows.max()) / 2 - 127.5) <= 1 and abs((cols.min() + cols.max()) / 2 - 127.5) <= 1


def test_random_uncrop_draws_each_direction_about_equally():
    seen = {}
    for seed in range(500):
        mask = M.random_uncrop_mask(8, 8, gen(seed))
        key = next(d for d in M.UNCROP_DIRECTIONS if torch.equal(mask, M.uncrop_mask(8, 8, d)))
        seen[key] = seen.get(key, 0) + 1
    assert set(seen) == set(M.UNCROP_DIRECTIONS)
    assert all(60 <= n <= 140 for n in seen.values())  # 100 expected each, sd ≈ 9


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        M.uncrop_mask(8, 8, "diagonal")
    with pytest.raises(ValueError):
        M.get_mask_fn("stars")
    with pytest.raises(ValueError):
        M.free_form_mask_in_range(8, 8, gen(0), 0.5, 0.4)
