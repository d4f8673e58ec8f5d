"""Hostile and odd input: no silent wrong results, no tracebacks, no hangs, nothing left behind.

One test (or a few) per defect found by trying the commands as a careless user and an attacker would;
the comments name the case. Everything runs on tiny synthetic files and the tiny random model.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from palette_cli import imageio, outputs
from palette_cli.checkpoint import CheckpointError, ModelInfo, load_model, read_info, save_model
from palette_cli.cli.app import app
from palette_cli.cli.inpaint import mask_in_folder
from palette_cli.imageio import ImageInputError, expand_inputs, load_image, plan_outputs, read_metadata
from palette_cli.pipeline import Pipeline, SamplerSettings
from tests.conftest import make_photo, tiny_net

runner = CliRunner()
FAST = ["--sampling-steps", "2", "--quiet", "--device", "cpu", "--precision", "fp32", "--resolution", "32"]


def run(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def one_clean_line(output: str, needle: str) -> str:
    """The single output line that starts with ``needle``; the output has no traceback."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith(needle)]
    assert len(lines) == 1, output
    return lines[0]


# ------------------------------------------------------------------ 1. masks matched by exact stem

def test_mask_folder_matches_the_exact_stem_never_a_pattern(tmp_path):
    masks = tmp_path / "masks"
    (masks / "sub").mkdir(parents=True)
    for name in ("a1.png", "ab.png", "x.png", "sub/a[1].jpg"):
        (masks / name).write_bytes(b"m")
    assert mask_in_folder(masks, Path("a[1].png")) is None  # a glob would have picked a1.png
    assert mask_in_folder(masks, Path("a*.png")) is None  # ... or ab.png
    assert mask_in_folder(masks, Path("sub/a[1].png")) == masks / "sub" / "a[1].jpg"
    (masks / "a[1].png").write_bytes(b"m")
    (masks / "a[1].txt").write_bytes(b"m")
    assert mask_in_folder(masks, Path("a[1].png")) == masks / "a[1].png"  # image extensions first
    assert mask_in_folder(masks, Path("nope/a.png")) is None


def test_inpaint_with_a_mask_folder_uses_the_mask_of_that_exact_name(tmp_path, tiny_model_file):
    photos, masks = tmp_path / "in", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    make_photo(48, 40, 1).save(photos / "a[1].png")
    wrong = np.zeros((40, 48), np.uint8)
    wrong[0:10, 0:10] = 255
    Image.fromarray(wrong).save(masks / "a1.png")
    out = tmp_path / "o.png"
    r = run("inpaint", photos / "a[1].png", "--mask", masks, "-o", out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 1 and "no mask for a[1].png" in one_clean_line(r.output, "failed:")
    right = np.zeros((40, 48), np.uint8)
    right[20:30, 30:40] = 255
    Image.fromarray(right).save(masks / "a[1].png")
    r = run("inpaint", photos / "a[1].png", "--mask", masks, "-o", out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    before, after = np.asarray(Image.open(photos / "a[1].png")), np.asarray(Image.open(out))
    changed = (before != after).any(axis=2)
    assert changed.any() and not changed[right == 0].any()  # only a[1].png's mask region changed


# ------------------------------------------------------------------ 2. uncrop of 1-pixel-thin images grows them

@pytest.mark.parametrize("size,direction,grown", [((40, 1), "right", (60, 1)), ((1, 40), "bottom", (1, 60)),
                                                  ((1, 1), "left", (2, 1))])
def test_uncrop_grows_images_one_pixel_thin(tmp_path, tiny_model_file, size, direction, grown):
    src = tmp_path / "thin.png"
    make_photo(*size).save(src)
    out = tmp_path / "u.png"
    r = run("uncrop", src, "--direction", direction, "-o", out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    result = np.asarray(Image.open(out))
    assert Image.open(out).size == grown
    x0 = grown[0] - size[0] if direction == "left" else 0
    assert np.array_equal(result[:size[1], x0:x0 + size[0]], np.asarray(Image.open(src)))


def test_panorama_of_a_one_pixel_high_image_grows(tmp_path, tiny_model_file):
    make_photo(32, 1).save(tmp_path / "p.png")
    r = run("panorama", tmp_path / "p.png", "--steps", 2, "-o", tmp_path / "pano.png", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "pano.png").size == (36, 1)


# ------------------------------------------------------------------ 3. --resolution must be positive

@pytest.mark.parametrize("value", ["0", "-16"])
def test_resolution_must_be_positive(photo, tiny_model_file, value):
    r = run("colorize", photo, "--model", tiny_model_file, "--quiet", "--resolution", value)
    assert r.exit_code == 2 and "--resolution" in r.output and "Traceback" not in r.output
    assert not (photo.parent / "a_colorized.png").exists()
    with pytest.raises(ValueError, match="positive"):
        Pipeline.from_file(tiny_model_file, device="cpu", resolution=int(value))


# ------------------------------------------------------------------ 4. an image extension names a file

def test_an_unwritable_image_extension_is_an_error_not_a_folder(photo, tmp_path, tiny_model_file):
    r = run("colorize", photo, "-o", tmp_path / "result.gif", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 2
    assert "cannot write images of type '.gif'" in one_clean_line(r.output, "Error:")
    assert not (tmp_path / "result.gif").exists()
    r = run("colorize", photo, "-o", tmp_path / "result.webp", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0 and (tmp_path / "result.webp").is_file()
    # a name that is no image extension stays a folder
    r = run("colorize", photo, "-o", tmp_path / "v1.2", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0 and (tmp_path / "v1.2" / "a_colorized.png").is_file()


# ------------------------------------------------------------------ 5. glob inputs never lead outside -o

def test_glob_with_dotdot_keeps_outputs_inside_the_output_folder(tmp_path):
    (tmp_path / "w" / "sub").mkdir(parents=True)
    make_photo(8, 8).save(tmp_path / "x1.jpg")
    pattern = str(tmp_path / "w" / "*" / ".." / ".." / "x*.jpg")
    pairs = expand_inputs([pattern], recursive=False)
    assert [rel for _, rel in pairs] == [Path("x1.jpg")]
    out = tmp_path / "w" / "out"
    [(_, target)] = plan_outputs(pairs, out, "_c", None)
    assert target == out / "x1_c.png"
    # a relative path that climbs out is flattened too
    [(_, target)] = plan_outputs([(tmp_path / "x1.jpg", Path("../../x1.jpg"))], out, "_c", None)
    assert target == out / "x1_c.png"


# ------------------------------------------------------------------ 6. names with [ are printed, not parsed

def test_names_with_brackets_are_printed_literally(tmp_path, tiny_model_file):
    tree = tmp_path / "mk["
    (tree / "s[red]").mkdir(parents=True)
    (tree / "x[").mkdir()
    make_photo(40, 32).save(tree / "s[red]" / "y[bold].png")
    (tree / "x[" / "bold].png").write_bytes(b"not an image")  # the path x[/bold].png: a closing tag
    out = tmp_path / "out"
    r = run("colorize", tree, "-r", "-o", out, "--model", tiny_model_file, *[a for a in FAST if a != "--quiet"])  # with progress bars
    assert r.exit_code == 1
    assert "mk[/x[/bold].png: not an image file" in one_clean_line(r.output, "failed:")
    assert "mk[/x[/bold].png" in one_clean_line(r.output, "Error:")
    assert (out / "s[red]" / "y[bold]_colorized.png").is_file()
    r = run("colorize", tree / "s[red]" / "y[bold].png", "-o", tmp_path / "o[" / "z[/red].png", "--model",
            tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o[" / "z[" / "red].png").is_file()


# ------------------------------------------------------------------ 7, 11, 17. crafted model files

def _split(path: Path) -> tuple[dict, bytes]:
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _write(path: Path, header: dict, data: bytes) -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def _with_config(header: dict, **changes) -> dict:
    header = json.loads(json.dumps(header))
    config = json.loads(header["__metadata__"]["palette_cli"])
    for key, value in changes.items():
        if key.startswith("net_"):
            config["net"][key[4:]] = value
        else:
            config[key] = value
    header["__metadata__"]["palette_cli"] = json.dumps(config)
    return header


def _crafted(tmp_path: Path, tiny_model_file: Path) -> dict[str, tuple[Path, str]]:
    header, data = _split(tiny_model_file)
    first = next(k for k in header if k != "__metadata__")
    no_offsets = json.loads(json.dumps(header))
    del no_offsets[first]["data_offsets"]
    meta_list = {**header, "__metadata__": ["palette_cli"]}
    config_list = json.loads(json.dumps(header))
    config_list["__metadata__"]["palette_cli"] = json.dumps([1, 2])
    cases = {
        "no_offsets": (no_offsets, f"tensor '{first}' lacks a valid dtype, shape or data_offsets"),
        "meta_list": (meta_list, "__metadata__ is not a map of strings"),
        "config_list": (config_list, "not a JSON object"),
        "training_str": (_with_config(header, training="fast"), "training is a str"),
        "extra_list": (_with_config(header, extra=[1]), "extra is a list"),
        "tasks_dict": (_with_config(header, tasks={"a": 1}), "tasks is a dict"),
        "huge_blocks": (_with_config(header, net_num_res_blocks=100000), "num_res_blocks = 100000"),
        "float_blocks": (_with_config(header, net_num_res_blocks=1.5), "num_res_blocks = 1.5"),
        "mult_str": (_with_config(header, net_channel_mult="12"), "channel_mult = '12'"),
        "deep": (_with_config(header, net_channel_mult=[1] * 50), "channel_mult"),
    }
    return {name: (_write(tmp_path / f"{name}.safetensors", h, data), message) for name, (h, message) in cases.items()}


def test_crafted_model_headers_give_one_line_naming_the_file(tmp_path, tiny_model_file):
    for name, (path, message) in _crafted(tmp_path, tiny_model_file).items():
        start = time.monotonic()
        with pytest.raises(CheckpointError) as e:
            load_model(path)
        assert time.monotonic() - start < 30, name  # 100000 res blocks used to hang building the network
        text = str(e.value)
        assert message in text and str(path) in text and "\n" not in text, (name, text)
        with pytest.raises(CheckpointError):
            read_info(path)


def test_crafted_model_headers_in_the_commands(photo, tmp_path, tiny_model_file):
    cases = _crafted(tmp_path, tiny_model_file)
    for name in ("no_offsets", "meta_list", "training_str", "extra_list"):
        path, message = cases[name]
        r = run("models", path)
        assert r.exit_code == 1 and message in one_clean_line(r.output, "Error:"), name
        r = run("colorize", photo, "-o", tmp_path / "o.png", "--model", path, *FAST)
        assert r.exit_code == 1 and message in one_clean_line(r.output, "Error:"), name


def test_wrong_tensor_shapes_name_the_tensor_and_both_shapes(tmp_path):
    cfg, net = tiny_net()
    state = net.state_dict()
    name = "conv_in.weight"
    expected = list(state[name].shape)
    state[name] = state[name].reshape(expected[0], -1)  # same bytes, another shape
    path = save_model(tmp_path / "m.safetensors", ModelInfo(net=cfg.to_dict()), state)
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    assert f"tensor '{name}' has shape {list(state[name].shape)} in the file, the config expects {expected}" in str(e.value)
    state = net.state_dict()
    state["extra.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match="unexpected tensor 'extra.weight'"):
        load_model(save_model(tmp_path / "m2.safetensors", ModelInfo(net=cfg.to_dict()), state))
    state = net.state_dict()
    del state[name]
    with pytest.raises(CheckpointError, match=f"tensor '{name}' is missing"):
        load_model(save_model(tmp_path / "m3.safetensors", ModelInfo(net=cfg.to_dict()), state))


# ------------------------------------------------------------------ 8, 14. palette convert of odd files

def test_convert_of_a_random_file_named_safetensors(tmp_path):
    src = tmp_path / "r.safetensors"
    src.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    r = run("convert", src, tmp_path / "o.safetensors")
    assert r.exit_code == 1 and "not a readable PyTorch state dict" in one_clean_line(r.output, "Error:")
    assert not (tmp_path / "o.safetensors").exists()


def evil_pickle(path: Path, keys: tuple[str, ...], protocol: int = 4) -> Path:
    """A pickle at ``path`` whose loading would run code (create the file it returns, next to it)."""
    marker = path.with_name("payload-ran")

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(path, "wb") as f:
        pickle.dump({key: Payload() for key in keys}, f, protocol=protocol)
    return marker


@pytest.mark.parametrize("protocol", [2, 4])
def test_convert_of_a_pickle_with_a_payload_never_suggests_running_it(tmp_path, protocol):
    src = tmp_path / "evil.pth"
    marker = evil_pickle(src, ("denoise_fn.out.2.weight",), protocol)
    r = run("convert", src, tmp_path / "o.safetensors")
    line = one_clean_line(r.output, "Error:")
    assert r.exit_code == 1 and "not a plain state dict" in line and "cannot be loaded safely" in line
    assert "weights_only" not in r.output and not marker.exists()


# ------------------------------------------------------------------ 9. --amount inf/nan, --overlap past the tile

@pytest.mark.parametrize("amount", ["inf", "nan", "-inf", "1e400", "0"])
def test_uncrop_amount_must_be_a_positive_number(photo, tiny_model_file, amount):
    r = run("uncrop", photo, "--amount", amount, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 2 and "positive number" in r.output and "Traceback" not in r.output


def test_restore_overlap_larger_than_the_tile(photo, tiny_model_file):
    r = run("restore", photo, "--tile", 16, "--overlap", 100, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 2 and "--overlap" in r.output and "Traceback" not in r.output
    pipe = Pipeline.from_file(tiny_model_file, device="cpu", precision="fp32", resolution=32)
    out = pipe.restore(make_photo(40, 36), SamplerSettings("ddim", 2), torch.Generator().manual_seed(0),
                       tile=16, overlap=100)[0]  # the library clamps the overlap to half a tile
    assert out.size == (40, 36)


# ------------------------------------------------------------------ 10. any per-file failure is one line

def test_unexpected_errors_fail_one_file_and_the_batch_goes_on(tmp_path, tiny_model_file, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    make_photo(40, 32, 1).save(folder / "a.png")
    make_photo(44, 32, 2).save(folder / "b.png")
    real = Pipeline.colorize

    def flaky(self, image, *args, **kwargs):
        if image.width == 40:
            raise TypeError("a bug")
        return real(self, image, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "colorize", flaky)
    out = tmp_path / "out"
    r = run("colorize", folder, "-o", out, "--model", tiny_model_file, *FAST)
    line = one_clean_line(r.output, "failed:")
    assert r.exit_code == 1 and "a.png" in line and "internal error" in line and "PALETTE_DEBUG=1" in line
    assert sorted(p.name for p in out.iterdir()) == ["b_colorized.png"]
    r = run("colorize", folder, "-o", out, "--model", tiny_model_file, *FAST, env={"PALETTE_DEBUG": "1"})
    assert r.exit_code == 1 and "Traceback" in r.output and "TypeError: a bug" in r.output


# ------------------------------------------------------------------ 12. --seed out of range

def test_seed_range_is_checked_up_front(photo, tmp_path, tiny_model_file):
    r = run("colorize", photo, "--seed", "99999999999999999999999", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 2 and "--seed" in r.output and "Traceback" not in r.output
    out = tmp_path / "s.png"
    r = run("colorize", photo, "-o", out, "--seed", 2**64 - 1, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    assert read_metadata(out)["seed"] == str(2**64 - 1)


# ------------------------------------------------------------------ 13. file names that are not UTF-8

@pytest.mark.skipif(os.name != "posix", reason="file names are bytes on POSIX only")
def test_a_non_utf8_file_name_is_written(tmp_path, tiny_model_file):
    folder = tmp_path / "in"
    folder.mkdir()
    try:
        (folder / os.fsdecode(b"caf\xe9.png")).write_bytes(b"")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    make_photo(40, 32).save(folder / os.fsdecode(b"caf\xe9.png"))
    out = tmp_path / "out"
    r = run("colorize", folder, "-o", out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    assert os.listdir(os.fsencode(out)) == [b"caf\xe9_colorized.png"]
    assert read_metadata(out / os.fsdecode(b"caf\xe9_colorized.png"))["source"] == "caf\\xe9.png"


# ------------------------------------------------------------------ 15. outputs checked before any work

def _count_colorize_calls(monkeypatch) -> list:
    calls: list = []
    real = Pipeline.colorize
    monkeypatch.setattr(Pipeline, "colorize", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    return calls


def test_an_output_under_a_file_fails_before_sampling(photo, tmp_path, tiny_model_file, monkeypatch):
    calls = _count_colorize_calls(monkeypatch)
    (tmp_path / "somefile.txt").write_text("x")
    r = run("colorize", photo, "-o", tmp_path / "somefile.txt" / "out.png", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 1 and "somefile.txt is a file" in one_clean_line(r.output, "failed:")
    assert calls == [] and (tmp_path / "somefile.txt").read_text() == "x"


def test_a_full_disk_fails_before_sampling(photo, tmp_path, tiny_model_file, monkeypatch):
    calls = _count_colorize_calls(monkeypatch)
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    r = run("colorize", photo, "-o", tmp_path / "out.png", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 1
    assert "free on this disk" in one_clean_line(r.output, "failed:")
    assert calls == [] and not (tmp_path / "out.png").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # its claim is gone


# ------------------------------------------------------------------ 17. bounded work

def test_uncrop_amount_beyond_the_canvas_limit_is_refused_at_once(photo, tiny_model_file, tmp_path):
    r = run("uncrop", photo, "--amount", "1e9", "-o", tmp_path / "u.png", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 1 and "--allow-huge" in one_clean_line(r.output, "failed:")
    make_photo(40, 1).save(tmp_path / "thin.png")  # within the canvas limit, but 3750 passes of 8 pixels
    r = run("uncrop", tmp_path / "thin.png", "--amount", "30000", "-o", tmp_path / "t.png", "--model",
            tiny_model_file, *FAST)
    assert r.exit_code == 1 and "sampling passes" in one_clean_line(r.output, "failed:")


def test_restore_of_a_thin_image_uses_few_tiles(tiny_model_file):
    pipe = Pipeline.from_file(tiny_model_file, device="cpu", precision="fp32", resolution=32)
    tiles = []
    real = pipe.net_fn
    pipe.net_fn = lambda y, g, c: tiles.append(y.shape[0]) or real(y, g, c)
    settings = SamplerSettings("ddim", 2)
    out = pipe.restore(make_photo(700, 3), settings, torch.Generator().manual_seed(0))[0]
    assert out.size == (700, 3)
    # 16 x 256 tiles on the JPEG grid, overlapping by 64 at each model call (square 4 x 4 tiles made 233 of them)
    assert sum(tiles) == 4 * pipe.model_calls(settings)


def _jpeg(img: Image.Image, **kw) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", **kw)
    return buffer.getvalue()


@pytest.mark.parametrize("progressive", [False, True])
def test_a_jpeg_whose_header_declares_more_than_its_data_is_refused(tmp_path, progressive):
    data = bytearray(_jpeg(make_photo(64, 32), quality=90, progressive=progressive))
    sof = data.find(b"\xff\xc2" if progressive else b"\xff\xc0")
    data[sof + 7:sof + 9] = struct.pack(">H", 42726)  # width 64 → 42726: libjpeg would pad it with grey
    path = tmp_path / "padded.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageInputError) as e:
        load_image(path)
    assert "42726x32" in str(e.value) and "truncated or corrupt" in str(e.value)


@pytest.mark.parametrize("mode,colour", [("L", 0), ("RGB", (128, 128, 128)), ("RGB", (255, 255, 255))])
@pytest.mark.parametrize("progressive", [False, True])
def test_flat_jpegs_compress_far_but_are_not_refused(tmp_path, mode, colour, progressive):
    path = tmp_path / "flat.jpg"
    path.write_bytes(_jpeg(Image.new(mode, (1200, 900), colour), quality=10, progressive=progressive, optimize=True))
    assert load_image(path).size == (1200, 900)


# ------------------------------------------------------------------ 18. --allow-huge still refuses what cannot fit

def _png_header_only(width: int, height: int) -> bytes:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_allow_huge_refuses_an_image_that_cannot_fit_in_memory(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(40000, 40000))
    monkeypatch.setattr(imageio.reading, "available_memory", lambda: 8 * 2**30)
    with pytest.raises(ImageInputError) as e:
        load_image(path, allow_huge=True)
    text = str(e.value)
    assert "40000x40000" in text and "GiB of memory" in text and "8.0 GiB is available" in text
    assert imageio.memory_needed(100, 10, "RGB") == 1000 * (2 * 3 + 15)
    with pytest.raises(ValueError, match="GiB of memory"):
        imageio.check_canvas(40000, 40000, allow_huge=True)
    with pytest.raises(ValueError, match="--allow-huge"):
        imageio.check_canvas(40000, 40000, allow_huge=False)
    imageio.check_canvas(4000, 4000, allow_huge=False)


def test_available_memory_is_read(monkeypatch):
    """MemAvailable from /proc/meminfo; where that cannot be read, the system's page counts; else None."""
    meminfo = "MemTotal:       16318472 kB\nMemFree:         1201132 kB\nMemAvailable:    9013480 kB\n"
    monkeypatch.setattr(imageio.reading, "open", lambda *a, **k: io.StringIO(meminfo), raising=False)
    assert imageio.available_memory() == 9013480 * 1024

    def unreadable(*a, **k):
        raise OSError("no /proc here")

    pages = {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(imageio.reading, "open", unreadable, raising=False)
    monkeypatch.setattr(imageio.reading.os, "sysconf", lambda name: pages[name])
    assert imageio.available_memory() == 1000 * 4096

    def no_sysconf(name):
        raise ValueError(name)

    monkeypatch.setattr(imageio.reading.os, "sysconf", no_sysconf)
    assert imageio.available_memory() is None


# ------------------------------------------------------------------ 19. leftovers of a killed run are cleared

def test_stale_temporaries_of_the_runs_own_outputs_are_removed(photo, tmp_path, tiny_model_file):
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".a_colorized.png.k2j4_x9q.tmp", out / ".a_colorized.png.json.ab12cd34.tmp"]
    kept = [out / ".b_colorized.png.k2j4_x9q.tmp", out / ".a_colorized.png.toolongname.tmp", out / "notes.tmp"]
    for p in stale + kept:
        p.write_bytes(b"x" * 100)
    r = run("colorize", photo, "-o", out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted(["a_colorized.png"] + [p.name for p in kept])


# ------------------------------------------------------------------ 20. Ctrl-C says so

def test_ctrl_c_prints_the_message_and_leaves_nothing(photo, tmp_path, tiny_model_file, monkeypatch):
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Pipeline, "colorize", interrupt)
    out = tmp_path / "out"
    r = run("colorize", photo, "-o", out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 130 and "Interrupted" in r.output
    assert list(out.iterdir()) == []  # no output, no temporary, no claim


# ------------------------------------------------------------------ 21. concurrent runs split the work

def test_claims_are_exclusive_and_stale_ones_are_taken_over(tmp_path):
    target = tmp_path / "sub" / "o.png"
    with outputs.claim(target) as mine:
        assert mine and outputs.claim_path(target).exists()
        with outputs.claim(target) as again:
            assert not again
    assert not outputs.claim_path(target).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = {"host": __import__("socket").gethostname(), "pid": int(dead.stdout), "time": 0}
    outputs.claim_path(target).write_text(json.dumps(owner))
    with outputs.claim(target) as mine:  # its process is gone
        assert mine
    outputs.claim_path(target).write_text(json.dumps({"host": "elsewhere", "pid": 1, "time": 0}))
    with outputs.claim(target) as mine:  # another machine's run, recent
        assert not mine
    old = time.time() - outputs.CLAIM_MAX_AGE - 10
    os.utime(outputs.claim_path(target), (old, old))
    with outputs.claim(target) as mine:  # ... but too old to be alive
        assert mine


def test_an_output_claimed_by_another_run_is_left_to_it(tmp_path, tiny_model_file):
    folder = tmp_path / "in"
    folder.mkdir()
    make_photo(40, 32, 1).save(folder / "a.png")
    make_photo(40, 32, 2).save(folder / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    claim = outputs.claim_path(out / "a_restored.png")
    claim.write_text(json.dumps({"host": "elsewhere", "pid": 1, "time": time.time()}))
    r = run("restore", folder, "-o", out, "--model", tiny_model_file, *FAST, "--seed", 1)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == [claim.name, "b_restored.png"]


def test_two_concurrent_runs_write_each_output_once(tmp_path, tiny_model_file):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(6):
        make_photo(40, 32, k).save(folder / f"p{k}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "palette_cli.cli.app", "restore", str(folder), "-o", str(out), "--model",
           str(tiny_model_file), "--sampling-steps", "6", "--device", "cpu", "--precision", "fp32", "--resolution", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd + ["--seed", str(s)], stderr=subprocess.PIPE, text=True, env=env) for s in (1, 2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    written = [int(line.split()[0]) for e in errs for line in e.splitlines() if " written, " in line]
    assert len(written) == 2 and sum(written) == 6, errs  # each output made by exactly one of the runs
    assert sorted(p.name for p in out.iterdir()) == [f"p{k}_restored.png" for k in range(6)]
