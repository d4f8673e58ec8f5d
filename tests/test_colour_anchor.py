"""The panorama's colour anchor: each new band's mean CIELAB colour kept near the input's."""

import numpy as np
import pytest
import torch
from PIL import Image

from palette_cli.imageio import pil_to_tensor
from palette_cli.metrics.pixel import lab_to_rgb, mean_lab as mean_lab_of, rgb_to_lab
from palette_cli.pipeline import SamplerSettings
from palette_cli.tasks.uncrop import anchor_band, panorama_photo


def mean_lab(image: Image.Image, x0: int = 0, x1: int | None = None) -> torch.Tensor:
    x = (pil_to_tensor(image.convert("RGB")) + 1) / 2
    return mean_lab_of(x[..., x0:x1])


def test_lab_to_rgb_inverts_rgb_to_lab():
    x = torch.rand(2, 3, 9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(lab_to_rgb(rgb_to_lab(x)), x, atol=1e-9)
    # known values: white, black and sRGB red
    lab = torch.tensor([[100.0, 0, 0], [0, 0, 0], [53.2408, 80.0925, 67.2032]]).T.reshape(1, 3, 3, 1)
    rgb = lab_to_rgb(lab)[0, :, :, 0].T
    assert torch.allclose(rgb, torch.tensor([[1.0, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=torch.float64), atol=1e-4)


def _striped(colour_left, colour_right, w=64, h=16, split=48):
    a = np.zeros((h, w, 3), np.uint8)
    a[:, :split] = colour_left
    a[:, split:] = colour_right
    return Image.fromarray(a)


def test_a_band_that_wandered_is_pulled_back_to_the_radius_and_the_rest_kept():
    img = _striped((120, 120, 120), (200, 90, 90))  # the right band drifted to red
    target = mean_lab(img, 0, 48)
    before = float((mean_lab(img, 48) - target).norm())
    assert before > 20
    out = anchor_band(img, "right", 16, target, 5.0)
    after = float((mean_lab(out, 48) - target).norm())
    # the band's first quarter ramps in, so the mean lands a little outside the radius, far inside the drift
    assert 5.0 <= after < 5.0 + 0.2 * (before - 5.0)
    a, b = np.asarray(img), np.asarray(out)
    assert np.array_equal(a[:, :48], b[:, :48])  # everything but the band untouched
    assert np.abs(a[:, 48].astype(int) - b[:, 48]).max() <= 1  # no step at the band's inner edge
    assert np.abs(a[:, -1].astype(int) - b[:, -1]).max() > 40  # the outer part fully corrected


def test_a_band_within_the_radius_is_left_alone_and_left_bands_ramp_from_the_right():
    img = _striped((120, 120, 120), (124, 120, 118))
    target = mean_lab(img, 0, 48)
    assert anchor_band(img, "right", 16, target, 5.0) is img
    left = _striped((30, 160, 30), (120, 120, 120), split=16)
    target = mean_lab(left, 16)
    out = np.asarray(anchor_band(left, "left", 16, target, 3.0))
    a = np.asarray(left)
    assert np.array_equal(a[:, 16:], out[:, 16:])
    assert np.abs(a[:, 15].astype(int) - out[:, 15]).max() <= 1 and np.abs(a[:, 0].astype(int) - out[:, 0]).max() > 40


class _DriftingFill:
    """A fill that continues the canvas with its neighbouring colour made 12 levels redder each pass:
    the drift a model's small colour errors add up to over many passes."""

    def fill_window(self, canvas, mask, box, settings, generator, on_step=None):
        x0, y0, x1, y1 = box
        m = mask[..., y0:y1, x0:x1] > 0.5
        win = canvas[..., y0:y1, x0:x1]
        known = win[..., ~m[0, 0].all(dim=0)]  # columns holding known pixels
        colour = known.mean(dim=-1).mean(dim=-1)
        colour = colour + torch.tensor([24 / 255, -12 / 255, -12 / 255]).view(1, 3)
        filled = torch.where(m, colour.view(-1, 3, 1, 1).clamp(-1, 1), win)
        out = canvas.clone()
        out[..., y0:y1, x0:x1] = filled
        return out


@pytest.mark.parametrize("anchor, bound", [(0.0, None), (7.0, 9.0)])
def test_the_anchor_keeps_an_8_pass_panorama_s_ends_near_the_input_colour(anchor, bound):
    img = Image.new("RGB", (32, 32), (110, 120, 130))
    out = panorama_photo(_DriftingFill(), img, 8, SamplerSettings("ddim", 1), torch.Generator(),
                         direction="both", colour_anchor=anchor)
    assert out.size == (32 + 2 * 8 * 16, 32)
    assert np.array_equal(np.asarray(out)[:, 128:160], np.asarray(img))  # the original stays
    target = mean_lab(img)
    ends = [float((mean_lab(out, 0, 32) - target).norm()), float((mean_lab(out, out.width - 32) - target).norm())]
    if bound is None:
        assert min(ends) > 30  # without the anchor the colour runs away
    else:
        assert max(ends) <= bound


def test_mean_lab_averages_over_pixels_and_images():
    x = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    x[0, :, :, 2:] = 1.0  # half white, half black; the second image all black
    m = mean_lab_of(x)
    assert m.shape == (3,)
    assert m[0].item() == pytest.approx(25.0, abs=1e-4)  # L* 100 on a quarter of the pixels, 0 elsewhere
    assert m[1:].abs().max().item() < 1e-3
    assert torch.allclose(mean_lab_of(x[0] * 255, data_range=255), mean_lab_of(x[:1]))
