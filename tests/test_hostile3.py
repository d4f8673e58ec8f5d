"""Hostile input, round 3, and the conventions users expect from an image CLI.

One test (or a few) per case of the sweep; the comment before each names its number. Everything runs on
tiny synthetic files and the tiny random model, in process, except where a second process is the point.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from palette_cli import outputs
from palette_cli.checkpoint import ModelInfo, save_model
from palette_cli.cli.app import app
from palette_cli.imageio import read_metadata
from palette_cli.pipeline import Pipeline, SamplerSettings
from tests.conftest import make_photo, tiny_net
from tests.test_bad_input import FAST, evil_pickle, one_clean_line, run

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def model_loads(monkeypatch) -> list:
    """Counts the models loaded: a check that must come first leaves it at 0."""
    calls: list = []
    real = Pipeline.from_file.__func__
    monkeypatch.setattr(Pipeline, "from_file", classmethod(lambda cls, *a, **k: calls.append(1) or real(cls, *a, **k)))
    return calls


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (a named pipe opened for reading waits for a writer forever)."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def hidden_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


# ------------------------------------------------------------------ 1. names too long for the file system

def test_an_output_name_too_long_is_one_line_before_anything(photo, tmp_path, tiny_model_file, model_loads):
    long_out = tmp_path / "out" / ("x" * 300 + ".png")
    r = run("colorize", photo, "-o", long_out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 2 and "file name too long (304 bytes" in one_clean_line(r.output, "Error:")
    assert "characters)" in one_clean_line(r.output, "Error:")  # the middle of the name is cut out of the message
    assert model_loads == [] and not (tmp_path / "out").exists()


def test_an_input_whose_output_name_is_too_long_fails_alone(tmp_path, tiny_model_file, model_loads):
    folder = tmp_path / "in"
    folder.mkdir()
    make_photo(40, 32).save(folder / ("p" * 246 + ".png"))  # fits; with _colorized it does not
    r = run("colorize", folder, "-o", tmp_path / "out", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 1 and "file name too long" in one_clean_line(r.output, "failed:")
    assert model_loads == []


# ------------------------------------------------------------------ 2. --model of 5000 characters

@pytest.mark.parametrize("spec", ["m" * 5000, "u/" + "m" * 5000, "hf:u/r/" + "f" * 5000])
def test_a_model_name_too_long_is_an_unknown_model(photo, tmp_path, spec):
    r = run("colorize", photo, "-o", tmp_path / "o.png", "--model", spec, *FAST)
    line = one_clean_line(r.output, "Error:")
    assert r.exit_code == 1 and "unknown model" in line and len(line) < 400


# ------------------------------------------------------------------ 3. a config that is not a table

@pytest.mark.parametrize("text,kind", [("[1, 2, 3]", "list"), ('"x"', "str"), ("3", "int")])
def test_a_config_file_holding_no_table_is_one_line(tmp_path, text, kind):
    config = tmp_path / "c.json"
    config.write_text(text)
    r = run("train", config, "--out", tmp_path / "run")
    assert r.exit_code == 1 and f"not a {kind}" in one_clean_line(r.output, "Error:")


# ------------------------------------------------------------------ 4, 5. palette train on broken data, --out a file

def _train_config(tmp_path: Path, data: Path) -> Path:
    config = tmp_path / "c.toml"
    config.write_text(f'task = "colorize"\nnet = "tiny"\nsteps = 1\ndevice = "cpu"\n[data]\nsource = "{data}"\nsize = 16\n')
    return config


def test_train_on_unreadable_images_is_one_line_without_warnings(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.png").write_bytes(b"not a png")
    (data / "b.jpg").write_bytes(b"")
    r = run("train", _train_config(tmp_path, data), "--out", tmp_path / "run", "--quiet")
    line = one_clean_line(r.output, "Error:")
    assert r.exit_code == 1 and "none of the 2 images can be read" in line and "a.png" in line
    assert "Warning" not in r.output


def test_train_into_a_run_folder_that_is_a_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_photo(20, 20).save(data / "a.png")
    (tmp_path / "ok.png").write_bytes(b"x")
    r = run("train", _train_config(tmp_path, data), "--out", tmp_path / "ok.png", "--quiet")
    assert r.exit_code == 1 and "ok.png is a file" in one_clean_line(r.output, "Error:")
    assert (tmp_path / "ok.png").read_bytes() == b"x"


# ------------------------------------------------------------------ 6, 8. -o with an unknown type, -o ''

def test_an_unknown_output_type_is_refused_not_made_a_folder(photo, tmp_path, tiny_model_file):
    r = run("colorize", photo, "-o", tmp_path / "result.xyz", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 2 and "'.xyz' is not an image type" in one_clean_line(r.output, "Error:")
    assert not (tmp_path / "result.xyz").exists()
    r = run("colorize", photo, "-o", f"{tmp_path / 'result.xyz'}/", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0 and (tmp_path / "result.xyz" / "a_colorized.png").is_file()  # '/' asks for a folder


def test_an_empty_output_is_refused(photo, tmp_path, tiny_model_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    for args in (["colorize", photo, "-o", ""], ["train", "c.toml", "--out", ""], ["colorize", photo, "--model", ""]):
        r = run(*args, "--quiet")
        assert r.exit_code == 2 and "empty" in r.output and "Traceback" not in r.output, args
    assert sorted(os.listdir(tmp_path)) == before


# ------------------------------------------------------------------ 7. outputs that are not finite

def test_a_model_holding_nan_is_refused_and_nothing_written(photo, tmp_path):
    cfg, net = tiny_net()
    state = net.state_dict()
    state["conv_in.bias"][0] = float("nan")
    path = save_model(tmp_path / "nan.safetensors", ModelInfo(net=cfg.to_dict(), tasks=["colorize"]), state)
    r = run("colorize", photo, "-o", tmp_path / "o.png", "--model", path, *FAST)
    assert r.exit_code == 1 and "'conv_in.bias' holds NaN" in one_clean_line(r.output, "Error:")
    assert not (tmp_path / "o.png").exists()


def test_an_output_that_is_not_finite_is_refused(photo, tmp_path, tiny_model_file, monkeypatch):
    monkeypatch.setattr(Pipeline, "net_fn", lambda self, y, level, cond: torch.full_like(y, float("nan")))
    r = run("inpaint", photo, "--box", "4,4,10,10", "-o", tmp_path / "o.png", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 1 and "NaN or infinite" in one_clean_line(r.output, "failed:")
    assert sorted(os.listdir(tmp_path)) == ["a.png"]


# ------------------------------------------------------------------ 9. full disks, claims of failed runs

def test_a_full_disk_fails_before_the_model_loads_naming_the_output(photo, tmp_path, tiny_model_file, model_loads,
                                                                    monkeypatch):
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda p: type("U", (), {"free": 0})())
    out = tmp_path / "out" / "o.png"
    r = run("colorize", photo, "-o", out, "--model", tiny_model_file, *FAST)
    line = one_clean_line(r.output, "failed:")
    assert r.exit_code == 1 and line.startswith(f"failed: {out}: only 0.0 MB free") and "Errno" not in line
    assert model_loads == [] and not (tmp_path / "out").exists()


def test_a_claim_that_cannot_be_written_is_removed(tmp_path, monkeypatch):
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs.os, "write", full)
    with pytest.raises(outputs.OutputError) as e:
        outputs.try_claim(tmp_path / "o.png")
    assert "No space left on device" in str(e.value) and "Errno" not in str(e.value)
    monkeypatch.setattr(outputs.os, "write", real_write)
    assert os.listdir(tmp_path) == []
    with outputs.claim(tmp_path / "o.png") as mine:  # space freed: the next run works at once
        assert mine


def test_a_run_whose_write_fails_releases_its_claim_and_the_rerun_writes(photo, tmp_path, tiny_model_file,
                                                                         monkeypatch):
    from palette_cli import imageio

    real = imageio.writing.atomic_write

    def disk_full(path, write):
        raise imageio.OutputError(path, "cannot write (No space left on device)")

    monkeypatch.setattr(imageio.writing, "atomic_write", disk_full)
    out = tmp_path / "out"
    r = run("colorize", photo, "-o", out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 1 and "a_colorized.png: cannot write (No space left" in one_clean_line(r.output, "failed:")
    assert hidden_files(out) == []
    monkeypatch.setattr(imageio.writing, "atomic_write", real)
    r = run("colorize", photo, "-o", out, "--model", tiny_model_file, *[a for a in FAST if a != "--quiet"])
    assert r.exit_code == 0 and "1 written" in r.output and "another run" not in r.output
    assert sorted(os.listdir(out)) == ["a_colorized.png"]


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 256 KiB file system (tmpfs), filled to the last byte; skipped where it cannot be mounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as f:
            while True:
                f.write(b"x" * 4096)
                f.flush()
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_really_full_disk_then_freed(photo, tiny_disk, tiny_model_file, model_loads):
    out = tiny_disk / "o.png"
    r = run("colorize", photo, "-o", out, "--model", tiny_model_file, *FAST)
    line = one_clean_line(r.output, "failed:")
    assert r.exit_code == 1 and f"{out}: only 0.0 MB free" in line and "Errno" not in line
    assert model_loads == [] and os.listdir(tiny_disk) == ["filler"]
    (tiny_disk / "filler").unlink()
    r = run("colorize", photo, "-o", out, "--model", tiny_model_file, *[a for a in FAST if a != "--quiet"])
    assert r.exit_code == 0 and "1 written" in r.output and os.listdir(tiny_disk) == ["o.png"]


def _claim_of(pid: int, *, lock: bool, age: float = 0.0, path: Path) -> Path:
    claim = outputs.claim_path(path)
    claim.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "time": time.time(), "lock": lock}))
    os.utime(claim, (time.time() - age, time.time() - age))
    return claim


def test_stale_claims_are_recognised(tmp_path):
    target = tmp_path / "o.png"
    claim = outputs.claim_path(target)
    claim.write_bytes(b"")  # left empty by a run that failed while writing it
    os.utime(claim, (time.time() - 10, time.time() - 10))
    with outputs.claim(target) as mine:
        assert mine
    # its owner locked it and let go (finished), though a process with its id runs (the id was reused)
    _claim_of(os.getppid(), lock=True, path=target)
    with outputs.claim(target) as mine:
        assert mine
    assert not claim.exists()


def test_a_claim_held_by_a_live_run_is_respected_until_it_dies(tmp_path):
    target = tmp_path / "o.png"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from palette_cli import outputs; "
        f"c = outputs.try_claim(Path({str(target)!r})); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with outputs.claim(target) as mine:
            assert not mine
    finally:
        holder.kill()
        holder.wait()
    with outputs.claim(target) as mine:  # killed: its lock went with it
        assert mine


def test_sigterm_stops_a_batch_releasing_its_claim(photo, tmp_path, tiny_model_file, monkeypatch):
    def terminated(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    monkeypatch.setattr(Pipeline, "colorize", terminated)
    out = tmp_path / "out"
    r = run("colorize", photo, "-o", out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 143 and "Stopped by SIGTERM" in r.output
    assert os.listdir(out) == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# ------------------------------------------------------------------ 10. special files

@pytest.fixture
def special_files(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    link = tmp_path / "random.png"
    link.symlink_to("/dev/urandom")
    return {"a named pipe (FIFO)": fifo, "a character device": link}


def test_special_files_are_named_as_such_and_never_opened(photo, tmp_path, tiny_model_file, special_files):
    with deadline(60):
        for kind, path in {**special_files, "a character device ": Path("/dev/zero")}.items():
            r = run("colorize", path, "--model", tiny_model_file, *FAST)
            assert r.exit_code == 2 and f"is {kind.strip()}, not a regular file" in one_clean_line(r.output, "Error:"), path
        for kind, path in special_files.items():
            r = run("inpaint", photo, "--mask", path, "-o", tmp_path / "o.png", "--model", tiny_model_file, *FAST)
            assert r.exit_code == 2 and f"is {kind}" in one_clean_line(r.output, "Error:")
            r = run("colorize", photo, "-o", tmp_path / "o.png", "--model", path, *FAST)
            assert r.exit_code == 1 and f"is {kind}" in one_clean_line(r.output, "Error:")
            config = path.with_suffix(".toml")
            config.symlink_to(path)
            r = run("train", config, "--out", tmp_path / "run")
            assert r.exit_code == 1 and f"is {kind}" in one_clean_line(r.output, "Error:")


# ------------------------------------------------------------------ 11. pickles: never suggest loading them

def test_export_and_eval_of_a_pickle_never_suggest_running_it(tmp_path, photo):
    evil = tmp_path / "evil.pt"
    marker = evil_pickle(evil, ("model",))
    r = run("export", evil, tmp_path / "m.safetensors")
    assert r.exit_code == 1 and "cannot be loaded safely" in one_clean_line(r.output, "Error:")
    refs = tmp_path / "refs"
    refs.mkdir()
    for k in range(2):
        make_photo(40, 40, k).save(refs / f"r{k}.png")
    r = run("eval", "--outputs", refs, "--references", refs, "--feature-net", "standard", "--inception-v3", evil)
    assert r.exit_code == 1 and "cannot be loaded safely" in one_clean_line(r.output, "Error:")
    assert "weights_only" not in r.output and not marker.exists()


# ------------------------------------------------------------------ 12. fetch-photos into a place it cannot write

def test_fetch_photos_where_it_cannot_write_is_one_plain_line(tmp_path, monkeypatch):
    from palette_cli.sources import photos

    monkeypatch.setattr(photos, "fetch_photos", lambda *a, **k: pytest.fail("must not start fetching"))
    (tmp_path / "file").write_text("x")
    r = run("data", "fetch-photos", tmp_path / "file" / "photos")
    line = one_clean_line(r.output, "Error:")
    assert r.exit_code == 1 and "file is a file" in line and "Errno" not in line
    monkeypatch.setattr(outputs.os, "access", lambda *a, **k: False)
    monkeypatch.setattr(outputs.os, "statvfs", lambda p: type("S", (), {"f_flag": os.ST_RDONLY})())
    r = run("data", "fetch-photos", tmp_path / "photos")
    assert r.exit_code == 1 and "read-only file system" in one_clean_line(r.output, "Error:")


# ------------------------------------------------------------------ 13, 14. masks: grey, wrong size, off-image boxes

def test_a_uniform_grey_mask_is_not_called_white(photo, tmp_path, tiny_model_file):
    Image.new("L", (48, 40), 128).save(tmp_path / "grey.png")
    r = run("inpaint", photo, "--mask", tmp_path / "grey.png", "-o", tmp_path / "o.png", "--model", tiny_model_file,
            *FAST)
    line = one_clean_line(r.output, "failed:")
    assert r.exit_code == 1 and "marks every pixel to fill" in line and "white" not in line


@pytest.mark.parametrize("how", [["--mask", "{small}"], ["--box", "100,5,4,4"], ["--box", "0,0,48,40"]])
def test_bad_masks_and_boxes_fail_before_the_model_loads(photo, tmp_path, tiny_model_file, model_loads, how):
    Image.new("L", (10, 10), 255).save(tmp_path / "small.png")
    args = [str(tmp_path / "small.png") if a == "{small}" else a for a in how]
    r = run("inpaint", photo, *args, "-o", tmp_path / "o.png", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 1 and one_clean_line(r.output, "failed:")
    assert model_loads == []


# ------------------------------------------------------------------ 15. help as image tools show it

def test_help_shows_no_types_for_flags_and_no_range_clutter():
    from typer.main import get_command

    def walk(command, path):
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, path + [name])

    for path in walk(get_command(app), []):
        r = runner.invoke(app, path + ["--help"], terminal_width=200)
        assert r.exit_code == 0, path
        for clutter in ("<bool>", "list[", "<=x", "x>=", "18446744073709551615"):
            assert clutter not in r.output, (path, clutter)


def test_a_flag_given_a_value_is_told_so(photo, tiny_model_file):
    r = run("colorize", photo, "--overwrite", "true", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 2 and "flags take no value" in one_clean_line(r.output, "Error:")


# ------------------------------------------------------------------ 16. panorama takes -n and -r

def test_panorama_takes_folders_recursively_and_several_samples(tmp_path, tiny_model_file):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    make_photo(32, 32, 1).save(tmp_path / "in" / "a.png")
    make_photo(32, 32, 2).save(tmp_path / "in" / "sub" / "b.png")
    out = tmp_path / "out"
    r = run("panorama", tmp_path / "in", "-r", "-n", 2, "--steps", 1, "-o", out, "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0, r.output
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert made == ["a_panorama_s0.png", "a_panorama_s1.png", "sub/b_panorama_s0.png", "sub/b_panorama_s1.png"]
    a0, a1 = (np.asarray(Image.open(out / f"a_panorama_s{k}.png")) for k in (0, 1))
    assert a0.shape == (32, 64, 3) and not np.array_equal(a0, a1)


# ------------------------------------------------------------------ 17. --device cuda:N

def test_device_cuda_n_is_accepted_as_a_name(photo, tmp_path, tiny_model_file):
    r = run("colorize", photo, "-o", tmp_path / "o.png", "--model", tiny_model_file, *FAST, "--device", "cuda:1")
    if torch.cuda.device_count() > 1:
        assert r.exit_code == 0, r.output
    else:
        assert r.exit_code == 1 and "device cuda:1 was asked for" in one_clean_line(r.output, "Error:")
    r = run("colorize", photo, "--model", tiny_model_file, *FAST, "--device", "cuda:x")
    assert r.exit_code == 2 and "cuda:N" in r.output


# ------------------------------------------------------------------ 18. --ext

def test_ext_auto_keeps_a_jpeg_a_jpeg_with_a_sidecar(tmp_path, tiny_model_file):
    src = tmp_path / "p.jpg"
    make_photo(96, 80, 3).save(src, quality=80)
    r = run("restore", src, "--ext", "auto", "--model", tiny_model_file, *FAST, "--seed", 1)
    assert r.exit_code == 0, r.output
    out = tmp_path / "p_restored.jpg"
    assert Image.open(out).format == "JPEG"
    assert read_metadata(out)["seed"] == "1" and (tmp_path / "p_restored.jpg.json").is_file()
    r = run("restore", src, "--model", tiny_model_file, *FAST, "--seed", 1)
    assert r.exit_code == 0 and Image.open(tmp_path / "p_restored.png").format == "PNG"  # the default is lossless
    assert out.stat().st_size < (tmp_path / "p_restored.png").stat().st_size
    r = run("restore", src, "--ext", "webp", "-o", tmp_path / "w", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 0 and Image.open(tmp_path / "w" / "p_restored.webp").format == "WEBP"
    r = run("restore", src, "--ext", "jpg", "-o", tmp_path / "x.png", "--model", tiny_model_file, *FAST)
    assert r.exit_code == 2 and "--ext jpg contradicts" in one_clean_line(r.output, "Error:")
    for name, made in (("t.tif", "t_restored.tif"), ("g.gif", "g_restored.png")):
        make_photo(40, 32).save(tmp_path / name)
        r = run("restore", tmp_path / name, "--ext", "auto", "-o", tmp_path / "auto", "--model", tiny_model_file, *FAST)
        assert r.exit_code == 0 and (tmp_path / "auto" / made).is_file(), r.output


# ------------------------------------------------------------------ 19. skipping says when the settings changed

def test_skipping_says_which_settings_differ(photo, tmp_path, tiny_model_file):
    out = tmp_path / "o.png"
    common = ["-o", out, "--model", tiny_model_file, *[a for a in FAST if a != "--quiet"]]
    assert run("inpaint", photo, "--box", "4,4,10,10", "--seed", 1, *common).exit_code == 0
    r = run("inpaint", photo, "--box", "4,4,10,10", "--seed", 1, *common)
    assert "1 of 1 output(s) exist already" in r.output.replace("\n", " ") and "other settings" not in r.output
    r = run("inpaint", photo, "--box", "6,6,10,10", "--seed", 2, *common)
    text = " ".join(r.output.split())
    assert "1 of them was made with other settings" in text
    assert "seed 1, now 2" in text and "box 4,4,10,10, now 6,6,10,10" in text
    other = save_model(tmp_path / "other.safetensors", ModelInfo(net=tiny_net(1)[0].to_dict()), tiny_net(1)[1].state_dict())
    r = run("inpaint", photo, "--box", "4,4,10,10", "--seed", 1, *common[:2], "--model", other, *common[4:])
    assert "model " in " ".join(r.output.split()) and "now " + str(other) in " ".join(r.output.split())


# ------------------------------------------------------------------ 20. sub-folders left out without -r

def test_a_folder_without_r_says_how_many_subfolders_were_left_out(tmp_path, tiny_model_file):
    (tmp_path / "in" / "s1").mkdir(parents=True)
    (tmp_path / "in" / "s2" / "deep").mkdir(parents=True)
    (tmp_path / "in" / "empty").mkdir()
    make_photo(40, 32).save(tmp_path / "in" / "a.png")
    make_photo(40, 32).save(tmp_path / "in" / "s1" / "b.png")
    make_photo(40, 32).save(tmp_path / "in" / "s2" / "deep" / "c.png")
    args = ["colorize", tmp_path / "in", "-o", tmp_path / "out", "--model", tiny_model_file, *FAST]
    r = run(*[a for a in args if a != "--quiet"])
    assert r.exit_code == 0 and "2 sub-folder(s) holding images left out; -r" in r.output
    r = run(*[a for a in args if a != "--quiet"], "-r", "--overwrite")
    assert r.exit_code == 0 and "left out" not in r.output


# ------------------------------------------------------------------ 21. progress within an image, no stale bars

def test_restore_reports_progress_tile_by_tile(tiny_model_file):
    pipe = Pipeline.from_file(tiny_model_file, device="cpu", precision="fp32", resolution=32, batch_size=2)
    seen = []
    settings = SamplerSettings("ddim", 2)
    out = pipe.restore(make_photo(100, 70), settings, torch.Generator().manual_seed(0), tile=32, overlap=8,
                       on_step=lambda i, n: seen.append((i, n)))[0]
    tiles = 6 * 4  # tile starts on the 16-px grid: 0, 16, 32, 48, 64, 80 across; 0, 16, 32, 48 down
    assert out.size == (100, 70)
    assert seen == [(k, 2 * tiles // 2) for k in range(1, tiles + 1)]  # chunks of 2 tiles, 2 sampling steps
    seen.clear()
    same = pipe.restore(make_photo(100, 70), settings, torch.Generator().manual_seed(0), tile=32, overlap=8)[0]
    assert np.array_equal(np.asarray(out), np.asarray(same))


def test_batch_progress_forgets_failed_images_and_skips(monkeypatch):
    from rich.console import Console

    from palette_cli.cli.progress import BatchProgress, clock

    now = [0.0]
    monkeypatch.setattr("palette_cli.cli.progress.time.monotonic", lambda: now[0])
    bars = BatchProgress(Console(file=open(os.devnull, "w")), images=4)
    inner = bars.progress.tasks[bars.inner]
    outer = bars.progress.tasks[bars.images]
    bars.start("a.png")
    now[0] = 10.0
    bars.step(1, 4)
    assert inner.visible and inner.fields["eta"] == clock(30)
    bars.failed()
    assert not inner.visible and inner.completed == 0 and outer.fields["eta"] == clock(None)
    bars.start("b.png")
    now[0] = 30.0
    bars.finish(sampled=True)  # 20 s
    bars.start("c.png")
    bars.finish(sampled=False)  # left to another run: no time
    assert outer.fields["count"] == "3/4" and outer.fields["eta"] == clock(20)


# ------------------------------------------------------------------ 22. palette models: full names, cached Hub models

def test_models_lists_long_names_whole_and_describes_cached_hub_models(tmp_path, tiny_model_file, monkeypatch):
    import huggingface_hub.constants as hub_constants

    weights = tmp_path / "weights"
    weights.mkdir()
    long_name = "palette-" + "very-long-model-name-" * 5 + "end"
    (weights / f"{long_name}.safetensors").write_bytes(tiny_model_file.read_bytes())
    repo = tmp_path / "hub" / "models--someone--a-hub-model"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    (repo / "blobs" / "f00d").write_bytes(tiny_model_file.read_bytes())
    (snapshot / "model.safetensors").symlink_to("../../blobs/f00d")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    r = runner.invoke(app, ["models"], env={"PALETTE_WEIGHTS_DIR": str(weights), "COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert re.search(re.escape(long_name) + r"\s+│ colorize, inpaint", r.output), r.output
    hub_row = next(line for line in r.output.splitlines() if "hf:someone/a-hub-model/model.safetensors" in line)
    cells = [c.strip() for c in hub_row.split("│")[1:-1]]
    assert cells[1:] == ["colorize, inpaint, uncrop, jpeg", "32", "dpmpp_2m_sde, 20 steps",
                         f"{tiny_model_file.stat().st_size / 1e6:.1f} MB", "Hugging Face cache"]


# ------------------------------------------------------------------ 23. README: the Hub rule, the thread caveat, options

def test_readme_says_the_hub_rule_where_models_are_named_and_the_thread_caveat():
    text = (ROOT / "README.md").read_text()
    using = text[text.index("## Using it"):text.index("## Large batches")]
    assert "model.safetensors" in using and "hf:USER/REPO/FILE" in using
    batches = text[text.index("## Large batches"):text.index("## What the shipped models do today")]
    assert "OMP_NUM_THREADS" in batches and "thread count" in batches


def test_every_option_the_readme_lists_for_image_commands_exists():
    text = (ROOT / "README.md").read_text()
    sentence = text[text.index("Every image command takes"):]
    sentence = sentence[:sentence.index("\n\n")]
    options = set(re.findall(r"`(-[-\w]+)", sentence)) | set(re.findall(r"`-\w/(--[\w-]+)", sentence))
    assert {"-o", "--model", "-n", "-r", "--ext", "--device"} <= options
    for command in ("colorize", "inpaint", "uncrop", "panorama", "restore"):
        shown = runner.invoke(app, [command, "--help"], terminal_width=200).output
        for option in options:
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", shown), (command, option)


# ------------------------------------------------------------------ 24. KID below 0 and without a spread

def test_negative_kid_is_explained_and_a_single_subset_has_no_spread():
    from palette_cli.evaluate.scoring import _NetRun, _network_scores, _Scores, metrics_markdown

    net = type("Net", (), {"title": "stub", "comparable": False, "feature_dim": 4})()
    features = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    run_ = _NetRun(net=net, ref_pooled=[features], out_pooled=[features.clone()], ref_logits=[logits],
                   out_logits=[logits.clone()])
    scores = _Scores()
    _network_scores(scores, "effnet_lite0", run_, None, 100, 1000, 2)
    assert scores.metrics["kid_effnet_lite0"] < 0 and "kid_effnet_lite0" not in scores.std
    notes = " ".join(scores.notes)
    assert "unbiased estimate" in notes and "read a value below 0 as 0" in notes and "no ± spread" in notes
    result = {"images": {"inputs": 6, "samples_per_input": 1, "sizes": ["32x32"]}, "settings": {"outputs": "o"},
              "metrics": scores.metrics, "std": scores.std, "comparable_to_published": scores.comparable,
              "descriptions": scores.descriptions, "notes": scores.notes, "timing_s": {"total": 0.0}}
    row = next(line for line in metrics_markdown(result).splitlines() if line.startswith("| `kid_"))
    assert row.split("|")[3].strip() == ""
