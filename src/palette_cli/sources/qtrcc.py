"""A reader for Qt binary resource bundles (``.rcc`` files, as written by ``rcc --binary``).

Layout, all integers big-endian:

* header: the magic ``qres``, then uint32 format version (1, 2 or 3), tree offset, data offset and
  names offset; version 3 adds a uint32 of global flags (24 bytes in all, 20 before version 3).
* tree: fixed-size nodes, node 0 being the root folder. A node is uint32 name offset, uint16 flags,
  then for a folder uint32 child count and uint32 index of its first child (children are consecutive
  nodes), for a file uint16 territory, uint16 language and uint32 data offset; versions 2 and 3 append
  a uint64 modification time (milliseconds), so a node is 22 bytes there and 14 bytes in version 1.
* names (at names offset + name offset): uint16 length in UTF-16 code units, uint32 hash, the UTF-16BE
  characters.
* data (at data offset + data offset of the node): uint32 length, then the bytes. A file flagged as
  zlib-compressed stores a uint32 uncompressed size before a zlib stream; a zstd-compressed one is a
  zstd frame (not supported here: reading it is an :class:`RccError`).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"qres"
FLAG_ZLIB = 0x01
FLAG_DIRECTORY = 0x02
FLAG_ZSTD = 0x04


class RccError(ValueError):
    """The bytes are not a readable Qt resource bundle; the message is one line."""


@dataclass(frozen=True)
class RccEntry:
    """One file in a bundle: its path (``/``-separated, no leading slash) and where its bytes are."""

    path: str
    flags: int
    data_offset: int  # absolute offset of the data record (its uint32 length)
    territory: int = 0
    language: int = 0

    @property
    def compression(self) -> str:
        return "zlib" if self.flags & FLAG_ZLIB else "zstd" if self.flags & FLAG_ZSTD else "none"


class RccBundle:
    """The files of one ``.rcc`` bundle, listed from its tree and read on demand."""

    def __init__(self, data: bytes):
        self.data = bytes(data)
        if len(self.data) < 20 or self.data[:4] != MAGIC:
            raise RccError("not a Qt resource bundle (no 'qres' magic)")
        self.version, tree, payload, names = struct.unpack_from(">4I", self.data, 4)
        if self.version not in (1, 2, 3):
            raise RccError(f"unsupported Qt resource format version {self.version}")
        self._tree, self._payload, self._names = tree, payload, names
        self._node_size = 14 if self.version == 1 else 22
        self.entries: dict[str, RccEntry] = {}
        self._walk()

    @classmethod
    def open(cls, path: str | Path) -> "RccBundle":
        return cls(Path(path).read_bytes())

    # -- structure

    def _unpack(self, fmt: str, offset: int) -> tuple:
        try:
            return struct.unpack_from(fmt, self.data, offset)
        except struct.error:
            raise RccError(f"truncated Qt resource bundle (a record at byte {offset} runs past the end)") from None

    def _name(self, offset: int) -> str:
        at = self._names + offset
        (length,) = self._unpack(">H", at)
        raw = self.data[at + 6: at + 6 + 2 * length]
        if len(raw) != 2 * length:
            raise RccError(f"truncated Qt resource bundle (a name at byte {at} runs past the end)")
        return raw.decode("utf-16-be", errors="replace")

    def _node(self, index: int) -> tuple[int, int, int, int]:
        """(name offset, flags, a, b): a, b = child count, first child for a folder, else
        (territory << 16 | language), data offset."""
        return self._unpack(">IHII", self._tree + index * self._node_size)

    def _walk(self) -> None:
        _, flags, count, first = self._node(0)
        if not flags & FLAG_DIRECTORY:
            raise RccError("malformed Qt resource bundle (the root is not a folder)")
        stack = [("", count, first, 0)]
        seen = 0
        while stack:
            prefix, count, first, depth = stack.pop()
            if depth > 64:
                raise RccError("malformed Qt resource bundle (folders nest too deep)")
            for index in range(first, first + count):
                seen += 1
                if seen > 1_000_000:
                    raise RccError("malformed Qt resource bundle (too many nodes)")
                name_offset, flags, a, b = self._node(index)
                path = prefix + self._name(name_offset)
                if flags & FLAG_DIRECTORY:
                    stack.append((path + "/", a, b, depth + 1))
                else:
                    self.entries[path] = RccEntry(path, flags, self._payload + b, a >> 16, a & 0xFFFF)

    # -- files

    def paths(self) -> list[str]:
        return sorted(self.entries)

    def read(self, path: str) -> bytes:
        """The bytes of one file, decompressed."""
        try:
            entry = self.entries[path.lstrip("/").removeprefix(":/")]
        except KeyError:
            raise KeyError(f"no file {path!r} in the bundle") from None
        (length,) = self._unpack(">I", entry.data_offset)
        start = entry.data_offset + 4
        raw = self.data[start:start + length]
        if len(raw) != length:
            raise RccError(f"truncated Qt resource bundle ({entry.path} runs past the end)")
        if entry.flags & FLAG_ZSTD:
            raise RccError(f"{entry.path} is zstd-compressed, which this reader does not support")
        if entry.flags & FLAG_ZLIB:
            if length < 4:
                raise RccError(f"malformed compressed entry {entry.path}")
            (size,) = struct.unpack_from(">I", raw, 0)
            try:
                out = zlib.decompress(raw[4:])
            except zlib.error as e:
                raise RccError(f"cannot decompress {entry.path}: {e}") from None
            if len(out) != size:
                raise RccError(f"{entry.path} decompressed to {len(out)} bytes, expected {size}")
            return out
        return raw

