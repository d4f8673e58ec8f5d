"""Fuzzing: a few hundred byte-mutated image files through `palette colorize` and `palette restore`.

Every file must end as a valid output or as one `failed:` line naming it (never a traceback, never an
internal error), each within a generous time bound, and nothing may be left behind in the output folder.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features
from typer.testing import CliRunner

from palette_cli.cli import runner as batch_runner
from palette_cli.cli.app import app
from palette_cli.imageio import ImageInputError, load_image
from tests.conftest import make_photo

PER_FILE_SECONDS = 30  # a hang, not a speed claim: a sound file of this size takes well under a second
MUTANTS_PER_BASE = 30
FAST = ["--sampling-steps", "2", "--quiet", "--device", "cpu", "--precision", "fp32", "--resolution", "32",
        "--seed", "0"]


def _bases() -> dict[str, bytes]:
    photo = make_photo(48, 40, 3)
    images = {"rgb.png": (photo, "PNG", {}), "gray.png": (photo.convert("L"), "PNG", {}),
              "rgba.png": (photo.convert("RGBA"), "PNG", {}), "pal.png": (photo.convert("P"), "PNG", {}),
              "base.jpg": (photo, "JPEG", {"quality": 85}), "prog.jpg": (photo, "JPEG", {"progressive": True}),
              "bmp.bmp": (photo, "BMP", {}), "tif.tif": (photo, "TIFF", {"compression": "tiff_deflate"})}
    if features.check("webp"):
        images["webp.webp"] = (photo, "WEBP", {"quality": 80})
    out = {}
    for name, (img, fmt, kw) in images.items():
        buffer = io.BytesIO()
        img.save(buffer, fmt, **kw)
        out[name] = buffer.getvalue()
    return out


def _set_size(data: bytes, rng: np.random.Generator) -> bytes:
    """Rewrite the declared width/height (PNG IHDR with a valid CRC, JPEG SOF); other formats: a byte flip."""
    data = bytearray(data)
    width, height = (int(v) for v in rng.choice([1, 2, 7, 32, 999, 42726, 65535], 2))
    if data.startswith(b"\x89PNG"):
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    elif (sof := max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))) > 0:
        data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    else:
        data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
    return bytes(data)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    kind = int(rng.integers(0, 6))
    n = len(data)
    if kind == 0:  # flip a few bytes
        data = bytearray(data)
        for pos in rng.integers(0, n, int(rng.integers(1, 10))):
            data[pos] = int(rng.integers(0, 256))
        return bytes(data)
    if kind == 1:  # truncate
        return data[:int(rng.integers(0, n))]
    if kind == 2:  # insert random bytes
        pos = int(rng.integers(0, n))
        return data[:pos] + rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes() + data[pos:]
    if kind == 3:  # zero a run
        a = int(rng.integers(0, n))
        return data[:a] + bytes(min(n - a, int(rng.integers(1, 200)))) + data[a + 200:]
    if kind == 4:  # repeat a slice
        a = int(rng.integers(0, n))
        b = min(n, a + int(rng.integers(1, 300)))
        return data[:b] + data[a:b] * int(rng.integers(1, 4)) + data[b:]
    return _set_size(data, rng)


@pytest.fixture(scope="module")
def mutants(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(1234)
    for name, data in _bases().items():
        stem, ext = name.rsplit(".", 1)
        for k in range(MUTANTS_PER_BASE):
            (folder / f"{stem}_{k:02d}.{ext}").write_bytes(mutate(data, rng))
    return folder


@pytest.mark.parametrize("command,suffix", [("colorize", "_colorized"), ("restore", "_restored")])
def test_mutated_files_end_cleanly_and_in_bounded_time(mutants, tmp_path, tiny_model_file, monkeypatch,
                                                       command, suffix):
    times: dict[str, float] = {}
    real_job = batch_runner._run_job

    def timed_job(job, *args, **kwargs):
        start = time.monotonic()
        try:
            return real_job(job, *args, **kwargs)
        finally:
            times[job.source.name] = time.monotonic() - start

    monkeypatch.setattr(batch_runner, "_run_job", timed_job)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, [command, str(mutants), "-o", str(out), "--model", str(tiny_model_file), *FAST])
    assert r.exit_code in (0, 1) and "Traceback" not in r.output, r.output[-3000:]
    files = sorted(p.name for p in mutants.iterdir())
    assert len(files) >= 200 and sorted(times) == files
    slow = {name: round(t, 1) for name, t in times.items() if t > PER_FILE_SECONDS}
    assert not slow, slow
    failed_lines = [line for line in r.output.splitlines() if line.startswith("failed: ")]
    assert not [line for line in failed_lines if "internal error" in line], failed_lines
    written = {p.name for p in out.iterdir()}
    assert all(not name.startswith(".") for name in written), written  # no temporaries, no claims
    outcomes = {"written": 0, "failed": 0}
    for name in files:
        failures = [line for line in failed_lines if f"{mutants / name}:" in line]
        result = f"{name.rsplit('.', 1)[0]}{suffix}.png"
        if result in written:
            assert not failures, name
            size = load_image(mutants / name).size  # it decodes, to the size of the output
            assert Image.open(out / result).size == size, name
            outcomes["written"] += 1
        else:
            assert len(failures) == 1, (name, failures)
            with pytest.raises((ImageInputError, ValueError)):  # the library refuses it too
                load_image(mutants / name)
            outcomes["failed"] += 1
    assert outcomes["written"] > 0 and outcomes["failed"] > 0, outcomes
