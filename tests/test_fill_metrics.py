"""The fill metrics: a copy (mirrored or shifted) is caught, new content is not; sample spread in levels."""

import pytest
import torch

from palette_cli.metrics.fills import (copy_score, detail, fill_spread, hole_box, hole_copy_score, uncrop_band,
                                      uncrop_copy_score)
from palette_cli.tasks.fill import mirror_fill, reflect_fill, smooth_fill


def textured(h=64, w=64, seed=0):
    """Random texture with structure at several scales, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(3, h, w)
    for scale in (1, 2, 4, 8):
        noise = torch.rand(3, h // scale + 1, w // scale + 1, generator=g)
        out += torch.nn.functional.interpolate(noise[None], scale_factor=scale, mode="bilinear")[0, :, :h, :w] / 4
    return out


def right_half(h=64, w=64):
    mask = torch.zeros(1, h, w)
    mask[..., w // 2:] = 1
    return mask


def test_mirror_and_shifted_copies_score_one_new_texture_scores_low():
    img, mask = textured(), right_half()
    mirrored = (mirror_fill(img * 2 - 1, mask) + 1) / 2
    assert uncrop_copy_score(mirrored, mask) > 0.99
    shifted = img.clone()
    shifted[:, :, 32:] = img[:, :, 5:37]  # the known band copied 27 px to the right: a shift of 5 px
    assert uncrop_copy_score(shifted, mask) > 0.95  # (the blur across the seam mixes the two sides a little)
    fresh = img.clone()
    fresh[:, :, 32:] = textured(seed=1)[:, :, 32:]  # an unrelated texture of the same kind
    assert uncrop_copy_score(fresh, mask) < 0.2
    smooth = (smooth_fill(img * 2 - 1, mask) + 1) / 2  # no detail at all: nothing copied
    assert uncrop_copy_score(smooth, mask) < 0.3


def test_copy_score_other_sides_and_non_bands():
    img = textured(48, 80)
    for side in ("left", "top", "bottom"):
        mask = torch.zeros(1, 48, 80)
        if side == "left":
            mask[..., :20] = 1
        elif side == "top":
            mask[..., :12, :] = 1
        else:
            mask[..., 30:, :] = 1
        assert uncrop_band(mask)[0] == side
        mirrored = (mirror_fill(img * 2 - 1, mask) + 1) / 2
        assert uncrop_copy_score(mirrored, mask) > 0.99
    hole = torch.zeros(1, 48, 80)
    hole[..., 10:20, 10:20] = 1
    assert uncrop_band(hole) is None and uncrop_copy_score(img, hole) is None
    both = torch.zeros(1, 48, 80)
    both[..., :5] = 1
    both[..., -5:] = 1
    assert uncrop_band(both) is None
    with pytest.raises(ValueError, match="one shape"):
        copy_score(detail(img)[:, :10], detail(img)[:, :12])


def test_detail_removes_smooth_colour():
    ramp = torch.linspace(0, 1, 64).view(1, 1, 64).expand(3, 32, 64)
    assert detail(ramp)[:, 8:-8].abs().max() < 1e-6  # a linear ramp is all local mean, no detail


def test_fill_spread_is_in_levels_of_255_inside_the_mask():
    base = torch.full((3, 3, 8, 8), 0.5)
    base[1] += 0.1  # sample 1 differs by 25.5 levels everywhere
    mask = torch.zeros(1, 8, 8)
    mask[..., :4] = 1
    # pairs (0,1) and (1,2) differ by 25.5, pair (0,2) by 0: mean 17
    assert fill_spread(base, mask) == pytest.approx(17.0, abs=1e-4)
    base[2, :, :, 4:] = 0.0  # outside the mask: not counted
    assert fill_spread(base, mask) == pytest.approx(17.0, abs=1e-4)
    with pytest.raises(ValueError, match="K >= 2"):
        fill_spread(base[:1], mask)


def box(h=256, w=256, top=64, left=64, bh=128, bw=128):
    """A rectangular hole; by default the evaluation's 128² centre box in a 256² image."""
    mask = torch.zeros(1, h, w)
    mask[..., top:top + bh, left:left + bw] = 1
    return mask


def test_hole_copy_score_catches_reflections_not_new_texture():
    img, mask = textured(256, 256), box()
    assert hole_box(mask) == (64, 64, 128, 128)
    reflected = (reflect_fill(img * 2 - 1, mask) + 1) / 2  # what palette-fill starts from
    assert hole_copy_score(reflected, mask) > 0.9
    shifted = img.clone()  # the known strip left of the hole copied into it unflipped, 3 px lower
    shifted[:, 90:170, 68:100] = img[:, 87:167, 28:60]
    assert hole_copy_score(shifted, mask) > 0.9
    for seed in (1, 2, 3):  # an unrelated texture of the same kind: about what unrelated parts of a photo score
        fresh = img.clone()
        fresh[:, 64:192, 64:192] = textured(256, 256, seed=seed)[:, 64:192, 64:192]
        assert hole_copy_score(fresh, mask) < 0.2
    smooth = (smooth_fill(img * 2 - 1, mask) + 1) / 2
    assert hole_copy_score(smooth, mask) < 0.2


def test_hole_copy_score_top_and_bottom_sides_and_non_boxes():
    img, mask = textured(256, 256), box()
    copied = img.clone()  # only the strip below the hole, mirrored up into it: caught through the bottom side
    copied[:, 156:188, 90:166] = img[:, 196:228, 90:166].flip(-2)
    assert hole_copy_score(copied, mask) > 0.9
    assert hole_copy_score(copied.transpose(-1, -2), mask) > 0.9  # the same through the right side
    assert hole_box(right_half(256, 256)) is None and hole_copy_score(img, right_half(256, 256)) is None
    ring = box()
    ring[..., 100:110, 100:110] = 0  # a known island inside: not one rectangle
    assert hole_box(ring) is None
    assert hole_box(box(top=0)) is None  # touching the border: an uncropping band's kind, not a hole
    assert hole_box(torch.zeros(1, 256, 256)) is None
