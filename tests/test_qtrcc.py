"""The Qt resource bundle reader, on bundles built here (byte by byte, and by the conftest builder)."""

from __future__ import annotations

import struct
import zlib

import pytest

from palette_cli.sources.qtrcc import RccBundle, RccError

from .conftest import make_rcc


def test_reads_a_bundle_written_byte_by_byte():
    # Version 1: 20-byte header, 14-byte nodes. Data at 20: "hi" (4 + 2 bytes); names at 26: "a.txt"
    # (2 + 4 + 10 bytes); tree at 42: the root folder (one child, node 1) and the file (data offset 0).
    data = struct.pack(">I", 2) + b"hi"
    names = struct.pack(">HI", 5, 0x1234) + "a.txt".encode("utf-16-be")
    tree = struct.pack(">IHII", 0, 2, 1, 1) + struct.pack(">IHHHI", 0, 0, 0, 1, 0)
    blob = b"qres" + struct.pack(">4I", 1, 20 + len(data) + len(names), 20, 20 + len(data)) + data + names + tree
    bundle = RccBundle(blob)
    assert bundle.version == 1 and bundle.paths() == ["a.txt"]
    assert bundle.read("a.txt") == b"hi" and bundle.read(":/a.txt") == b"hi"
    assert bundle.entries["a.txt"].language == 1 and bundle.entries["a.txt"].compression == "none"


@pytest.mark.parametrize("version", [1, 2, 3])
def test_nested_folders_and_zlib_entries(version):
    files = {"gcompris/src/activities/erase/resource/fox.webp": b"RIFF fox" * 40,
             "gcompris/src/activities/erase/resource/README": b"Files: fox.webp\n",
             "gcompris/src/activities/erase/Erase.qml": b"Item {}",
             "top.txt": "é".encode()}
    bundle = RccBundle(make_rcc(files, version=version, compress={"gcompris/src/activities/erase/resource/fox.webp"}))
    assert bundle.version == version
    assert bundle.paths() == sorted(files)
    assert {p: bundle.read(p) for p in files} == files
    assert bundle.entries["gcompris/src/activities/erase/resource/fox.webp"].compression == "zlib"
    assert bundle.entries["top.txt"].compression == "none"
    with pytest.raises(KeyError, match="no file 'nope.webp'"):
        bundle.read("nope.webp")


def test_damaged_bundles_are_one_line_errors():
    good = make_rcc({"a/b.webp": b"x" * 50}, compress={"a/b.webp"})
    with pytest.raises(RccError, match="no 'qres' magic"):
        RccBundle(b"PK\x03\x04" + good[4:])
    with pytest.raises(RccError, match="version 9"):
        RccBundle(good[:4] + struct.pack(">I", 9) + good[8:])
    with pytest.raises(RccError, match="truncated"):
        RccBundle(good[:-10])
    # The compressed entry's zlib stream starts at header (24) + length (4) + size (4) bytes.
    broken = bytearray(good)
    broken[32:34] = b"\x00\x00"
    with pytest.raises(RccError, match="cannot decompress a/b.webp"):
        RccBundle(bytes(broken)).read("a/b.webp")
    # A zstd-flagged entry (flag 4): the file node is the last 22 bytes; its flags follow the name offset.
    zstd = bytearray(good)
    zstd[-22 + 4:-22 + 6] = struct.pack(">H", 4)
    with pytest.raises(RccError, match="zstd"):
        RccBundle(bytes(zstd)).read("a/b.webp")
    assert zlib.decompress(good[32:32 + struct.unpack(">I", good[24:28])[0] - 4]) == b"x" * 50
