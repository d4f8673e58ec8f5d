"""Naming and inspecting user files: printable names, name-length limits, what a path names, and the two
one-line errors (:class:`ImageInputError`, :class:`OutputError`) every part of :mod:`palette_cli.imageio` raises.

A problem a user can cause becomes one of these errors whose message is one line naming the file, so the
CLI can print it and carry on with a batch.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def display_name(path: str | os.PathLike[str]) -> str:
    """A path as printable text: bytes of a file name that are not UTF-8 (kept by Python as surrogates)
    shown as ``\\xe9`` escapes, so messages and metadata never fail on them."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def short_name(path: str | os.PathLike[str], limit: int = 120) -> str:
    """:func:`display_name`, with the middle of a name longer than ``limit`` characters cut out (a message
    about a 5000-character name stays readable)."""
    text = display_name(path)
    if len(text) <= limit:
        return text
    keep = (limit - 30) // 2
    return f"{text[:keep]}…({len(text)} characters)…{text[-keep:]}"


def os_reason(err: OSError) -> str:
    """An OSError's reason without its errno and path: 'No space left on device'."""
    return err.strerror or str(err)


def _name_limits(path: Path) -> tuple[int, int]:
    """(longest file name, longest path) in bytes on the file system that would hold ``path``."""
    folder = path.parent
    while folder != folder.parent:
        try:
            if folder.is_dir():
                break
        except OSError:
            pass
        folder = folder.parent
    limits = []
    for key, default in (("PC_NAME_MAX", 255), ("PC_PATH_MAX", 4096)):
        try:
            limits.append(os.pathconf(folder, key) or default)
        except (OSError, ValueError, AttributeError):
            limits.append(default)
    return limits[0], limits[1]


def name_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot name a file here (a part of it or the whole longer than the file system
    allows), found without touching the file; None when its length is fine."""
    path = Path(path)
    name_max, path_max = _name_limits(path)
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > name_max:
        return f"file name too long ({longest} bytes; this file system allows {name_max})"
    if len(os.fsencode(os.path.abspath(path))) >= path_max:
        return f"path too long (over {path_max} bytes)"
    return None


_FILE_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def path_kind(path: str | os.PathLike[str]) -> str:
    """What ``path`` names, symbolic links followed: 'file', 'folder', 'missing', or another kind of file
    ('a named pipe (FIFO)', 'a character device', 'a broken symbolic link'...). Raises
    :class:`ImageInputError` when it cannot be looked at (a name too long, permission denied)."""
    problem = name_problem(path)
    if problem:
        raise ImageInputError(short_name(path), problem)
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return "a broken symbolic link" if os.path.islink(path) else "missing"
        if err.errno == errno.ELOOP:
            return "a loop of symbolic links"
        raise ImageInputError(path, os_reason(err)) from None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")


def check_regular_file(path: str | os.PathLike[str], error: type[Exception], what: str = "file") -> None:
    """Raise ``error`` (one line naming ``path``) unless it is a regular file: reading a named pipe would
    wait forever, and a device never ends."""
    try:
        kind = path_kind(path)
    except ImageInputError as err:
        raise error(str(err)) from None
    if kind == "missing":
        raise error(f"{display_name(path)}: {what} not found")
    if kind == "folder":
        raise error(f"{display_name(path)}: is a folder, not a {what}")
    if kind != "file":
        raise error(f"{display_name(path)}: is {kind}, not a regular {what}")


class ImageInputError(ValueError):
    """A user input that cannot be used; ``str()`` is one line naming the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = display_name(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")


class OutputError(OSError):
    """An output that cannot be written; ``str()`` is one line naming the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = display_name(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"
