"""Classical fills: where a bridge model starts inpainting (reflections of the hole's border, smooth where
none reaches) and uncropping (mirror)."""

import pytest
import torch

from palette_cli.tasks import get_task
from palette_cli.tasks.fill import mirror_fill, reflect_fill, smooth_fill


def _hole(h=37, w=45):
    m = torch.zeros(1, h, w)
    m[:, 10:30, 5:25] = 1
    return m


def test_smooth_fill_keeps_known_pixels_and_constants():
    img = torch.rand(3, 37, 45) * 2 - 1
    m = _hole()
    out = smooth_fill(img, m)
    assert torch.equal(out[:, m[0] == 0], img[:, m[0] == 0])
    const = torch.full((3, 37, 45), 0.3)
    assert torch.allclose(smooth_fill(const, m), const, atol=1e-6)


def test_smooth_fill_interpolates_a_gradient_and_handles_batches():
    xx = torch.arange(45.0).expand(37, -1)
    ramp = (xx / 44 * 2 - 1).expand(3, -1, -1)
    m = _hole()
    out = smooth_fill(ramp, m)
    err = (out - ramp)[:, m[0].bool()].abs()
    assert err.mean() < 0.03 and err.max() < 0.1  # a smooth surface, close to the plane it replaces
    both = smooth_fill(torch.stack([ramp, -ramp]), torch.stack([m, m]))
    assert torch.allclose(both[0], out) and torch.allclose(both[1], smooth_fill(-ramp, m))
    assert torch.equal(smooth_fill(ramp, torch.ones(1, 37, 45)), torch.zeros(3, 37, 45))  # nothing known


def test_mirror_fill_reflects_the_known_side():
    img = torch.rand(3, 20, 30) * 2 - 1
    m = torch.zeros(1, 20, 30)
    m[..., 15:] = 1  # right half unknown
    out = mirror_fill(img, m)
    assert torch.equal(out[..., :15], img[..., :15])
    assert torch.equal(out[..., 15:], img[..., :15].flip(-1))
    m = torch.zeros(1, 20, 30)
    m[..., :5, :] = 1  # a band on top, narrower than the known part
    assert torch.equal(mirror_fill(img, m)[..., :5, :], img[..., 5:10, :].flip(-2))
    wide = torch.zeros(1, 20, 30)
    wide[..., 10:] = 1  # twice the known width: reflected, then reflected back
    out = mirror_fill(img, wide)
    assert torch.equal(out[..., 10:20], img[..., :10].flip(-1)) and torch.equal(out[..., 20:], img[..., :10])


def test_reflect_fill_carries_stripes_into_a_hole():
    """Random vertical stripes with a wide, short hole: the reflections from above and below copy each
    column exactly and dominate (nearest border), so the stripes carry on through the hole, where a
    smooth fill gives their blur. Known pixels stay, values stay within the known ones."""
    g = torch.Generator().manual_seed(0)
    img = (torch.rand(1, 1, 40, generator=g) * 2 - 1).expand(3, 32, 40).clone()
    m = torch.zeros(1, 32, 40)
    m[:, 14:19, 4:36] = 1
    out = reflect_fill(img, m)
    hole = m[0] == 1
    assert torch.equal(out[:, ~hole], img[:, ~hole])
    assert out.abs().max() <= 1
    err = (out - img)[:, hole].abs().mean()
    assert err < 0.3 * (smooth_fill(img, m) - img)[:, hole].abs().mean()
    one_row = torch.arange(8.0).view(1, 1, 8)
    hole = torch.zeros(1, 1, 8)
    hole[..., 5:] = 1  # the right end: only the left border reflects, as the mirror does
    assert reflect_fill(one_row, hole).flatten().tolist() == [0, 1, 2, 3, 4, 4, 3, 2]
    lone = torch.zeros(1, 3, 3)
    lone[..., 1, 1] = 1  # a single pixel: its four neighbours, equally weighted
    ramp = torch.tensor([[0.0, 1, 0], [2, 9, 4], [0, 3, 0]]).view(1, 3, 3)
    assert reflect_fill(ramp, lone)[0, 1, 1].item() == 2.5


def test_tasks_give_bridge_starts():
    img = torch.rand(3, 32, 32) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    ex = get_task("uncrop", directions="right").make_example(img, gen)
    assert torch.equal(ex.start, mirror_fill(img, ex.mask))
    ex = get_task("inpaint", masks="center").make_example(img, gen)
    assert torch.equal(ex.start, reflect_fill(img, ex.mask)) and torch.equal(ex.start, mirror_fill(img, ex.mask))
    ex = get_task("inpaint").make_example(img, gen)
    assert torch.equal(ex.start, mirror_fill(img, ex.mask))
    ex = get_task("jpeg").make_example(img, gen)
    assert ex.start is None and torch.equal(ex.as_dict()["start"], ex.cond)


def test_restart_fills_gives_fill_examples_the_smooth_start_only():
    from palette_cli.tasks.starts import fill_start, restart_fills

    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
    mask = torch.ones(3, 1, 16, 16)
    mask[0, :, 4:12, 4:12] = 0  # example 0 is a fill (a known centre, unknown around it); 1 and 2 are not
    start = torch.rand(3, 3, 16, 16, generator=g)
    batch = {"cond": start, "target": target, "mask": mask, "start": start}
    assert restart_fills(batch, "mirror") is batch
    out = restart_fills(batch, "smooth")
    assert torch.equal(out["start"][1:], start[1:])
    assert torch.allclose(out["start"][0], smooth_fill(target[0], mask[0]))
    assert torch.equal(out["start"][0][:, 4:12, 4:12], target[0][:, 4:12, 4:12])
    with pytest.raises(ValueError, match="unknown fill start"):
        fill_start("reflect", target, mask)
