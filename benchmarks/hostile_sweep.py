"""A sweep of hostile cases against every command, and fuzzed files: what a careless user or an attacker does.

Runs each case (most in this process through Typer's test runner, the ones about signals and concurrent
runs as real processes) on tiny synthetic files and a tiny random model, then counts:

- tracebacks: an exception that escaped, a printed traceback, or a failure the CLI calls an internal error;
- silent wrong results: exit 0 where the case must fail, a file or folder made that must not be, an output
  whose pixels break a promise (inpainting or uncropping changing kept pixels, a format not asked for);
- leftover claim / temporary files (``.NAME.claim``, ``.NAME.XXXXXXXX.tmp``) once a case is over;
- lost outputs: an output that should have been written and is missing (also after a re-run that follows
  a full disk, a signal or a killed process);

and, besides, hangs (a case still running after its time limit) and unclear messages (a failure without
its one line, or with raw errno text or advice to load a pickle). Every count must be 0. Full and
read-only disks are real tmpfs mounts when this runs as root (else simulated in process).

    OMP_NUM_THREADS=1 python benchmarks/hostile_sweep.py [--fuzz 200] [--keep] [--verbose]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' helpers: the tiny model, photos, mutations, crafted headers

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from palette_cli.cli.app import app  # noqa: E402
from tests.conftest import make_photo, tiny_net  # noqa: E402

FAST = ["--sampling-steps", "2", "--device", "cpu", "--precision", "fp32", "--resolution", "32", "--seed", "0"]
CASE_SECONDS = 120  # a hang, not a speed claim
limits = {"case": CASE_SECONDS}  # seconds a case may run (--case-seconds)
KINDS = ("tracebacks", "silent wrong results", "leftover claim/temporary files", "lost outputs", "hangs",
         "unclear messages")
IMAGE_COMMANDS = {  # command → (extra arguments that make it valid, output suffix)
    "colorize": ([], "_colorized"), "inpaint": (["--box", "4,4,10,10"], "_inpainted"),
    "uncrop": (["--amount", "8"], "_uncropped"), "panorama": (["--steps", "1"], "_panorama"),
    "restore": ([], "_restored")}
SUFFIX = {name: suffix for name, (_, suffix) in IMAGE_COMMANDS.items()}


@dataclass
class World:
    """The shared files of the sweep: photos, models good and bad, special files, small disks."""

    root: Path
    model: Path = Path()
    photo: Path = Path()
    jpeg: Path = Path()
    folder: Path = Path()
    bad: dict[str, Path] = field(default_factory=dict)
    full: Path = Path()  # a file system with no byte free
    tight: Path = Path()  # one with ~100 KB free
    ro: Path = Path()  # a read-only file system
    mounted: list[Path] = field(default_factory=list)


@dataclass
class Case:
    """One hostile invocation and what must (not) come of it."""

    name: str
    args: Callable[[Path], list]  # the command line, given the case's own folder
    expect: str = "fail"  # "ok" (exit 0), "fail" (non-zero, one line), "usage" (exit 2)
    outputs: Callable[[Path], list[Path]] = lambda d: []  # must exist afterwards
    absent: Callable[[Path], list[Path]] = lambda d: []  # must not exist afterwards
    check: Callable[[Path, str], list[str]] | None = None  # more promises: a list of what is wrong
    setup: Callable[[Path], None] | None = None
    clean: bool = True  # a failing run leaves the case's folder as the setup made it
    needs: str = "line"  # what a failure must print: "line" (Error:/failed:) or "usage" (Typer's message)
    keep: Callable[[Path], list[Path]] = lambda d: []  # hidden files the case itself planted


@dataclass
class Outcome:
    name: str
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail)


# ----------------------------------------------------------------------------------------- the world


def _mount(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _fill(path: Path, leave: int) -> None:
    """Write a filler file until ``leave`` bytes are free on ``path``'s file system."""
    free = shutil.disk_usage(path).free
    with contextlib.suppress(OSError), open(path / ".filler", "wb") as f:
        f.write(b"x" * max(0, free - leave))
        f.flush()
        while leave == 0:
            f.write(b"x" * 4096)
            f.flush()


def build_world(root: Path) -> World:
    from palette_cli.checkpoint import ModelInfo, save_model
    from tests.test_bad_input import _crafted, evil_pickle

    w = World(root)
    cfg, net = tiny_net()
    w.model = save_model(root / "tiny.safetensors", ModelInfo(net=cfg.to_dict(), tasks=["colorize", "inpaint",
                                                                                        "uncrop", "jpeg"]),
                         net.state_dict())
    w.photo = root / "a.png"
    make_photo(48, 40, 1).save(w.photo)
    w.jpeg = root / "j.jpg"
    make_photo(96, 80, 2).save(w.jpeg, quality=80)
    w.folder = root / "folder"
    (w.folder / "sub").mkdir(parents=True)
    make_photo(40, 32, 3).save(w.folder / "b.png")
    make_photo(36, 32, 4).save(w.folder / "sub" / "c.png")
    bad = w.bad
    for key, value in (("nan", float("nan")), ("inf", float("inf"))):
        state = {k: v.clone() for k, v in net.state_dict().items()}
        state["conv_in.bias"][0] = value
        bad[key] = save_model(root / f"{key}.safetensors", ModelInfo(net=cfg.to_dict(), tasks=["colorize"]), state)
    bad["colorize-only"] = save_model(root / "colorize-only.safetensors",
                                      ModelInfo(net=cfg.to_dict(), tasks=["colorize"]), net.state_dict())
    blob = w.model.read_bytes()
    (bad_dir := root / "bad").mkdir()
    bad["truncated"] = bad_dir / "truncated.safetensors"
    bad["truncated"].write_bytes(blob[: len(blob) // 2])
    bad["random"] = bad_dir / "random.safetensors"
    bad["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    bad["empty"] = bad_dir / "empty.safetensors"
    bad["empty"].write_bytes(b"")
    for name in ("evil.pth", "evil.pt"):
        bad[name] = bad_dir / name
        bad["marker"] = evil_pickle(bad[name], ("model", "denoise_fn.out.2.weight"))
    for name, (path, _) in _crafted(bad_dir, w.model).items():
        bad[f"crafted-{name}"] = path
    bad["fifo"] = root / "pipe.png"
    os.mkfifo(bad["fifo"])
    bad["urandom"] = root / "urandom.png"
    bad["urandom"].symlink_to("/dev/urandom")
    bad["dangling"] = root / "dangling.png"
    bad["dangling"].symlink_to(root / "nowhere.png")
    bad["loop"] = root / "loop.png"
    bad["loop"].symlink_to(root / "loop.png")
    bad["socket"] = root / "sock.png"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(bad["socket"]))
    bad["text"] = root / "notes.png"
    bad["text"].write_text("not an image")
    bad["zero"] = root / "zero.png"
    bad["zero"].write_bytes(b"")
    bad["afile"] = root / "afile"
    bad["afile"].write_text("x")
    for attr, options, leave in (("full", "size=256k", 0), ("tight", "size=512k", 100_000), ("ro", "ro,size=64k", None)):
        path = root / attr
        if _mount(path, options):
            w.mounted.append(path)
            if leave is not None:
                _fill(path, leave)
        setattr(w, attr, path)
    return w


@contextlib.contextmanager
def simulated_disks(w: World):
    """Where tmpfs cannot be mounted: the full and read-only folders as the code sees them."""
    if len(w.mounted) == 3:
        yield
        return
    from palette_cli import imageio, outputs

    real_usage, real_access, real_write = outputs.shutil.disk_usage, outputs.os.access, imageio.writing.atomic_write
    real_statvfs = outputs.os.statvfs

    def under(path, top: Path) -> bool:
        return str(Path(path).resolve()).startswith(str(top.resolve()))

    def usage(path):
        u = real_usage(path)
        free = 0 if under(path, w.full) else (100_000 if under(path, w.tight) else u.free)
        return type(u)(u.total, u.used, free)

    def write(path, fn):
        if under(path, w.full) or under(path, w.tight) and sum(p.stat().st_size for p in w.tight.rglob("*")) > 1e5:
            raise imageio.OutputError(path, "cannot write (No space left on device)")
        return real_write(path, fn)

    outputs.shutil.disk_usage = usage
    outputs.os.access = lambda p, mode, **k: False if under(p, w.ro) else real_access(p, mode, **k)
    outputs.os.statvfs = lambda p: type("S", (), {"f_flag": os.ST_RDONLY})() if under(p, w.ro) else real_statvfs(p)
    imageio.writing.atomic_write = write
    try:
        yield
    finally:
        outputs.shutil.disk_usage, outputs.os.access, imageio.writing.atomic_write = real_usage, real_access, real_write
        outputs.os.statvfs = real_statvfs


# ----------------------------------------------------------------------------------------- judging


def hidden_leftovers(folder: Path, planted: list[Path]) -> list[str]:
    """Claims and temporaries under ``folder`` that no case planted on purpose."""
    found = []
    for p in folder.rglob(".*"):
        if p.name.endswith((".claim", ".tmp")) and p not in planted:
            found.append(str(p.relative_to(folder)))
    return found


def judge(case: Case, d: Path, code: int | None, output: str, exception: BaseException | None,
          before: set[Path]) -> Outcome:
    out = Outcome(case.name)
    add = out.problems.append
    if isinstance(exception, TimeoutError):
        add(("hangs", f"still running after {limits['case']} s"))
        return out
    if exception is not None and not isinstance(exception, SystemExit):
        add(("tracebacks", f"{type(exception).__name__}: {exception}"))
    if "Traceback" in output or "internal error" in output:
        add(("tracebacks", output.strip().splitlines()[-1] if output.strip() else "traceback"))
    if case.expect == "ok":
        if code != 0:
            add(("lost outputs", f"exit {code}: {output.strip()[-300:]}"))
        for p in case.outputs(d):
            if not p.is_file():
                add(("lost outputs", f"{p.name} missing"))
    else:
        if code == 0:
            add(("silent wrong results", f"exit 0 where the case must fail: {output.strip()[-300:]}"))
        elif case.expect == "usage" and code != 2:
            add(("unclear messages", f"exit {code}, not 2"))
        wanted = ("Error:", "failed:") if case.needs == "line" else ("Error", "Invalid value", "No such option",
                                                                     "Missing", "Got unexpected")
        if code not in (0, None) and not any(w in output for w in wanted):
            add(("unclear messages", f"no error line: {output.strip()[-300:]}"))
        lines = [line for line in output.splitlines() if line.startswith("Error:")]
        if len(lines) > 1:
            add(("unclear messages", f"{len(lines)} error lines"))
    for bad in ("Errno", "weights_only", "RuntimeWarning"):
        if bad in output:
            add(("unclear messages", f"{bad!r} in the output"))
    for p in case.absent(d):
        if os.path.lexists(p):
            add(("silent wrong results", f"{p} exists"))
    if case.expect != "ok" and case.clean and code not in (0, None):
        made = sorted(str(p.relative_to(d)) for p in set(d.rglob("*")) - before if not p.name.startswith("."))
        if made:
            add(("silent wrong results", f"a failed run wrote {', '.join(made[:3])}"))
    if case.check is not None and code == 0:
        out.problems.extend(("silent wrong results", problem) for problem in case.check(d, output))
    out.problems.extend(("leftover claim/temporary files", f) for f in hidden_leftovers(d, case.keep(d)))
    return out


def run_in_process(case: Case, d: Path, w: World) -> Outcome:
    def expired(*_):
        raise TimeoutError

    d.mkdir(parents=True, exist_ok=True)
    if case.setup:
        case.setup(d)
    argv = [str(a) for a in case.args(d)]  # may write the files it names (a config)
    before = set(d.rglob("*"))
    old_cwd = os.getcwd()
    old_alarm = signal.signal(signal.SIGALRM, expired)
    signal.alarm(limits["case"])
    code, output, exception = None, "", None
    try:
        os.chdir(d)  # whatever a run writes where it is run stays in the case's folder
        with simulated_disks(w):
            result = CliRunner().invoke(app, argv, catch_exceptions=True)
        code, output, exception = result.exit_code, result.output, result.exception
    except TimeoutError as e:
        exception = e
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_alarm)
        os.chdir(old_cwd)
    return judge(case, d, code, output, exception, before)


# ----------------------------------------------------------------------------------------- the cases


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def image_cases(w: World) -> list[Case]:
    """Paths, special files and options of the five image commands."""
    cases: list[Case] = []
    model = ["--model", w.model, *FAST, "--quiet"]
    long_name = "n" * 300 + ".png"
    for cmd, (extra, suffix) in IMAGE_COMMANDS.items():
        base = [cmd, w.photo, *extra, *model]
        name = f"a{suffix}.png"
        cases += [
            Case(f"{cmd}: ok", lambda d, b=base: b + ["-o", d / "o.png"], "ok", lambda d: [d / "o.png"]),
            Case(f"{cmd}: -o name of 300 bytes", lambda d, b=base: b + ["-o", d / "out" / long_name], "usage",
                 absent=lambda d: [d / "out"]),
            Case(f"{cmd}: -o ''", lambda d, b=base: b + ["-o", ""], "usage", needs="usage",
                 absent=lambda d, n=name: [d / n]),
            Case(f"{cmd}: -o x.xyz", lambda d, b=base: b + ["-o", d / "x.xyz"], "usage",
                 absent=lambda d: [d / "x.xyz"]),
            Case(f"{cmd}: -o x.xyz/", lambda d, b=base: b + ["-o", f"{d / 'x.xyz'}/"], "ok",
                 lambda d, n=name: [d / "x.xyz" / n]),
            Case(f"{cmd}: -o x.gif", lambda d, b=base: b + ["-o", d / "x.gif"], "usage", absent=lambda d: [d / "x.gif"]),
            Case(f"{cmd}: -o under a file", lambda d, b=base: b + ["-o", w.bad["afile"] / "o.png"]),
            Case(f"{cmd}: -o on a read-only disk", lambda d, b=base: b + ["-o", w.ro / "o.png"],
                 absent=lambda d: [w.ro / "o.png"]),
            Case(f"{cmd}: -o on a full disk", lambda d, b=base: b + ["-o", w.full / f"{d.name}.png"],
                 absent=lambda d: [w.full / f"{d.name}.png"]),
            Case(f"{cmd}: -o the input itself", lambda d, b=base, c=cmd: [c, d / "in.png", *b[2:], "-o", d / "in.png"],
                 "usage", setup=lambda d: shutil.copy(w.photo, d / "in.png")),
            Case(f"{cmd}: input name of 300 bytes", lambda d, b=base: [b[0], d / long_name, *b[2:]], "usage"),
            Case(f"{cmd}: input ''", lambda d, b=base: [b[0], "", *b[2:]], "usage"),
            Case(f"{cmd}: --overwrite true", lambda d, b=base: b + ["--overwrite", "true", "-o", d], "usage"),
            Case(f"{cmd}: -n 2", lambda d, b=base: b + ["-n", "2", "-o", d], "ok",
                 lambda d, n=name: [d / n.replace(".png", "_s0.png"), d / n.replace(".png", "_s1.png")]),
            Case(f"{cmd}: -n 0", lambda d, b=base: b + ["-n", "0", "-o", d], "usage", needs="usage"),
            Case(f"{cmd}: --ext auto of a JPEG", lambda d, b=base, c=cmd: [c, w.jpeg, *b[2:], "--ext", "auto", "-o", d],
                 "ok", lambda d, s=suffix: [d / f"j{s}.jpg", d / f"j{s}.jpg.json"],
                 check=lambda d, _o, s=suffix: [] if Image.open(d / f"j{s}.jpg").format == "JPEG" else ["not a JPEG"]),
            Case(f"{cmd}: --ext jpg against -o x.png", lambda d, b=base: b + ["--ext", "jpg", "-o", d / "x.png"],
                 "usage", absent=lambda d: [d / "x.png"]),
            Case(f"{cmd}: --device cuda:1", lambda d, b=base: b + ["--device", "cuda:1", "-o", d / "o.png"],
                 "ok" if _cuda_count() > 1 else "fail"),
            Case(f"{cmd}: --device gpu", lambda d, b=base: b + ["--device", "gpu"], "usage", needs="usage"),
            Case(f"{cmd}: --seed 2^64", lambda d, b=base: b + ["--seed", str(2**64)], "usage", needs="usage"),
            Case(f"{cmd}: --sampling-steps 0", lambda d, b=base: b + ["--sampling-steps", "0"], "usage", needs="usage"),
            Case(f"{cmd}: --resolution 5000", lambda d, b=base: b + ["--resolution", "5000"], "usage", needs="usage"),
            Case(f"{cmd}: --batch-size 0", lambda d, b=base: b + ["--batch-size", "0"], "usage", needs="usage"),
            Case(f"{cmd}: --shard 2/2", lambda d, b=base: b + ["--shard", "2/2", "-o", d]),
            Case(f"{cmd}: --model ''", lambda d, b=base: [*b[:-len(model)], "--model", "", *FAST], "usage",
                 needs="usage"),
            Case(f"{cmd}: --model of 5000 characters",
                 lambda d, b=base: [*b[:-len(model)], "--model", "m" * 5000, *FAST, "-o", d / "o.png"]),
            Case(f"{cmd}: --model u/<5000>",
                 lambda d, b=base: [*b[:-len(model)], "--model", "u/" + "m" * 5000, *FAST, "-o", d / "o.png"]),
        ]
        cases.append(Case(f"{cmd}: the default model", lambda d, b=base: [*b[:-len(model)], "--quiet", "-o",
                                                                           d / "o.png"], "ok", lambda d: [d / "o.png"]))
        if cmd != "colorize":
            only = [*base[:-len(model)], "--model", w.bad["colorize-only"], *FAST, "--quiet"]
            cases += [Case(f"{cmd}: a colorize-only model", lambda d, o=only: o + ["-o", d / "o.png"],
                           absent=lambda d: [d / "o.png"]),
                      Case(f"{cmd}: a colorize-only model with --force", lambda d, o=only: o + ["--force", "-o",
                                                                                              d / "o.png"],
                           "ok", lambda d: [d / "o.png"])]
        for kind in ("fifo", "urandom", "dangling", "loop", "socket", "text", "zero"):
            expect = "fail" if kind in ("text", "zero") else "usage"
            cases.append(Case(f"{cmd}: input {kind}", lambda d, b=base, k=kind: [b[0], w.bad[k], *b[2:], "-o", d],
                              expect))
        cases.append(Case(f"{cmd}: /dev/zero", lambda d, b=base: [b[0], "/dev/zero", *b[2:], "-o", d], "usage"))
        for kind in ("nan", "inf", "truncated", "random", "empty", "evil.pth", "fifo", "urandom",
                     "crafted-huge_blocks", "crafted-meta_list", "crafted-no_offsets"):
            cases.append(Case(f"{cmd}: --model {kind}",
                              lambda d, b=base, k=kind: [*b[:-len(model)], "--model", w.bad[k], *FAST, "-o", d / "o.png"],
                              absent=lambda d: [d / "o.png"]))
    return cases


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count()


def keeps_pixels(d: Path, _output: str) -> list[str]:
    """inpaint: every pixel outside the box is the input's own."""
    before, after = pixels(d / "in.png"), pixels(d / "o.png")
    outside = np.ones(before.shape[:2], bool)
    outside[4:14, 4:14] = False
    return [] if np.array_equal(before[outside], after[outside]) else ["pixels outside the box changed"]


def option_cases(w: World) -> list[Case]:
    """Options of one command each: masks, boxes, amounts, tiles, skips, sub-folders, panorama's -n/-r."""
    model = ["--model", w.model, *FAST, "--quiet"]
    grey, small, empty = (w.root / n for n in ("grey.png", "small.png", "empty.png"))
    Image.new("L", (48, 40), 128).save(grey)
    Image.new("L", (10, 10), 255).save(small)
    Image.new("L", (48, 40), 0).save(empty)
    inpaint = ["inpaint", w.photo, *model]
    cases = [Case(f"inpaint: --box {box}", lambda d, b=box: inpaint + ["--box", b, "-o", d / "o.png"], expect,
                  absent=lambda d: [d / "o.png"], needs=needs)
             for box, expect, needs in (("1,2,3", "usage", "usage"), ("a,b,c,d", "usage", "usage"),
                                        ("-1,0,5,5", "usage", "usage"), ("100,5,4,4", "fail", "line"),
                                        ("0,0,48,40", "fail", "line"), ("0,0,0,5", "usage", "usage"))]
    cases += [Case(f"inpaint: --mask {name}", lambda d, m=mask: inpaint + ["--mask", m, "-o", d / "o.png"], expect,
                   absent=lambda d: [d / "o.png"])
              for name, mask, expect in (("grey", grey, "fail"), ("of another size", small, "fail"),
                                         ("empty", empty, "fail"), ("fifo", w.bad["fifo"], "usage"),
                                         ("urandom", w.bad["urandom"], "usage"), ("missing", w.root / "no.png", "usage"),
                                         ("text", w.bad["text"], "fail"), ("folder without it", w.folder, "fail"))]
    cases += [
        Case("inpaint: --mask and --box", lambda d: inpaint + ["--mask", grey, "--box", "1,1,2,2"], "usage"),
        Case("inpaint: neither", lambda d: inpaint, "usage"),
        Case("inpaint: keeps every other pixel", lambda d: ["inpaint", d / "in.png", "--box", "4,4,10,10", *model,
                                                            "-o", d / "o.png"], "ok", lambda d: [d / "o.png"],
             check=keeps_pixels, setup=lambda d: shutil.copy(w.photo, d / "in.png")),
    ]
    uncrop = ["uncrop", w.photo, *model]
    cases += [Case(f"uncrop: --amount {a}", lambda d, a=a: uncrop + ["--amount", a, "-o", d / "o.png"], expect,
                   absent=lambda d: [d / "o.png"], needs=needs)
              for a, expect, needs in (("inf", "usage", "usage"), ("nan", "usage", "usage"), ("0", "usage", "usage"),
                                       ("-1", "usage", "usage"), ("abc", "usage", "usage"), ("1e9", "fail", "line"),
                                       ("1e400", "usage", "usage"))]
    cases += [
        Case("uncrop: --direction up", lambda d: uncrop + ["--direction", "up"], "usage", needs="usage"),
        Case("uncrop: keeps the original", lambda d: uncrop + ["--direction", "left", "-o", d / "o.png"], "ok",
             lambda d: [d / "o.png"], check=lambda d, _o: [] if np.array_equal(
                 pixels(d / "o.png")[:, -48:], pixels(w.photo)) else ["original pixels changed"]),
        Case("panorama: --steps 0", lambda d: ["panorama", w.photo, *model, "--steps", "0"], "usage", needs="usage"),
        Case("panorama: --steps 65", lambda d: ["panorama", w.photo, *model, "--steps", "65"], "usage", needs="usage"),
        Case("panorama: -r -n 2 of a folder", lambda d: ["panorama", w.folder, "-r", "-n", "2", "--steps", "1", *model,
                                                          "-o", d], "ok",
             lambda d: [d / "b_panorama_s0.png", d / "b_panorama_s1.png", d / "sub" / "c_panorama_s1.png"]),
        Case("restore: --tile 8", lambda d: ["restore", w.photo, *model, "--tile", "8"], "usage", needs="usage"),
        Case("restore: --overlap 500", lambda d: ["restore", w.photo, *model, "--overlap", "500"], "usage",
             needs="usage"),
        Case("colorize: --anneal 0 (no colour model)", lambda d: ["colorize", w.photo, *model, "--anneal", "0"],
             "usage", needs="usage"),
        Case("colorize: --anneal 1 on a pixel model", lambda d: ["colorize", w.photo, *model, "--anneal", "1",
                                                                  "-o", d / "o.png"]),
        Case("colorize: --sampler bogus", lambda d: ["colorize", w.photo, *model, "--sampler", "bogus"], "usage",
             needs="usage"),
        Case("colorize: --precision fp8", lambda d: ["colorize", w.photo, *model, "--precision", "fp8"], "usage",
             needs="usage"),
        Case("colorize: folder without -r says what it left out",
             lambda d: ["colorize", w.folder, *[a for a in model if a != "--quiet"], "-o", d], "ok",
             lambda d: [d / "b_colorized.png"], absent=lambda d: [d / "sub"],
             check=lambda d, out: [] if "1 sub-folder(s) holding images left out" in out else ["no sub-folder note"]),
        Case("colorize: two inputs into one -o file", lambda d: ["colorize", w.photo, w.jpeg, *model, "-o",
                                                                  d / "o.png"], "usage"),
        Case("colorize: skip line after a changed seed",
             lambda d: ["colorize", w.photo, *[a for a in model if a != "--quiet"][:-2], "--seed", "9", "-o",
                        d / "o.png"], "ok", lambda d: [d / "o.png"],
             setup=lambda d: CliRunner().invoke(app, [str(a) for a in ["colorize", w.photo, *model, "-o", d / "o.png"]]),
             check=lambda d, out: [] if "seed 0, now 9" in " ".join(out.split()) else ["skip line silent"]),
        Case("colorize: an output claimed by a live run elsewhere is left to it",
             lambda d: ["colorize", w.photo, *model, "-o", d / "o.png"], "ok", absent=lambda d: [d / "o.png"],
             setup=lambda d: (d / ".o.png.claim").write_text(json.dumps({"host": "elsewhere", "pid": 1,
                                                                          "time": time.time()})),
             keep=lambda d: [d / ".o.png.claim"]),
        Case("colorize: an empty claim left by a failed run is taken over",
             lambda d: ["colorize", w.photo, *model, "-o", d / "o.png"], "ok", lambda d: [d / "o.png"],
             setup=lambda d: _old_empty_claim(d / ".o.png.claim")),
        Case("colorize: temporaries of a killed run are cleared",
             lambda d: ["colorize", w.photo, *model, "-o", d / "o.png"], "ok", lambda d: [d / "o.png"],
             setup=lambda d: (d / ".o.png.k2j4_x9q.tmp").write_bytes(b"x" * 10)),
        Case("uncrop: write fails mid-way on a nearly full disk", lambda d: ["uncrop", w.photo, *model,
                                                                               "--direction", "all", "--amount", "3.0",
                                                                               "-o", w.tight / f"{d.name}.png"],
             absent=lambda d: [w.tight / f"{d.name}.png"]),
    ]
    return cases


def _old_empty_claim(path: Path) -> None:
    path.write_bytes(b"")
    os.utime(path, (time.time() - 10, time.time() - 10))


def other_cases(w: World) -> list[Case]:
    """train, export, convert, eval, models, data, study."""
    data_bad = w.root / "data-bad"
    data_bad.mkdir(exist_ok=True)
    (data_bad / "a.png").write_text("x")
    (data_bad / "b.jpg").write_bytes(b"")
    data_ok = w.root / "data-ok"
    data_ok.mkdir(exist_ok=True)
    make_photo(20, 20).save(data_ok / "a.png")

    def config(d: Path, text: str, name: str = "c.toml") -> Path:
        (d / name).write_text(text)
        return d / name

    toml = 'task = "colorize"\nnet = "tiny"\nsteps = 1\ndevice = "cpu"\n[data]\nsource = "{}"\nsize = 16\n'
    cases = [
        Case("train: config holding a list", lambda d: ["train", config(d, "[1, 2, 3]", "c.json"), "--out", d / "r"]),
        Case("train: config holding a string", lambda d: ["train", config(d, '"x"', "c.json"), "--out", d / "r"]),
        Case("train: config not TOML", lambda d: ["train", config(d, "= = =", "c.toml"), "--out", d / "r"]),
        Case("train: config not UTF-8", lambda d: ["train", d / "c.toml", "--out", d / "r"],
             setup=lambda d: (d / "c.toml").write_bytes(b"\xff\xfe\x00")),
        Case("train: config .ini", lambda d: ["train", config(d, "x=1", "c.ini"), "--out", d / "r"]),
        Case("train: config missing", lambda d: ["train", d / "none.toml", "--out", d / "r"]),
        Case("train: config a folder", lambda d: ["train", d, "--out", d / "r"]),
        Case("train: config a fifo", lambda d: ["train", d / "p.toml", "--out", d / "r"],
             setup=lambda d: (d / "p.toml").symlink_to(w.bad["fifo"])),
        Case("train: data all unreadable", lambda d: ["train", config(d, toml.format(data_bad)), "--out", d / "r",
                                                      "--quiet"]),
        Case("train: data folder empty", lambda d: ["train", config(d, toml.format(d / "nothing")), "--out", d / "r"],
             setup=lambda d: (d / "nothing").mkdir()),
        Case("train: --out a file", lambda d: ["train", config(d, toml.format(data_ok)), "--out", w.bad["afile"]]),
        Case("train: --out under a file", lambda d: ["train", config(d, toml.format(data_ok)), "--out",
                                                     w.bad["afile"] / "run"]),
        Case("train: --out on a read-only disk", lambda d: ["train", config(d, toml.format(data_ok)), "--out",
                                                            w.ro / "run"]),
        Case("train: --out ''", lambda d: ["train", config(d, toml.format(data_ok)), "--out", ""], "usage",
             needs="usage"),
        Case("train: --set x", lambda d: ["train", config(d, toml.format(data_ok)), "--set", "x", "--out", d / "r"]),
        Case("train: --set unknown key", lambda d: ["train", config(d, toml.format(data_ok)), "--set", "nope=1",
                                                    "--out", d / "r"]),
        Case("train: --set steps=-1", lambda d: ["train", config(d, toml.format(data_ok)), "--set", "steps=-1",
                                                 "--out", d / "r"]),
        Case("export: a pickle with code", lambda d: ["export", w.bad["evil.pt"], d / "m.safetensors"],
             absent=lambda d: [d / "m.safetensors"]),
        Case("export: random bytes", lambda d: ["export", w.bad["random"], d / "m.safetensors"]),
        Case("export: missing", lambda d: ["export", d / "none", d / "m.safetensors"]),
        Case("export: a fifo", lambda d: ["export", w.bad["fifo"], d / "m.safetensors"]),
        Case("export: to .bin", lambda d: ["export", d, d / "m.bin"]),
        Case("export: onto a read-only disk", lambda d: ["export", d, w.ro / "m.safetensors"]),
        Case("export: name of 300 bytes", lambda d: ["export", d / ("n" * 300), d / "m.safetensors"]),
        Case("convert: a pickle with code", lambda d: ["convert", w.bad["evil.pth"], d / "o.safetensors"],
             absent=lambda d: [d / "o.safetensors"]),
        Case("convert: random bytes", lambda d: ["convert", w.bad["random"], d / "o.safetensors"]),
        Case("convert: missing", lambda d: ["convert", d / "none.pth", d / "o.safetensors"]),
        Case("convert: onto a read-only disk", lambda d: ["convert", w.bad["evil.pth"], w.ro / "o.safetensors"]),
        Case("convert: output ''", lambda d: ["convert", w.bad["evil.pth"], ""], "usage", needs="usage"),
        Case("convert: a fifo", lambda d: ["convert", w.bad["fifo"], d / "o.safetensors"]),
        Case("eval: --inception-v3 a pickle", lambda d: ["eval", "--outputs", w.folder, "--references", w.folder,
                                                          "--feature-net", "standard", "--inception-v3",
                                                          w.bad["evil.pt"]]),
        Case("eval: --inception-v3 a fifo", lambda d: ["eval", "--outputs", w.folder, "--references", w.folder,
                                                        "--feature-net", "standard", "--inception-v3", w.bad["fifo"]]),
        Case("eval: references missing", lambda d: ["eval", "--references", d / "none", "--out", d / "r",
                                                     "--model", w.model]),
        Case("eval: --out ''", lambda d: ["eval", "--references", w.folder, "--out", ""], "usage", needs="usage"),
        Case("eval: --jpeg-quality 0", lambda d: ["eval", "--references", w.folder, "--out", d / "r",
                                                  "--jpeg-quality", "0"], "usage", needs="usage"),
        Case("models: a name of 5000 characters", lambda d: ["models", "m" * 5000]),
        Case("models: a fifo", lambda d: ["models", w.bad["fifo"]]),
        Case("models: a pickle", lambda d: ["models", w.bad["evil.pth"]]),
        Case("models: a model with NaN", lambda d: ["models", w.bad["nan"]], "ok"),
        Case("models: the list", lambda d: ["models"], "ok"),
        Case("data fetch-photos: under a file", lambda d: ["data", "fetch-photos", w.bad["afile"] / "photos"]),
        Case("data fetch-photos: read-only disk", lambda d: ["data", "fetch-photos", w.ro / "photos"]),
        Case("data fetch-photos: ''", lambda d: ["data", "fetch-photos", ""], "usage", needs="usage"),
        Case("data fetch-dev-photos: a file", lambda d: ["data", "fetch-dev-photos", w.bad["afile"]]),
        Case("study make: missing runs", lambda d: ["study", "make", d / "none", "-o", d / "s"]),
        Case("study make: -o ''", lambda d: ["study", "make", d, "-o", ""], "usage", needs="usage"),
        Case("study score: a garbage file", lambda d: ["study", "score", w.bad["random"], "-o", d / "f.json"]),
        Case("study score: a fifo", lambda d: ["study", "score", w.bad["fifo"], "-o", d / "f.json"]),
    ]
    return cases


# ----------------------------------------------------------------------------------------- processes


def palette(*args, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "palette_cli.cli.app", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def process_cases(w: World, d: Path) -> list[Outcome]:
    """Signals and concurrent runs, as real processes: every output made exactly once in the end."""
    folder = d / "in"
    folder.mkdir(parents=True)
    for k in range(6):
        make_photo(160, 128, k).save(folder / f"p{k}.png")
    slow = ["--model", w.model, "--sampling-steps", "40", "--device", "cpu", "--precision", "fp32", "--resolution",
            "32", "--seed", "0", "--tile", "32"]
    expected = sorted(f"p{k}_restored.png" for k in range(6))
    outcomes = []

    def finish(name: str, out: Path, problems: list[tuple[str, str]]) -> None:
        again = palette("restore", folder, "-o", out, *slow)
        _, err = again.communicate(timeout=600)
        if again.returncode != 0 or "Traceback" in err:
            problems.append(("lost outputs" if again.returncode else "tracebacks", err.strip()[-300:]))
        made = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        problems += [("lost outputs", f"{m} missing after the re-run") for m in expected if m not in made]
        problems += [("leftover claim/temporary files", f) for f in hidden_leftovers(out, [])]
        outcomes.append(Outcome(name, problems))

    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129), (signal.SIGKILL, -9)):
        out = d / f"out-{sig.name}"
        proc = palette("restore", folder, "-o", out, *slow)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (out.is_dir() and any(out.glob("*.png"))):
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        problems = []
        if proc.returncode != code:
            problems.append(("unclear messages", f"{sig.name}: exit {proc.returncode}, not {code}"))
        if "Traceback" in err:
            problems.append(("tracebacks", err.strip()[-300:]))
        if sig != signal.SIGKILL:  # a killed process cannot clean up; the re-run must
            problems += [("leftover claim/temporary files", f) for f in hidden_leftovers(out, [])]
        finish(f"{sig.name} mid-batch, then a re-run", out, problems)

    out = d / "out-concurrent"
    procs = [palette("restore", folder, "-o", out, *slow) for _ in range(3)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    problems = [("tracebacks", e[-300:]) for e in errs if "Traceback" in e]
    written = sum(int(line.split()[0]) for e in errs for line in e.splitlines() if " written, " in line)
    if written != 6:
        problems.append(("silent wrong results" if written > 6 else "lost outputs", f"{written} written by 3 runs"))
    finish("three concurrent runs", out, problems)

    out = d / "out-concurrent-killed"
    procs = [palette("restore", folder, "-o", out, *slow) for _ in range(2)]
    time.sleep(1.0)
    while not (out.is_dir() and any(out.glob("*.png"))) and procs[0].poll() is None:
        time.sleep(0.05)
    procs[0].kill()
    errs = [p.communicate(timeout=600)[1] for p in procs]
    finish("two concurrent runs, one killed", out, [("tracebacks", e[-300:]) for e in errs if "Traceback" in e])
    return outcomes


# ----------------------------------------------------------------------------------------- fuzzing


def fuzz_cases(w: World, d: Path, count: int) -> list[Outcome]:
    """``count`` byte-mutated image files through colorize, restore and inpaint (as inputs and as masks), and
    mutated model files through models and colorize; each file ends as an output or as one line naming it."""
    from palette_cli.imageio import load_image
    from tests.test_fuzz import _bases, mutate

    rng = np.random.default_rng(2024)
    bases = list(_bases().items())
    files = d / "files"
    files.mkdir(parents=True)
    for k in range(count):
        name, data = bases[k % len(bases)]
        stem, ext = name.rsplit(".", 1)
        (files / f"{stem}_{k:03d}.{ext}").write_bytes(mutate(data, rng))
    outcomes = []
    model = ["--model", w.model, *FAST, "--quiet"]

    def decodes(path: Path) -> tuple[int, int] | None:
        try:
            return load_image(path).size
        except ValueError:
            return None

    sizes = {p.name: decodes(p) for p in files.iterdir()}
    for cmd, extra in (("colorize", []), ("restore", []), ("inpaint", ["--box", "2,2,6,6"])):
        out = d / f"out-{cmd}"
        case = Case(f"fuzz: {count} files through {cmd}", lambda _d: [cmd, files, *extra, *model, "-o", out],
                    clean=False)
        outcome = run_in_process(case, out, w)
        outcome.problems = [p for p in outcome.problems if p[0] != "silent wrong results"]  # judged per file below
        made = {p.name for p in out.iterdir()}
        for name, size in sizes.items():
            result = f"{name.rsplit('.', 1)[0]}{SUFFIX[cmd]}.png"
            if result in made and size is None:
                outcome.problems.append(("silent wrong results", f"{name}: output from a file that does not load"))
            elif result in made and Image.open(out / result).size != size:
                outcome.problems.append(("silent wrong results", f"{name}: output of the wrong size"))
            elif result not in made and size is not None and not (cmd == "inpaint" and min(size) <= 2):
                outcome.problems.append(("lost outputs", f"{name}: loads but no output"))
        outcomes.append(outcome)
    masks = d / "masks"
    masks.mkdir()
    photos = d / "photos"
    photos.mkdir()
    for k, p in enumerate(sorted(files.iterdir())[: count // 4]):
        shutil.copy(p, masks / p.name)
        make_photo(48, 40, k).save(photos / f"{p.stem}.png")
    out = d / "out-masks"
    outcomes.append(run_in_process(Case(f"fuzz: {count // 4} files as masks", lambda _d: [
        "inpaint", photos, "--mask", masks, "--resize-mask", *model, "-o", out], clean=False), out, w))
    outcomes[-1].problems = [p for p in outcomes[-1].problems if p[0] != "silent wrong results"]
    blob = w.model.read_bytes()
    for k in range(count // 5):
        data = bytearray(blob)
        for pos in rng.integers(0, min(len(data), 4096), int(rng.integers(1, 8))):
            data[pos] = int(rng.integers(0, 256))
        path = d / "models" / f"m{k:02d}.safetensors"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(bytes(data))
        outcome = run_in_process(Case(f"fuzz: model file {k}", lambda _d, p=path: ["models", p], "any"), d / "m", w)
        outcome.problems = [p for p in outcome.problems if p[0] not in ("silent wrong results", "lost outputs")]
        outcomes.append(outcome)
        outcome = run_in_process(Case(f"fuzz: model file {k} in colorize", lambda _d, p=path: [
            "colorize", w.photo, "--model", p, *FAST, "--quiet", "-o", d / "m" / f"{k}.png"], "any"), d / "m", w)
        outcome.problems = [p for p in outcome.problems if p[0] not in ("silent wrong results", "lost outputs")]
        outcomes.append(outcome)
    return outcomes


# ----------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fuzz", type=int, default=200, help="fuzzed image files (default 200)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--verbose", action="store_true", help="print every case")
    parser.add_argument("--no-processes", action="store_true", help="skip the signal and concurrency cases")
    parser.add_argument("--case-seconds", type=int, default=CASE_SECONDS, help="a case running longer hangs")
    args = parser.parse_args()
    limits["case"] = args.case_seconds
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="palette-sweep-"))
    start = time.monotonic()
    w = build_world(work)
    try:
        cases = image_cases(w) + option_cases(w) + other_cases(w)
        outcomes = []
        for k, case in enumerate(cases):
            outcomes.append(run_in_process(case, work / "cases" / f"{k:03d}", w))
            if args.verbose or outcomes[-1].problems:
                print(f"[{k + 1}/{len(cases)}] {case.name}: " + ("ok" if not outcomes[-1].problems else
                                                               "; ".join(f"{a}: {b}" for a, b in outcomes[-1].problems)),
                      flush=True)
        if not args.no_processes:
            outcomes += process_cases(w, work / "processes")
        fuzzed = fuzz_cases(w, work / "fuzz", args.fuzz)
        outcomes += fuzzed
        if w.bad["marker"].exists():
            outcomes.append(Outcome("pickles", [("silent wrong results", "a pickle's code ran")]))
        leftovers = hidden_leftovers(work, [work / "cases" / f"{k:03d}" / ".o.png.claim" for k in range(len(cases))])
        counts = Counter(kind for o in outcomes for kind, _ in o.problems)
        for o in outcomes[len(cases):]:
            if o.problems and not args.verbose:
                print(f"{o.name}: " + "; ".join(f"{a}: {b}" for a, b in o.problems), flush=True)
        print(f"\n{len(cases) + len(outcomes) - len(cases) - len(fuzzed)} hostile cases "
              f"({len(cases)} in process, {len(outcomes) - len(cases) - len(fuzzed)} as processes), {args.fuzz} fuzzed "
              f"image files and {args.fuzz // 5} fuzzed model files in {len(fuzzed)} runs; "
              f"{'real tmpfs disks' if len(w.mounted) == 3 else 'simulated disks'}; {time.monotonic() - start:.0f} s")
        for kind in KINDS:
            print(f"{kind}: {counts.get(kind, 0)}")
        print(f"files left in the work folder: {len(leftovers)} claims/temporaries outside the planted ones")
        return 0 if not counts and not leftovers else 1
    finally:
        for path in w.mounted:
            subprocess.run(["umount", str(path)], check=False)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
