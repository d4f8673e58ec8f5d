"""Output files across runs: checking where they go before any work, claiming them, clearing leftovers.

* :func:`output_problem` tells, without creating anything, why an output cannot be written (its name is too
  long, its folder is a file, is not writable, its disk is full...), so a command can refuse before it
  samples anything.
* :func:`claim` creates ``.NAME.claim`` next to an output exclusively (``O_CREAT | O_EXCL``) before a run
  works on it, holds an exclusive lock on it while it works, and removes it afterwards. A second run that
  finds a live claim skips that output, so two runs over the same inputs and outputs split the work instead
  of each overwriting the other's results. A claim is stale, and taken over, when its owner has let go of its
  lock (the owner finished or is gone, whatever became of its process id), when its process is gone (same
  host, claims without a lock), when it was never written (left by a run that failed while making it) or
  when it is older than :data:`CLAIM_MAX_AGE`. A claim that cannot be written is removed at once.
* :func:`remove_stale_temporaries` deletes the ``.NAME.XXXXXXXX.tmp`` files an atomic write of that output
  left behind when its process was killed; it is called while holding the output's claim, when no other
  run can be writing them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import string
import time
from collections.abc import Iterator
from pathlib import Path

from .imageio import OutputError, name_problem, os_reason, sidecar_path

try:
    import fcntl
except ImportError:  # no advisory locks on this platform: claims rely on process ids and their age
    fcntl = None  # type: ignore[assignment]

CLAIM_MAX_AGE = 24 * 3600  # seconds; a claim this old is stale whoever holds it
_UNWRITTEN_CLAIM_AGE = 60  # seconds; a claim still without its owner after this long is stale
_UNLOCKED_EMPTY_CLAIM_AGE = 2  # seconds; ... or after this long when nobody holds its lock
_TEMP_CHARS = frozenset(string.ascii_lowercase + string.digits + "_")  # tempfile.mkstemp's name characters
_TEMP_RANDOM_LENGTH = 8
#: Bytes an output needs besides its pixels (headers, metadata, the claim): a disk with less is full.
OUTPUT_OVERHEAD = 2**16


def claim_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.claim")


def _nearest_existing(folder: Path) -> Path:
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def output_problem(output: Path, needed: int = OUTPUT_OVERHEAD) -> str | None:
    """Why ``output`` cannot be written, found without creating anything; None when it looks writable.

    ``needed`` is about how many bytes it takes; a disk with less free space is refused."""
    too_long = name_problem(output) or name_problem(claim_path(output))
    if too_long:
        return too_long
    if output.is_dir():
        return "is a folder; give an image file name"
    return folder_problem(output.parent, needed)


def folder_problem(folder: Path, needed: int = OUTPUT_OVERHEAD) -> str | None:
    """Why files cannot be made in ``folder`` (created if missing), found without creating anything: a file
    in its way, no permission, a read-only file system, less than ``needed`` bytes free; None when none."""
    too_long = name_problem(folder)
    if too_long:
        return too_long
    nearest = _nearest_existing(folder)
    if not nearest.is_dir():
        return f"cannot create the output folder: {nearest} is a file"
    if not os.access(nearest, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(nearest).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            read_only = False
        return f"output folder {nearest} is on a read-only file system" if read_only else \
            f"output folder {nearest} is not writable"
    return _space_problem(nearest, needed)


def _space_problem(folder: Path, needed: int) -> str | None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free < needed:
        return f"only {free / 1e6:.1f} MB free on this disk, the output needs about {needed / 1e6:.1f} MB"
    return None


def check_free_space(output: Path, needed: int) -> None:
    """Raise :class:`OutputError` when the output's folder has less than ``needed`` bytes free."""
    problem = _space_problem(_nearest_existing(output.parent), needed)
    if problem:
        raise OutputError(output.parent, problem)


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate the process there; rely on the claim's age instead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


def _claim_owner(path: Path) -> dict | None:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _lock_free(path: Path) -> bool | None:
    """Whether nobody holds the claim's lock (True), someone does (False), or it cannot be told (None)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks
        return None
    finally:
        os.close(fd)
    return True


def _is_stale(path: Path, owner: dict | None) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if age > CLAIM_MAX_AGE:
        return True
    if owner is None:  # never written: its maker failed (or is writing it right now)
        return age > _UNWRITTEN_CLAIM_AGE or (age > _UNLOCKED_EMPTY_CLAIM_AGE and _lock_free(path) is True)
    if owner.get("lock") is True and _lock_free(path) is True:
        return True  # its owner locked it before writing it, and has let go: finished or gone
    pid = owner.get("pid")
    same_host = owner.get("host") == socket.gethostname()
    return same_host and isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid)


def _remove_if_same(path: Path, inode: int) -> None:
    """Remove the claim file at ``path`` if it is still the file ``inode`` (not a claim made since)."""
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_ino == inode:
            path.unlink()


class Claim:
    """A held claim: the open, locked claim file; :meth:`release` removes it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    def release(self) -> None:
        """Remove the claim file, then let go of its lock."""
        with contextlib.suppress(OSError):
            _remove_if_same(self.path, os.fstat(self.fd).st_ino)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _write_claim(path: Path, fd: int) -> None:
    """Lock the new claim file, then write who holds it; on failure remove it and raise OutputError."""
    try:
        locked = False
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(), "lock": locked}
        data = json.dumps(owner).encode("utf-8")
        if os.write(fd, data) != len(data):
            raise OSError(28, os.strerror(28))
    except OSError as err:
        with contextlib.suppress(OSError):
            _remove_if_same(path, os.fstat(fd).st_ino)
        os.close(fd)
        raise OutputError(path.parent, f"cannot write in output folder ({os_reason(err)})") from None


def try_claim(output: Path) -> Claim | None:
    """Create ``output``'s claim file exclusively and lock it; None when another live run holds it.

    Creates the output folder. Raises :class:`OutputError` when the folder cannot be created or written.
    """
    folder = output.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(folder, f"cannot create output folder ({os_reason(err)})") from None
    path = claim_path(output)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _claim_owner(path)
            try:
                inode = os.stat(path).st_ino
            except FileNotFoundError:
                continue
            if not _is_stale(path, owner):
                return None
            if _claim_owner(path) == owner:  # still the stale one, not a claim made since
                _remove_if_same(path, inode)
            continue
        except OSError as err:
            raise OutputError(folder, f"cannot write in output folder ({os_reason(err)})") from None
        _write_claim(path, fd)
        return Claim(path, fd)
    return None


@contextlib.contextmanager
def claim(output: Path) -> Iterator[bool]:
    """Hold ``output``'s claim for the duration; yields False (and holds nothing) when another run has it."""
    held = try_claim(output)
    try:
        yield held is not None
    finally:
        if held is not None:
            held.release()


def remove_stale_temporaries(output: Path) -> list[Path]:
    """Delete temporaries an interrupted atomic write of ``output`` (or its metadata sidecar) left behind."""
    removed = []
    for target in (output, sidecar_path(output)):
        prefix, suffix = f".{target.name}.", ".tmp"
        try:
            entries = list(os.scandir(target.parent))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            middle = name[len(prefix):-len(suffix)]
            if (name.startswith(prefix) and name.endswith(suffix) and len(middle) == _TEMP_RANDOM_LENGTH
                    and set(middle) <= _TEMP_CHARS and entry.is_file(follow_symlinks=False)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed
