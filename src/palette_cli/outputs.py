"""Output files across runs: checking where they go before any work, claiming them, clearing leftovers.

* :func:`output_problem` tells, without creating anything, why an output cannot be written (its folder is
  a file, is not writable...), so a command can refuse before it samples anything.
* :func:`claim` creates ``.NAME.claim`` next to an output exclusively (``O_CREAT | O_EXCL``) before a run
  works on it and removes it afterwards. A second run that finds the claim skips that output, so two runs
  over the same inputs and outputs split the work instead of each overwriting the other's results. A claim
  whose process is gone (same host) or that is older than :data:`CLAIM_MAX_AGE` is stale and taken over.
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

from .imageio import OutputError, sidecar_path

CLAIM_MAX_AGE = 24 * 3600  # seconds; a claim this old is stale whoever holds it
_UNWRITTEN_CLAIM_AGE = 60  # seconds; a claim still without its owner after this long is stale
_TEMP_CHARS = frozenset(string.ascii_lowercase + string.digits + "_")  # tempfile.mkstemp's name characters
_TEMP_RANDOM_LENGTH = 8


def claim_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.claim")


def output_problem(output: Path) -> str | None:
    """Why ``output`` cannot be written, found without creating anything; None when it looks writable."""
    if output.is_dir():
        return "is a folder; give an image file name"
    folder = output.parent
    while not folder.exists() and folder != folder.parent:  # the nearest folder that exists
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        return f"cannot create the output folder: {folder} is a file"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"output folder {folder} is not writable"
    return None


def check_free_space(output: Path, needed: int) -> None:
    """Raise :class:`OutputError` when the output's folder has less than ``needed`` bytes free."""
    try:
        free = shutil.disk_usage(output.parent).free
    except OSError:
        return
    if free < needed:
        raise OutputError(output.parent, f"only {free / 1e6:.1f} MB free on this disk, the output needs about "
                                         f"{needed / 1e6:.1f} MB")


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


def _is_stale(path: Path, owner: dict | None) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if age > CLAIM_MAX_AGE:
        return True
    if owner is None:
        return age > _UNWRITTEN_CLAIM_AGE
    pid = owner.get("pid")
    same_host = owner.get("host") == socket.gethostname()
    return same_host and isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid)


def try_claim(output: Path) -> Path | None:
    """Create ``output``'s claim file exclusively; None when another running process holds it.

    Creates the output folder. Raises :class:`OutputError` when the folder cannot be created or written.
    """
    folder = output.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(folder, f"cannot create output folder ({err.strerror or err})") from None
    path = claim_path(output)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _claim_owner(path)
            if not _is_stale(path, owner):
                return None
            if _claim_owner(path) == owner:  # still the stale one, not a claim made since
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            continue
        except OSError as err:
            raise OutputError(folder, f"cannot write in output folder ({err.strerror or err})") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}, f)
        return path
    return None


@contextlib.contextmanager
def claim(output: Path) -> Iterator[bool]:
    """Hold ``output``'s claim for the duration; yields False (and holds nothing) when another run has it."""
    path = try_claim(output)
    try:
        yield path is not None
    finally:
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()


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
