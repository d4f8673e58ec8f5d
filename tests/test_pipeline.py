import numpy as np
import pytest
import torch
from PIL import Image

from palette_cli.pipeline import Pipeline, SamplerSettings, hole_windows, tiled_net, working_size
from tests.conftest import make_photo, tiny_net

FAST = SamplerSettings("dpmpp_2m", 3)


@pytest.fixture(scope="module")
def pipe(tiny_model_file):
    return Pipeline.from_file(tiny_model_file, device="cpu", precision="fp32", resolution=32)


def test_working_size_keeps_area_aspect_and_divisor():
    w, h = working_size(1024, 512, 256, 16)
    assert w % 16 == 0 and h % 16 == 0
    assert abs(w * h - 256 * 256) / (256 * 256) < 0.1 and w / h == pytest.approx(2.0, rel=0.1)
    assert working_size(10, 10, 256, 8) == (256, 256)


def test_hole_windows_group_near_holes_and_split_far_ones():
    mask = torch.zeros(400, 400)
    mask[10:20, 10:20] = 1
    mask[25:30, 25:30] = 1  # close to the first: same window
    mask[350:360, 370:380] = 1  # far away: its own window
    wins = list(hole_windows(mask, 32))
    assert len(wins) == 2
    covered = torch.zeros_like(mask)
    for x0, y0, x1, y1 in wins:
        assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 400
        covered[y0:y1, x0:x1] = 1
    assert torch.all(covered[mask.bool()] == 1)


def test_tiled_net_equals_whole_canvas_for_a_local_model():
    """For a pointwise 'network' the blended tiles must equal one pass over the whole canvas: no seams."""
    def net(y, g, c):
        return y * g.view(-1, 1, 1, 1) + 0.5 * c

    cond = torch.randn(2, 3, 70, 90)
    y = torch.randn(2, 3, 70, 90)
    g = torch.tensor([0.3, 0.7])
    tiled = tiled_net(net, cond, tile=32, overlap=8)(y, g, cond)
    assert torch.allclose(tiled, net(y, g, cond), atol=1e-6)


def test_tiles_start_on_the_alignment_grid():
    """Restoration tiles start on JPEG's 16-px block grid, so every tile sees the blocks where they are."""
    from palette_cli.windows import tile_starts

    starts = tile_starts(400, 128, 32, align=16)
    assert all(s % 16 == 0 for s in starts) and starts[0] == 0 and starts[-1] == 400 - 128
    assert all(b - a <= 128 - 32 for a, b in zip(starts, starts[1:]))  # overlaps at least as asked


def test_inpaint_changes_only_the_hole(pipe):
    img = make_photo(80, 60)
    mask = torch.zeros(1, 60, 80)
    mask[:, 20:35, 30:50] = 1
    out = pipe.inpaint(img, mask, FAST, torch.Generator().manual_seed(0), num_samples=2)
    a, o = np.asarray(img), [np.asarray(x) for x in out]
    keep = mask[0].numpy() == 0
    assert all(x.shape == a.shape for x in o)
    assert all(np.array_equal(x[keep], a[keep]) for x in o)
    assert not np.array_equal(o[0][~keep], a[~keep])
    assert not np.array_equal(o[0][~keep], o[1][~keep])  # two samples differ


def test_seeded_runs_are_identical(pipe):
    img = make_photo(40, 40)
    a = pipe.colorize(img, FAST, torch.Generator().manual_seed(5))[0]
    b = pipe.colorize(img, FAST, torch.Generator().manual_seed(5))[0]
    c = pipe.colorize(img, FAST, torch.Generator().manual_seed(6))[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_colorize_keeps_luminance_at_full_resolution(pipe):
    from palette_cli.tasks.colorize import luma8

    img = make_photo(100, 70).convert("L").convert("RGB")
    out = pipe.colorize(img, FAST, torch.Generator().manual_seed(0))[0]
    assert out.size == img.size
    assert np.abs(luma8(np.asarray(out)).astype(int) - luma8(np.asarray(img)).astype(int)).max() <= 1


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_uncrop_grows_and_keeps_the_original(pipe, side):
    img = make_photo(40, 30)
    out = pipe.extend(img, side, 25, FAST, torch.Generator().manual_seed(0))[0]
    horizontal = side in ("left", "right")
    assert out.size == ((65, 30) if horizontal else (40, 55))
    x = 25 if side == "left" else 0
    y = 25 if side == "top" else 0
    assert np.array_equal(np.asarray(out)[y:y + 30, x:x + 40], np.asarray(img))


def test_panorama_has_the_papers_proportions(pipe):
    """The paper: 256×256, 8 steps of 128 px each side → 256×2304. Scaled by 1/8: 32×32 → 32×288."""
    img = make_photo(32, 32)
    frames = []
    out = pipe.panorama(img, 8, SamplerSettings("ddim", 2), torch.Generator().manual_seed(0), on_frame=frames.append)
    assert out.size == (288, 32) and len(frames) == 16
    assert np.array_equal(np.asarray(out)[:, 128:160], np.asarray(img))


class _PointwiseNet(torch.nn.Module):
    """A 'network' without spatial context: each output pixel depends on that pixel of y and cond only."""

    def forward(self, y, level, cond):
        return 0.8 * y * level.view(-1, 1, 1, 1).to(y.dtype) + 0.3 * cond


def _pipeline(net, **extra):
    from palette_cli.checkpoint import ModelInfo

    info = ModelInfo(net={"image_size": 32}, tasks=["jpeg"], extra=extra)
    return Pipeline(net, info, device="cpu", precision="fp32", resolution=32)


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_restore_tiles_large_images_at_native_size(pipe):
    """Tiles leave no trace: for a model without spatial context and a deterministic sampler, restoring
    in small overlapping tiles gives the single-tile result (to within 8-bit rounding), on a canvas that
    is padded to the block grid and cropped back; the model does change the image."""
    img = make_photo(90, 90, seed=4)
    point = _pipeline(_PointwiseNet())
    single = point.restore(img, FAST, torch.Generator().manual_seed(0), tile=96, overlap=0)[0]
    assert single.size == (90, 90)
    assert np.abs(_pixels(single) - _pixels(img)).mean() > 5
    for tile, overlap in ((32, 8), (48, 16), (64, 0)):
        tiled = point.restore(img, FAST, torch.Generator().manual_seed(0), tile=tile, overlap=overlap)[0]
        assert np.abs(_pixels(tiled) - _pixels(single)).max() <= 1, (tile, overlap)
    # A real network at native size, with a width and height off the block grid.
    out = pipe.restore(make_photo(100, 70), FAST, torch.Generator().manual_seed(0), tile=32, overlap=8)[0]
    assert out.size == (100, 70)


def test_restore_with_an_untrained_bridge_returns_its_input_through_any_tiling():
    """An untrained bridge model (zero-initialised output: it returns its input) with the deterministic
    path restores every pixel to the input exactly, in one tile or many."""
    from palette_cli.nets import UNet, preset

    torch.manual_seed(0)
    bridge = _pipeline(UNet(preset("tiny")), objective="bridge", process={"sigma": 0.1})
    img = make_photo(100, 70, seed=5)
    settings = SamplerSettings("bridge", 3, None, 0.0)
    for tile, overlap in ((None, None), (32, 8), (48, 16)):
        out = bridge.restore(img, settings, torch.Generator().manual_seed(0), tile=tile, overlap=overlap)[0]
        assert np.array_equal(_pixels(out), _pixels(img)), (tile, overlap)


def test_provenance_records_how_to_reproduce(pipe):
    meta = pipe.provenance("colorize", FAST, 42)
    assert meta["seed"] == "42" and meta["sampler"] == "dpmpp_2m" and meta["sampling_steps"] == "3"
    assert len(meta["model_hash"]) == 12


def test_regression_model_is_one_deterministic_pass(tmp_path):
    """A model trained with the regression objective (the paper's baseline) is run once from (zeros, γ=1):
    no sampler, no sampling noise, known pixels kept, and the provenance says so."""
    from palette_cli.checkpoint import ModelInfo, save_model
    from palette_cli.imageio import pil_to_tensor
    from palette_cli.pipeline import Pipeline, SamplerSettings

    cfg, net = tiny_net(seed=1, std=0.05)
    path = tmp_path / "regression.safetensors"
    save_model(path, ModelInfo(net=cfg.to_dict(), tasks=["inpaint", "colorize"], extra={"objective": "regression"}),
               net.state_dict())
    pipe = Pipeline.from_file(path, device="cpu", precision="fp32", resolution=32)
    assert pipe.objective == "regression"
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    mask = torch.zeros(1, 32, 32)
    mask[:, 8:24, 8:24] = 1
    calls = []
    a = pipe.inpaint(image, mask, SamplerSettings(steps=20), torch.Generator().manual_seed(0),
                     on_step=lambda i, n: calls.append((i, n)))[0]
    b = pipe.inpaint(image, mask, SamplerSettings(sampler="ddpm", steps=50), torch.Generator().manual_seed(0))[0]
    assert calls == [(1, 1)]
    assert np.array_equal(np.asarray(a), np.asarray(b))  # the sampler and its steps play no part
    # colorization's condition holds no noise, so the seed plays no part either
    c1 = pipe.colorize(image, SamplerSettings(), torch.Generator().manual_seed(0))[0]
    c2 = pipe.colorize(image, SamplerSettings(), torch.Generator().manual_seed(7))[0]
    assert np.array_equal(np.asarray(c1), np.asarray(c2))
    # the hole holds the network's direct prediction from (zeros, γ = 1, condition = noise-filled input)
    out = pil_to_tensor(a)
    assert np.array_equal(np.asarray(a)[:8], np.asarray(image)[:8])
    pipe_net = pipe.net
    known = pil_to_tensor(image).unsqueeze(0)
    from palette_cli.tasks.base import noise_fill
    cond = noise_fill(known, mask.unsqueeze(0), torch.Generator().manual_seed(0))
    with torch.no_grad():
        direct = pipe_net(torch.zeros_like(cond), torch.ones(1), cond).clamp(-1, 1)[0]
    hole = mask[0].bool()
    assert torch.allclose(out[:, hole], direct[:, hole], atol=2 / 255)
    assert pipe.provenance("inpaint", SamplerSettings(), 0)["sampler"] == "regression (one pass)"
    assert pipe.model_calls(SamplerSettings(steps=20)) == 1
