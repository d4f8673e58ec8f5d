"""The chroma-bin colorizer: BT.601 conversions, the bin grid's soft encoding and annealed mean, and the
process that trains and samples with it."""

import math

import numpy as np
import pytest
import torch

from palette_cli.checkpoint import ModelInfo, save_model
from palette_cli.diffusion.chroma import ChromaGrid, rgb_to_ycc, ycc_to_rgb
from palette_cli.pipeline import Pipeline
from palette_cli.diffusion.bridge import ChromaBridgeProcess
from palette_cli.diffusion.process import SamplerSettings
from palette_cli.diffusion.registry import process_from_metadata
from palette_cli.tasks.colorize import luma8
from tests.conftest import make_photo


def test_ycc_round_trip_and_known_values():
    rgb = torch.rand(2, 3, 5, 7) * 2 - 1
    y, c = rgb_to_ycc(rgb)
    assert torch.allclose(ycc_to_rgb(y, c), rgb, atol=1e-6)
    y, c = rgb_to_ycc(torch.tensor([0.4, 0.4, 0.4]).view(3, 1, 1))  # gray: no chroma
    assert y.item() == pytest.approx(0.4) and c.abs().max().item() < 1e-7
    _, c = rgb_to_ycc(torch.tensor([-1.0, -1.0, 1.0]).view(3, 1, 1))  # pure blue: Cb at its maximum 1
    assert c[0].item() == pytest.approx(1.0, abs=1e-6)


def test_soft_encoding_is_exact_inside_the_grid_and_clamped_outside():
    grid = ChromaGrid(bins=9, extent=0.8)
    chroma = torch.rand(3, 2, 4, 4) * 1.6 - 0.8
    index, weight = grid.encode(chroma)
    assert torch.allclose(weight.sum(1), torch.ones(3, 4, 4))
    assert index.min() >= 0 and index.max() < grid.classes
    centres = grid.centres()
    mean = (centres[index] * weight.unsqueeze(-1)).sum(1).permute(0, 3, 1, 2)
    assert torch.allclose(mean, chroma, atol=1e-5)  # the soft target's mean is the colour itself
    index, weight = grid.encode(torch.full((1, 2, 1, 1), 3.0))
    mean = (centres[index] * weight.unsqueeze(-1)).sum(1).flatten()
    assert mean.tolist() == pytest.approx([0.8, 0.8])


def test_cross_entropy_is_least_at_the_soft_target_and_decode_recovers_it():
    grid = ChromaGrid(bins=7, extent=0.6)
    chroma = torch.tensor([0.13, -0.27]).view(1, 2, 1, 1)
    index, weight = grid.encode(chroma)
    target = torch.zeros(1, grid.classes, 1, 1)
    target[0, index[0, :, 0, 0], 0, 0] = weight[0, :, 0, 0]
    exact = target.clamp(min=1e-9).log()
    wrong = exact.roll(3, dims=1)
    assert grid.cross_entropy(exact, chroma).item() < grid.cross_entropy(wrong, chroma).item()
    assert grid.cross_entropy(exact, chroma).item() == pytest.approx(
        -(weight * weight.clamp(min=1e-9).log()).sum().item(), abs=1e-4)  # its entropy: the minimum
    assert grid.decode(exact).flatten().tolist() == pytest.approx([0.13, -0.27], abs=1e-4)


def test_annealed_mean_saturates_a_two_colour_distribution():
    """Half red-ish, half gray with a little probability: T = 1 gives the muted mean, small T the
    likelier (more saturated) mode — the point of decoding by annealed mean."""
    grid = ChromaGrid(bins=17, extent=0.8)
    centres = grid.centres()
    red = int(((centres - torch.tensor([-0.1, 0.5])) ** 2).sum(1).argmin())
    gray = int((centres ** 2).sum(1).argmin())
    p = torch.full((1, grid.classes, 1, 1), 1e-6)
    p[0, red], p[0, gray] = 0.6, 0.4
    logits = p.log()
    m1 = grid.decode(logits, 1.0).flatten()
    m_cold = grid.decode(logits, 0.2).flatten()
    assert m1[1].item() == pytest.approx(0.6 * 0.5, abs=0.01)
    assert m_cold[1].item() > 0.42 and m_cold[1].item() > m1[1].item()
    with pytest.raises(ValueError, match="temperature"):
        grid.decode(logits, 0.0)


def test_chroma_process_keeps_the_luma_and_trains_towards_the_colour():
    torch.manual_seed(0)
    proc = ChromaBridgeProcess(sigma=0.2, bins=9, extent=0.8, temperature=1.0)
    target = torch.rand(2, 3, 8, 8) * 1.2 - 0.6
    cond = rgb_to_ycc(target)[0].expand(-1, 3, -1, -1)
    batch = {"cond": cond, "target": target, "mask": torch.ones(2, 1, 8, 8)}
    small = torch.nn.functional.avg_pool2d(target, 2)
    index, weight = proc.grid.encode(rgb_to_ycc(small)[1])
    oracle_logits = torch.full((2, proc.grid.classes, 4, 4), -30.0)
    oracle_logits.scatter_(1, index, weight.clamp(min=1e-13).log())

    def oracle(x, t, c):
        return oracle_logits

    def blank(x, t, c):
        return torch.zeros_like(oracle_logits)

    g = torch.Generator().manual_seed(0)
    assert proc.loss(oracle, batch, g).item() < proc.loss(blank, batch, g).item() - 1.0
    out = proc.colour(oracle_logits, cond)
    assert torch.allclose(rgb_to_ycc(out)[0], cond[:, :1], atol=1e-5)  # the input's luma, exactly
    assert torch.allclose(proc.grid.decode(oracle_logits), rgb_to_ycc(small)[1], atol=1e-4)  # block colours
    flat = proc.colour(oracle_logits[:, :, :1, :1].expand(-1, -1, 4, 4), cond)  # one colour everywhere
    assert torch.allclose(rgb_to_ycc(flat)[1], rgb_to_ycc(small)[1][:, :, :1, :1].expand(-1, -1, 8, 8), atol=1e-4)
    gray = proc.colour(torch.zeros_like(oracle_logits), cond)  # a uniform distribution: the grid's centre
    assert rgb_to_ycc(gray)[1].abs().max().item() < 1e-5


def test_chroma_process_metadata_round_trip_and_temperature_setting():
    proc = ChromaBridgeProcess(sigma=0.25, p_start=0.5, bins=11, extent=0.7, temperature=0.5)
    back = process_from_metadata(proc.metadata())
    assert isinstance(back, ChromaBridgeProcess)
    assert (back.grid, back.temperature, back.sigma, back.p_start) == (proc.grid, 0.5, 0.25, 0.5)
    assert back.describe(SamplerSettings(temperature=0.2))["temperature"] == "0.2"
    assert back.resolve(SamplerSettings(temperature=0.2)).temperature == 0.2
    with pytest.raises(ValueError, match="temperature"):
        ChromaBridgeProcess(temperature=-1)
    with pytest.raises(ValueError, match="rebalance"):
        ChromaBridgeProcess(rebalance=1.0)
    assert process_from_metadata(ChromaBridgeProcess(rebalance=0.5).metadata()).rebalance == 0.5


def _chroma_file(tmp_path, bias: torch.Tensor | None = None):
    from palette_cli.nets import UNet, preset

    torch.manual_seed(0)
    proc = ChromaBridgeProcess(bins=9, extent=0.8)
    cfg = preset("tiny").replace(gamma_embedding="time", num_classes=proc.grid.classes)
    net = UNet(cfg)
    if bias is not None:
        with torch.no_grad():
            net.conv_out.bias.copy_(bias)
    path = tmp_path / "chroma.safetensors"
    save_model(path, ModelInfo(net=cfg.to_dict(), tasks=["colorize"], extra=proc.metadata()), net.state_dict())
    return path, proc


def test_colorize_with_a_chroma_model_keeps_the_input_luma_and_colours_it(tmp_path):
    """A network whose head always says 'this orange bin': the output has the input's exact luma and
    that colour's hue; an untrained one (uniform distribution) returns the gray photo."""
    path, proc = _chroma_file(tmp_path)
    pipe = Pipeline.from_file(path, device="cpu", precision="fp32", resolution=32)
    image = make_photo(50, 36).convert("L")
    out = pipe.colorize(image, SamplerSettings(), torch.Generator().manual_seed(0))[0]
    rgb = np.asarray(out).astype(int)
    assert out.size == image.size and np.abs(rgb - rgb[..., :1]).max() <= 1  # gray

    centres = proc.grid.centres()
    orange = int(((centres - torch.tensor([-0.2, 0.2])) ** 2).sum(1).argmin())
    bias = torch.full((proc.grid.classes,), -20.0)
    bias[orange] = 20.0
    path, _ = _chroma_file(tmp_path, bias)
    pipe = Pipeline.from_file(path, device="cpu", precision="fp32", resolution=32)
    out = pipe.colorize(image, SamplerSettings(), torch.Generator().manual_seed(0))[0]
    rgb = np.asarray(out).astype(int)
    assert np.array_equal(luma8(rgb), np.asarray(image))
    mid = (rgb[..., 0] > 60) & (rgb[..., 0] < 200)  # where the colour fits in the RGB cube
    assert mid.mean() > 0.3
    assert (rgb[..., 0][mid] > rgb[..., 2][mid] + 20).mean() > 0.95  # red above blue: orange


def test_rebalancing_weighs_rare_colours_up_and_keeps_the_mean_weight():
    grid = ChromaGrid(bins=9, extent=0.8)
    chroma = torch.zeros(1, 2, 10, 10)
    chroma[..., 0, :3] = torch.tensor([0.2, 0.6]).view(2, 1)  # 3 red pixels among 97 gray ones
    index, w = grid.encode(chroma)
    ones = torch.ones(1, 1, 10, 10)
    r = grid.rarity_weights(index, w, ones, 0.5)
    assert r.mean().item() == pytest.approx(1.0, abs=1e-5)
    assert r[0, 0, 0, 0] > 10 * r[0, 0, 5, 5]
    assert torch.allclose(grid.rarity_weights(index, w, ones, 0.0), ones)  # strength 0: no rebalancing
    logits = torch.zeros(1, grid.classes, 10, 10)
    assert grid.cross_entropy(logits, chroma, rebalance=0.5).item() == pytest.approx(math.log(grid.classes), abs=1e-4)
    gray_bet = logits.clone()
    gray_bet[:, grid.classes // 2] = 5.0  # confident gray everywhere: cheap unbalanced, dear rebalanced
    assert grid.cross_entropy(gray_bet, chroma).item() < grid.cross_entropy(gray_bet, chroma, rebalance=0.5).item() - 1


def test_a_temperature_is_refused_by_models_that_do_not_decode_colour():
    from palette_cli.diffusion.bridge import BridgeProcess
    from palette_cli.diffusion.gaussian import EpsDiffusion

    for proc in (BridgeProcess(0.1), EpsDiffusion()):
        with pytest.raises(ValueError, match="--anneal"):
            proc.resolve(SamplerSettings(temperature=0.5))
    with pytest.raises(ValueError, match="temperature"):
        ChromaBridgeProcess().resolve(SamplerSettings(temperature=float("nan")))
