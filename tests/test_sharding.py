"""Batches shared between processes: the pixel-balanced split, per-file seeds, --shard and torchrun ranks."""

import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
from PIL import Image
from typer.testing import CliRunner

from palette_cli.cli.app import app
from palette_cli.imageio import header_pixels, read_metadata
from palette_cli.scale.sharding import balanced_parts, file_seed, parse_shard
from tests.conftest import make_photo

FAST = ["--sampling-steps", "2", "--quiet", "--device", "cpu", "--precision", "fp32", "--resolution", "32"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def torchrun(*args, timeout=300):
    """``torchrun --standalone --nproc_per_node 2 -m palette_cli.cli.app ARGS`` (2 gloo ranks on the CPU)."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "palette_cli.cli.app", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    for k, (w, h) in enumerate([(48, 40), (40, 40), (36, 44), (64, 32), (32, 32)]):
        make_photo(w, h, k).save(d / ("sub" if k % 2 else ".") / f"p{k}.png")
    return d


# ------------------------------------------------------------------------------------------ units


def test_parse_shard():
    assert parse_shard("0/2") == (0, 2) and parse_shard(" 3/4 ") == (3, 4) and parse_shard("0/1") == (0, 1)
    for bad, message in [("2/2", "K must be below N"), ("3/2", "K must be below N"), ("0/0", "at least 1"),
                         ("1", "is not K/N"), ("-1/2", "is not K/N"), ("a/b", "is not K/N"), ("1/2/3", "is not K/N")]:
        with pytest.raises(ValueError, match=message):
            parse_shard(bad)


def test_file_seed_comes_from_the_seed_and_the_relative_path_only():
    assert file_seed(0, "a.png") == file_seed(0, PurePosixPath("a.png"))
    assert file_seed(0, "sub/a.png") == file_seed(0, PurePosixPath("sub") / "a.png")
    seeds = {file_seed(s, p) for s in (0, 1, 2**64 - 1) for p in ("a.png", "b.png", "sub/a.png")}
    assert len(seeds) == 9 and all(0 <= s < 2**63 for s in seeds)
    # A hash of its own, not Python's salted hash(): the same in every process and release.
    assert file_seed(0, "a.png") == 9211726159953584320
    assert file_seed(7, "caf\udce9.png") == 5569458092241583835  # a name with a byte that is not UTF-8


def test_file_seed_is_stable_across_processes():
    code = "from palette_cli.scale.sharding import file_seed; print(file_seed(5, 'sub/p1.png'))"
    values = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
              for _ in range(2)}
    assert values == {str(file_seed(5, "sub/p1.png"))}


def test_balanced_parts_puts_a_huge_file_alone():
    weights = [100, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10]
    owner = balanced_parts(weights, 2)
    assert owner[0] == 0 and owner[1:] == [1] * 10  # 100 pixels against 10 × 10
    loads = [sum(w for w, o in zip(weights, owner) if o == p) for p in range(2)]
    assert loads == [100, 100]


def test_balanced_parts_loads_are_close_and_every_item_has_one_part():
    weights = [48 * 40, 40 * 40, 36 * 44, 64 * 32, 32 * 32, 1, 1, 500 * 300]
    for parts in (1, 2, 3, 5, 12):
        owner = balanced_parts(weights, parts)
        assert len(owner) == len(weights) and set(owner) <= set(range(parts))
        loads = [sum(w for w, o in zip(weights, owner) if o == p) for p in range(parts)]
        # greedy largest-first: no part exceeds the lightest by more than the largest item
        assert max(loads) - min(loads) <= max(weights)
    assert balanced_parts([5, 3, 3, 2, 1], 2) == [0, 1, 1, 0, 1]  # loads 7 and 7
    assert balanced_parts([4, 4, 4, 4], 2) == [0, 1, 0, 1]  # ties: the lower part first
    assert balanced_parts([], 3) == []
    with pytest.raises(ValueError):
        balanced_parts([1], 0)


def test_header_pixels_reads_sizes_without_decoding(tmp_path):
    make_photo(30, 20).save(tmp_path / "a.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.new("1", (20000, 15000)).save(tmp_path / "bomb.png")  # 300 MP declared: over Pillow's bomb limit
    assert header_pixels(tmp_path / "a.png") == 600
    assert header_pixels(tmp_path / "bomb.png") == 300_000_000
    assert header_pixels(tmp_path / "bad.jpg") is None and header_pixels(tmp_path / "empty.png") is None
    assert header_pixels(tmp_path / "missing.png") is None


# ------------------------------------------------------------------------------------------ commands


def test_a_file_alone_or_in_a_batch_gives_the_same_output(folder, tmp_path, tiny_model_file):
    """A file's seed comes from its path relative to the input root, not from its place in the batch."""
    r = run("colorize", folder, "-o", tmp_path / "all", "--model", tiny_model_file, "--seed", 3, *FAST)
    assert r.exit_code == 0, r.output
    r = run("colorize", folder / "p4.png", "-o", tmp_path / "one", "--model", tiny_model_file, "--seed", 3, *FAST)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "one" / "p4_colorized.png").read_bytes() == (tmp_path / "all" / "p4_colorized.png").read_bytes()
    all_ = outputs(tmp_path / "all")
    assert len(set(all_.values())) == len(all_) == 3  # (p0, p2, p4) each differs
    meta = read_metadata(tmp_path / "all" / "p2_colorized.png")
    assert meta["seed"] == "3" and meta["seed_path"] == "p2.png"


def test_one_process_two_shards_and_two_ranks_write_identical_files(folder, tmp_path, tiny_model_file):
    common = ["-r", "--model", tiny_model_file, "--seed", 11, *FAST]
    r = run("colorize", folder, "-o", tmp_path / "one", *common)
    assert r.exit_code == 0, r.output
    shares = []
    for k in (0, 1):
        r = run("colorize", folder, "-o", tmp_path / "shards", "--shard", f"{k}/2", *common)
        assert r.exit_code == 0, r.output
        shares.append(set(outputs(tmp_path / "shards")) - set().union(*shares))
    proc = torchrun("colorize", folder, "-o", tmp_path / "ranks", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]

    one = outputs(tmp_path / "one")
    assert sorted(one) == ["p0_colorized.png", "p2_colorized.png", "p4_colorized.png",
                           "sub/p1_colorized.png", "sub/p3_colorized.png"]
    assert outputs(tmp_path / "shards") == one and outputs(tmp_path / "ranks") == one
    # Split by pixels, largest first to the lighter shard: 64×32 + 36×44 (3632) and 48×40 + 40×40 + 32×32 (4544).
    assert shares == [{"sub/p3_colorized.png", "p2_colorized.png"},
                      {"p0_colorized.png", "sub/p1_colorized.png", "p4_colorized.png"}]


def test_two_ranks_on_a_mixed_folder_merge_their_summaries(folder, tmp_path, tiny_model_file):
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    data = (folder / "p0.png").read_bytes()
    (folder / "sub" / "truncated.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    args = ["restore", folder, "-r", "-o", out, "--model", tiny_model_file, "--seed", 1,
            *(a for a in FAST if a != "--quiet")]  # --quiet would hide the summary

    proc = torchrun(*args)
    assert proc.returncode != 0
    ours = proc.stderr.split("ChildFailedError")[0]  # what torchrun adds after our lines is its own report
    assert "5 written, 0 skipped, 2 failed across 2 ranks (seed 1)." in ours
    assert "Error: 2 of 7 input(s) failed: " in ours and "broken.jpg" in ours and "truncated.png" in ours
    assert ours.count("written,") == 1  # one summary, from rank 0
    assert len(outputs(out)) == 5

    proc = torchrun(*args)  # a re-run does only what is missing: here, the two bad files again
    ours = proc.stderr.split("ChildFailedError")[0]
    assert proc.returncode != 0 and "0 written, 5 skipped, 2 failed across 2 ranks (seed 1)." in ours

    for bad in (folder / "broken.jpg", folder / "sub" / "truncated.png"):
        bad.unlink()
    proc = torchrun(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "0 written, 5 skipped, 0 failed across 2 ranks." in proc.stderr


def test_a_shard_reports_its_own_share_and_fails_for_its_own_files(folder, tmp_path, tiny_model_file):
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    args = ["colorize", folder, "-r", "-o", tmp_path / "out", "--model", tiny_model_file, "--seed", 2]
    codes = {}
    for k in range(3):
        r = run(*args, "--shard", f"{k}/3", *FAST)
        codes[k] = r.exit_code
        assert "Traceback" not in r.output
        if r.exit_code:
            assert f"of shard {k}/3 failed: " in r.output and "broken.jpg" in r.output
    assert sorted(codes.values()) == [0, 0, 1]
    assert len(outputs(tmp_path / "out")) == 5
    r = run(*args, "--shard", "7/8", *FAST)  # more shards than work: nothing to do, and that is fine
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("value,message", [("3/2", "K must be below N"), ("2", "is not K/N"),
                                           ("0/0", "at least 1")])
def test_a_bad_shard_is_one_line(folder, tmp_path, tiny_model_file, value, message):
    r = run("colorize", folder, "-o", tmp_path / "out", "--model", tiny_model_file, "--shard", value, *FAST)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert r.output.strip().count("\n") == 0 and not (tmp_path / "out").exists()
