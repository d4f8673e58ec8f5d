"""Patch synthesis (the exemplar fill): real texture carried into the unknown part, laid out by the seed,
never a mirror; and the bridge models that start from it."""

import pytest
import torch

from palette_cli.tasks.fill import mirror_fill, smooth_fill
from palette_cli.tasks.synthesis import exemplar_fill


def _sawtooth(h=64, w=96, period=12):
    """Brightness rising left to right within each period, then dropping: not symmetric under a mirror."""
    x = torch.arange(w, dtype=torch.float32)
    ramp = (x % period) / (period - 1) * 1.6 - 0.8
    return ramp.expand(h, w).expand(3, h, w).clone()


def _right_half(h=64, w=96, known=56):
    m = torch.zeros(1, h, w)
    m[:, :, known:] = 1
    return m


def test_known_pixels_stay_and_values_are_in_range():
    g = torch.Generator().manual_seed(1)
    img = torch.rand(3, 48, 64, generator=g) * 2 - 1
    m = torch.zeros(1, 48, 64)
    m[:, 12:36, 20:44] = 1
    out = exemplar_fill(img, m, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, m[0] == 0], img[:, m[0] == 0])
    assert out.shape == img.shape and bool(torch.isfinite(out).all()) and out.abs().max() <= 1
    batch = exemplar_fill(img.expand(2, -1, -1, -1), m.expand(2, -1, -1, -1), torch.Generator().manual_seed(0))
    assert batch.shape == (2, 3, 48, 64) and torch.equal(batch[0], out)


def test_a_texture_is_continued_not_mirrored_nor_smoothed():
    """A sawtooth uncropped to the right: the synthesis keeps its rising ramps (a mirror reverses them) and
    its contrast (the smooth fill has none)."""
    img, m = _sawtooth(), _right_half()
    unknown = m[0] > 0

    def rising_share(x):
        dx = x[0][:, 1:] - x[0][:, :-1]
        band = unknown[:, 1:] & unknown[:, :-1]
        steps = dx[band]
        steps = steps[steps.abs() > 1e-3]
        return float((steps > 0).float().mean())

    def contrast(x):
        return float(x[0][unknown].std())

    truth = rising_share(img)
    synth = exemplar_fill(img, m, torch.Generator().manual_seed(0))
    assert truth > 0.85
    assert rising_share(synth) > 0.8
    assert rising_share(mirror_fill(img, m)) < 0.5  # the mirror runs the ramps backwards
    assert contrast(synth) > 0.8 * contrast(img)
    assert contrast(smooth_fill(img, m)) < 0.5 * contrast(img)


def test_each_seed_lays_the_fill_out_anew_and_a_seed_repeats():
    g = torch.Generator().manual_seed(3)
    img = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 66, 98, generator=g), 3, 1)[0] * 2 - 1  # a texture
    m = _right_half()
    a = exemplar_fill(img, m, torch.Generator().manual_seed(0))
    b = exemplar_fill(img, m, torch.Generator().manual_seed(0))
    c = exemplar_fill(img, m, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert float((a - c)[:, m[0] > 0].abs().mean()) > 0.05


def test_nothing_unknown_or_nothing_known():
    img = torch.rand(3, 16, 16) * 2 - 1
    assert torch.equal(exemplar_fill(img, torch.zeros(1, 16, 16)), img)
    assert torch.equal(exemplar_fill(img, torch.ones(1, 16, 16)), torch.zeros_like(img))


def test_a_bridge_model_may_start_from_the_synthesis(tmp_path):
    """``exemplar`` is a fill start a bridge process may record (the export may choose it, as a decoding
    setting); a one-step model keeps its detail, as it keeps a mirror's."""
    from palette_cli.diffusion.bridge import BridgeProcess
    from palette_cli.diffusion.process import SamplerSettings
    from palette_cli.tasks.starts import FILL_STARTS, fill_start

    assert BridgeProcess.FILL_STARTS == tuple(FILL_STARTS)  # the names the process accepts are the fills there are
    process = BridgeProcess(start="exemplar")
    assert process.fill_start == "exemplar" and process.keeps_start_detail(SamplerSettings())
    assert not BridgeProcess(start="smooth").keeps_start_detail(SamplerSettings())
    assert "start" in BridgeProcess.decoding_keys
    BridgeProcess.check_decoding({"start": "exemplar"})
    img, m = _sawtooth(), _right_half()
    g = torch.Generator().manual_seed(5)
    assert torch.equal(fill_start("exemplar", img, m, g), exemplar_fill(img, m, torch.Generator().manual_seed(5)))
    with pytest.raises(ValueError, match="bridge start must be one of"):
        BridgeProcess(start="reflect")


def test_a_bridge_may_start_part_way_from_a_guess():
    """With ``guess`` and ``guess_time`` t0 < 1 the sampler starts at the bridge state between the guess and
    the start at t0 (mean (1−t0)·guess + t0·start, spread σ·√(t0(1−t0))) and runs its steps over [0, t0]; a
    network that knows the photo is the guess returns it exactly. Files without the settings read as before."""
    from palette_cli.diffusion.bridge import BridgeProcess
    from palette_cli.diffusion.process import SamplerSettings

    assert BridgeProcess().fill_guess is None and "guess" not in BridgeProcess().metadata()["process"]
    assert BridgeProcess(guess="exemplar", guess_time=1.0).fill_guess is None
    p = BridgeProcess(sigma=0.5, start="smooth", steps=4, guess="exemplar", guess_time=0.4)
    assert p.fill_guess == "exemplar"
    assert p.metadata()["process"]["guess"] == "exemplar" and p.metadata()["process"]["guess_time"] == 0.4
    assert p.describe(SamplerSettings())["bridge_guess"] == "exemplar from t = 0.4"
    for bad in ({"guess": "reflect"}, {"guess_time": 0.0}, {"guess_time": 1.5}):
        with pytest.raises(ValueError, match="guess"):
            BridgeProcess(**bad)

    g = torch.Generator().manual_seed(0)
    start, guess = torch.full((1, 3, 64, 64), -0.5), torch.full((1, 3, 64, 64), 0.5)
    x, times = p.sampling_path(start, start, SamplerSettings(), g, guess)
    assert times.tolist() == pytest.approx([0.4 * v for v in p.levels(SamplerSettings()).tolist()])
    assert float(x.mean()) == pytest.approx(0.6 * 0.5 + 0.4 * -0.5, abs=0.01)
    assert float(x.std()) == pytest.approx(0.5 * (0.4 * 0.6) ** 0.5, rel=0.03)
    x1, times1 = p.sampling_path(start, start, SamplerSettings(), g, None)  # no guess: from the start, t = 1
    assert torch.equal(x1, start) and float(times1[0]) == 1.0

    calls = []
    out = p.sample(lambda y, t, c: guess - y, start, start, SamplerSettings(), g, guess=guess,
                   on_step=lambda i, n: calls.append((i, n)))
    assert torch.allclose(out, guess) and calls[-1] == (4, 4)
