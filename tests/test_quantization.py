"""Restoration's JPEG quantization constraint (tasks/quantization.py) and the JPEG quality law's options."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from palette_cli.imageio import load_image, pil_to_tensor
from palette_cli.imageio.reading import INFO_JPEG_QUANTIZATION
from palette_cli.tasks import get_task, parse_task_spec
from palette_cli.tasks.jpeg import jpeg_file_record, quality_probabilities, sample_jpeg_quality
from palette_cli.tasks.quantization import JpegQuantization, _to_ycc, dct_blocks, idct_blocks, project, violation
from palette_cli.training.config import ConfigError, TrainConfig

from .conftest import make_photo

# The IJG example luminance table (JPEG standard, Annex K), row by row: quality 50 writes it unscaled.
ANNEX_K_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]


def jpeg_file(path, image: Image.Image, **save) -> Image.Image:
    image.save(path, format="JPEG", **save)
    return load_image(path)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(4 / ((a - b) ** 2).mean()))


def test_dct_blocks_is_orthonormal_and_inverts():
    x = torch.randn(2, 1, 16, 24)
    c = dct_blocks(x)
    assert c.shape == (2, 1, 2, 3, 8, 8)
    assert torch.allclose(idct_blocks(c), x, atol=1e-5)
    assert torch.allclose((c ** 2).sum(), (x ** 2).sum(), rtol=1e-5)
    flat = torch.full((1, 1, 8, 8), 3.0)  # a flat block is all DC: 8 × its value
    assert float(dct_blocks(flat)[0, 0, 0, 0, 0, 0]) == pytest.approx(24.0)
    assert float(dct_blocks(flat).abs().sum()) == pytest.approx(24.0)


def test_load_image_records_the_files_tables_and_sampling(tmp_path):
    photo = make_photo(40, 32, seed=1)
    img = jpeg_file(tmp_path / "a.jpg", photo, quality=50)
    q = JpegQuantization.from_image(img)
    assert q.luma.flatten().tolist() == ANNEX_K_LUMA and q.factor == (2, 2) and q.orientation == 1
    assert q.chroma is not None and q.chroma[0, 0] == 17  # Annex K's chrominance table starts 17, 18, 24
    q444 = JpegQuantization.from_image(jpeg_file(tmp_path / "b.jpg", photo, quality=90, subsampling=0))
    assert q444.factor == (1, 1) and int(q444.luma[0, 0]) == 3  # 16 × 0.2, rounded
    q422 = JpegQuantization.from_image(jpeg_file(tmp_path / "c.jpg", photo, quality=90, subsampling=1))
    assert q422.factor == (1, 2)
    grey = JpegQuantization.from_image(jpeg_file(tmp_path / "g.jpg", photo.convert("L"), quality=50))
    assert grey.chroma is None and grey.luma.flatten().tolist() == ANNEX_K_LUMA
    photo.save(tmp_path / "p.png")
    assert JpegQuantization.from_image(load_image(tmp_path / "p.png")) is None
    photo.convert("CMYK").save(tmp_path / "k.jpg", quality=50)
    assert JpegQuantization.from_image(load_image(tmp_path / "k.jpg")) is None  # CMYK: no constraint
    assert jpeg_file_record(50) == jpeg_file(tmp_path / "d.jpg", photo, quality=50).info[INFO_JPEG_QUANTIZATION]


def test_projection_keeps_the_decoded_file_and_moves_a_restoration_into_its_cells(tmp_path):
    original = make_photo(48, 40, seed=3)
    decoded_img = jpeg_file(tmp_path / "a.jpg", original, quality=85)
    quant = JpegQuantization.from_image(decoded_img)
    decoded, truth = pil_to_tensor(decoded_img)[None], pil_to_tensor(original)[None]
    assert torch.allclose(project(decoded, decoded, quant), decoded, atol=1e-4)  # the file itself is inside
    noisy = (decoded + 0.08 * torch.randn(decoded.shape, generator=torch.Generator().manual_seed(0)))
    assert violation(noisy, decoded, quant) > 2
    fixed = project(noisy, decoded, quant)
    assert violation(fixed, decoded, quant) <= 0.5 + 1e-3  # every luma coefficient within half a step
    assert violation(project(fixed, decoded, quant), decoded, quant) <= 0.5 + 1e-3
    # the original lies in the cells (up to the decoder's rounding), so each coefficient moved onto a cell's
    # edge comes nearer to it: white noise of 10 levels loses 40 % of its luma error at quality 85 (the cells
    # of fine detail are wider than the noise); chroma detail finer than the subsampled planes is unconstrained
    luma_error = [float(((_to_ycc(x) - _to_ycc(truth))[:, 0] ** 2).mean()) for x in (noisy, fixed)]
    assert luma_error[1] < 0.65 * luma_error[0]
    assert psnr(fixed, truth) > psnr(noisy, truth) + 0.4
    # the colour error of a chroma shift is bounded by the file's chroma steps too
    shifted = decoded.clone()
    shifted[:, 2] += 0.2
    err_before = float((shifted - decoded).abs().mean())
    err_after = float((project(shifted, decoded, quant) - decoded).abs().mean())
    assert err_after < 0.3 * err_before
    # heavy compression: wide cells, a modest change survives almost untouched
    q5 = JpegQuantization.from_image(jpeg_file(tmp_path / "b.jpg", original, quality=5))
    d5 = pil_to_tensor(load_image(tmp_path / "b.jpg"))[None]
    small = d5 + 0.01 * torch.randn(d5.shape, generator=torch.Generator().manual_seed(1))
    assert float((project(small, d5, q5) - small).abs().mean()) < 0.2 * float((small - d5).abs().mean())


@pytest.mark.parametrize("orientation", [1, 3, 6, 8, 5])
def test_projection_works_on_the_files_own_grid_under_exif_rotation(tmp_path, orientation):
    stored = make_photo(44, 28, seed=4)  # 44 × 28: the 8-px grid divides neither side
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "r.jpg", format="JPEG", quality=30, exif=exif.tobytes())
    shown = load_image(tmp_path / "r.jpg")
    quant = JpegQuantization.from_image(shown)
    assert quant.orientation == orientation
    assert (shown.size == stored.size) == (orientation in (1, 3))
    decoded = pil_to_tensor(shown)[None]
    noisy = decoded + 0.1 * torch.randn(decoded.shape, generator=torch.Generator().manual_seed(2))
    fixed = project(noisy, decoded, quant)
    assert violation(fixed, decoded, quant, whole_blocks=True) <= 0.5 + 1e-3
    # the partial blocks at the edges (their hidden pixels repeat the edge) are only brought nearer
    assert violation(fixed, decoded, quant) < 0.5 * violation(noisy, decoded, quant)
    # the same restoration taken back to the stored orientation and projected there gives the same pixels
    back = {1: lambda t: t, 3: lambda t: t.flip(-1, -2), 6: lambda t: torch.rot90(t, 1, (-2, -1)),
            8: lambda t: torch.rot90(t, -1, (-2, -1)), 5: lambda t: t.transpose(-1, -2)}[orientation]
    plain = JpegQuantization(quant.luma, quant.chroma, quant.factor, 1)
    assert torch.allclose(back(fixed), project(back(noisy), back(decoded), plain), atol=1e-5)
    if orientation != 1:  # ignoring the rotation puts the blocks on the wrong grid: the cells do not hold
        assert violation(project(noisy, decoded, plain), decoded, quant, whole_blocks=True) > 0.6


def test_the_evaluation_input_of_the_jpeg_task_carries_its_tables():
    from palette_cli.evaluate.generation import EvalTask, degrade

    image, mask = degrade(make_photo(32, 32, seed=5), EvalTask("jpeg", jpeg_quality=10), torch.Generator())
    q = JpegQuantization.from_image(image)
    assert mask is None and q is not None and q.factor == (2, 2) and int(q.luma[0, 0]) == 80  # 16 × 5 at q10
    other, _ = degrade(make_photo(32, 32, seed=5), EvalTask("inpaint"), torch.Generator().manual_seed(0))
    assert INFO_JPEG_QUANTIZATION not in other.info


def test_task_options_widen_the_jpeg_quality_law():
    task = parse_task_spec("jpeg", {"jpeg": {"high": 95, "scale": 30}})
    assert (task.low, task.high, task.scale) == (5, 95, 30)
    g = torch.Generator().manual_seed(7)
    draws = [sample_jpeg_quality(g, 5, 95, 30.0) for _ in range(20000)]
    probs = quality_probabilities(5, 95, 30.0)
    observed = np.bincount(draws, minlength=96)[5:96]
    expected = np.array(list(probs.values())) * len(draws)
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    assert 0.10 < np.mean(np.array(draws) > 60) < 0.14  # (e^(−2) − e^(−19/6)) / (e^(−1/6) − e^(−19/6)) ≈ 0.12
    assert max(draws) > 85
    mixture = parse_task_spec("colorize+jpeg", {"jpeg": {"high": 50}})
    assert mixture.tasks[1].high == 50 and mixture.tasks[0].name == "colorize"
    with pytest.raises(ValueError, match="does not train"):
        parse_task_spec("colorize", {"jpeg": {"high": 95}})
    with pytest.raises(ValueError, match="jpeg options"):
        parse_task_spec("jpeg", {"jpeg": {"hgh": 95}})
    with pytest.raises(ValueError, match="scale"):
        get_task("jpeg", scale=0)
    config = TrainConfig(task="jpeg", objective="bridge", task_options={"jpeg": {"highest": 95}})
    config.data.source = "photos"
    with pytest.raises(ConfigError, match="jpeg options"):
        config.validate()


def test_palette_restore_keeps_a_light_jpeg_within_its_cells_and_can_be_told_not_to(tmp_path):
    from typer.testing import CliRunner

    from palette_cli.cli.app import app

    original = make_photo(72, 56, seed=8)
    original.save(tmp_path / "photo.jpg", format="JPEG", quality=90)
    decoded_img = load_image(tmp_path / "photo.jpg")
    quant = JpegQuantization.from_image(decoded_img)
    decoded, truth = pil_to_tensor(decoded_img)[None], pil_to_tensor(original)[None]
    runner = CliRunner()
    outs = {}
    for flag in ("--jpeg-constraint", "--no-jpeg-constraint"):
        out = tmp_path / f"{flag}.png"
        r = runner.invoke(app, ["restore", str(tmp_path / "photo.jpg"), "-o", str(out), "--seed", "0", "--quiet", flag])
        assert r.exit_code == 0, r.output
        assert Image.open(out).text["jpeg_constraint"] == ("on" if flag == "--jpeg-constraint" else "off")
        outs[flag] = pil_to_tensor(Image.open(out))[None]
    on, off = outs["--jpeg-constraint"], outs["--no-jpeg-constraint"]
    # the shipped restorer, trained on qualities 5-30, changes a quality-90 file by more than its cells allow;
    # with the constraint every whole block stays within them, up to the output's 8-bit rounding (half a level
    # a pixel: a few tenths of the smallest step, 2, at quality 90)
    assert violation(off, decoded, quant, whole_blocks=True) > 1.0
    assert violation(on, decoded, quant, whole_blocks=True) < 1.0  # measured 0.82; without it 4.5
    assert psnr(on, truth) > psnr(off, truth)


def test_a_run_with_task_options_trains_on_them_and_its_file_records_them(tmp_path):
    from palette_cli.checkpoint import read_info
    from palette_cli.training import Trainer, export_checkpoint, load_config

    for i in range(2):
        make_photo(64, 64, i).save(tmp_path / f"p{i}.png")
    base = ["task=jpeg", "objective=bridge", "loss=l1", "process={p_start = 0.25, sigma = 0.1}",
            'net={image_size = 32, model_channels = 32, channel_mult = [1, 1], num_res_blocks = 1, '
            'attention_resolutions = [], num_head_channels = 32, gamma_embedding = "time"}',
            f"data.source={tmp_path}", "data.size=32", "batch_size=2", "steps=1", "precision=fp32",
            "channels_last=false", "val_every=1000", "log_every=1"]
    config = load_config(None, base + ["task_options={jpeg = {low = 90, high = 95}}"])
    trainer = Trainer(config, tmp_path / "run")
    assert (trainer.dataset.task.low, trainer.dataset.task.high) == (90, 95)
    trainer.run()
    info = read_info(export_checkpoint(tmp_path / "run", tmp_path / "m.safetensors"))
    assert info.training["task_options"] == {"jpeg": {"low": 90, "high": 95}}
    plain = load_config(None, base)
    Trainer(plain, tmp_path / "run2").run()
    assert "task_options" not in read_info(export_checkpoint(tmp_path / "run2", tmp_path / "p.safetensors")).training


def test_a_greyscale_jpeg_stays_grey(tmp_path):
    img = jpeg_file(tmp_path / "g.jpg", make_photo(40, 32, seed=9).convert("L"), quality=40)
    quant = JpegQuantization.from_image(img)
    decoded = pil_to_tensor(img)[None]
    tinted = decoded + torch.tensor([0.1, 0.0, -0.1]).view(1, 3, 1, 1)  # a colour cast on a grey photo
    fixed = project(tinted, decoded, quant)
    assert float((fixed - fixed.mean(1, keepdim=True)).abs().max()) < 1e-4
    assert violation(fixed, decoded, quant, whole_blocks=True) <= 0.5 + 1e-3
