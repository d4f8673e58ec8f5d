"""Model names → local files: shipped weights, a path, or a Hugging Face Hub repository; each task's
default model; and whether a model may run a task.

``--model`` accepts
- a shipped model name (``palette models`` lists them), or nothing for the task's default (:data:`TASK_MODELS`);
- a local ``.safetensors`` file;
- ``hf:USER/REPO[/FILE.safetensors][@REVISION]`` or plain ``USER/REPO[@REVISION]`` for the Hub
  (default file ``model.safetensors``). Downloads go to the Hugging Face cache; with
  ``HF_HUB_OFFLINE=1`` or no network, a file already in the cache is used and a missing one is an error.
  Whether the Hub can be reached is probed first (a few seconds at most), so a machine without network
  does not wait through the Hub client's retries.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .defaults import COMMAND_TASKS, TASK_CATALOG

#: Each task's default models, from the task catalogue (``defaults.TASK_CATALOG``): what every command,
#: ``palette eval``, ``palette study``, ``palette models`` and the library take without ``--model``. First the
#: shipped specialist measured best for the task (docs/RESULTS.md), then the multi-task model, used where the
#: specialist is not installed.
TASK_MODELS: dict[str, tuple[str, ...]] = {entry.name: entry.models for entry in TASK_CATALOG}
HUB_FILENAME = "model.safetensors"
PROBE_TIMEOUT = 3.0  # seconds to wait for the Hub (or the proxy) to accept a connection
_HUB_RE = re.compile(r"^(?:hf:)?(?P<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]+)(?P<file>/[^@]+)?(?:@(?P<rev>[\w.\-/]+))?$")


class ModelNotFoundError(ValueError):
    """A model that cannot be found or fetched; its message is one line."""


class ModelTaskError(ValueError):
    """A model asked for a task it was not trained for, or cannot run at all; its message is one line."""


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    filename: str = HUB_FILENAME
    revision: str | None = None

    def display(self) -> str:
        """The reference as ``hf:USER/REPO/FILE[@REV]``: the model id outputs record."""
        return f"hf:{self.repo_id}/{self.filename}" + (f"@{self.revision}" if self.revision else "")


MAX_HUB_NAME = 96  # characters of a Hugging Face user or repository name


def hub_ref_valid(ref: HubRef) -> bool:
    """Whether the Hub could hold ``ref``: user and repository names of at most 96 characters, no '..' or
    '--' in them (the Hub's own rules), and a file name a file system can hold."""
    from .imageio import name_problem

    parts = ref.repo_id.split("/")
    return (all(0 < len(p) <= MAX_HUB_NAME and ".." not in p and "--" not in p for p in parts)
            and not name_problem(ref.filename))


def weights_dirs() -> list[Path]:
    """Where shipped weights are looked for, in order."""
    dirs = []
    if os.environ.get("PALETTE_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["PALETTE_WEIGHTS_DIR"]))
    dirs.append(Path(__file__).resolve().parents[2] / "weights")  # a source checkout / editable install
    dirs.append(Path(sys.prefix) / "share" / "palette-cli" / "weights")  # a regular install
    return dirs


def shipped_models() -> dict[str, Path]:
    """Shipped model names → files (first directory wins)."""
    found: dict[str, Path] = {}
    for d in weights_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.safetensors")):
                found.setdefault(f.stem, f)
    return found


def parse_hub_ref(spec: str) -> HubRef | None:
    """``hf:user/repo/file.safetensors@rev`` or ``user/repo@rev`` → HubRef; anything else → None."""
    m = _HUB_RE.match(spec)
    if not m:
        return None
    filename = (m.group("file") or "/" + HUB_FILENAME)[1:]
    return HubRef(m.group("repo"), filename, m.group("rev"))


def task_of(name: str) -> str:
    """The task a command runs (``restore`` → ``jpeg``, ``panorama`` → ``uncrop``); a task name as it is."""
    return COMMAND_TASKS.get(name, name)


def default_model(task: str, shipped: dict[str, Path] | None = None) -> str:
    """The model a task (or command) uses without ``--model``: the first of :data:`TASK_MODELS` that is
    installed (``shipped``: :func:`shipped_models`, if known), else the first."""
    candidates = TASK_MODELS.get(task_of(task))
    if candidates is None:
        raise ModelNotFoundError(f"no default model for {task!r} (tasks: {', '.join(TASK_MODELS)})")
    shipped = shipped_models() if shipped is None else shipped
    return next((name for name in candidates if name in shipped), candidates[0])


def resolve_model(spec: str | None, task: str | None = None) -> tuple[Path, str]:
    """Return ``(local file, display id)`` for a ``--model`` value (none: ``task``'s default model)."""
    from .imageio import ImageInputError, path_kind, short_name

    shipped = shipped_models()
    if not spec:
        if task is None:
            raise ModelNotFoundError("no model given: name one, or the task whose default model to use "
                                     f"({', '.join(TASK_MODELS)})")
        spec = default_model(task, shipped)
    if spec in shipped:
        return shipped[spec], spec
    path = Path(spec).expanduser()
    try:
        kind = path_kind(path)
    except ImageInputError as e:  # a name too long for a file (maybe a Hub name), a folder it may not look into
        if "too long" not in e.problem:
            raise ModelNotFoundError(f"{short_name(spec)}: {e.problem}") from None
        kind = "missing"
    if kind == "file":
        return path, str(path)
    if kind not in ("missing", "folder"):
        raise ModelNotFoundError(f"{short_name(spec)}: is {kind}, not a model file")
    if kind == "folder" or spec.endswith((".safetensors", ".pth", ".pt", ".ckpt")) or spec.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"model file not found: {short_name(spec)}"
                                 + (" (it is a folder)" if kind == "folder" else ""))
    ref = parse_hub_ref(spec)
    if ref is None or not hub_ref_valid(ref):
        names = ", ".join(shipped) or "none installed"
        raise ModelNotFoundError(f"unknown model {short_name(spec)!r} (shipped models: {names}; or give a file or "
                                 "USER/REPO)")
    return download(ref), ref.display()


def task_refusal(model: str, task: str, trained: Sequence[str], runs: Sequence[str] | None,
                 force: bool = False) -> str | None:
    """Why ``model`` may not run ``task`` (a command or task name) in one line, or None when it may.

    ``trained``: the tasks the model was trained for (empty: not recorded, so any); ``runs``: the tasks it
    can run at all (None: any image-to-image task). ``force`` allows an untrained task it can run, whose
    output is well defined; never one it cannot run.
    """
    name = task_of(task)
    what = task if task == name else f"{task} ({name})"
    default = default_model(name)
    hint = f"; {task}'s default model is {default}" if default != model else ""
    if runs is not None and name not in runs:
        return f"model {model} cannot run {what}: it does {', '.join(runs)} only{hint}"
    if trained and name not in trained and not force:
        return (f"model {model} was not trained for {what}: it does {', '.join(trained)}{hint}; "
                "add --force to run it anyway")
    return None


def hub_reachable(endpoint: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to the Hub endpoint (or the proxy that serves it) opens within ``timeout``
    seconds, name lookup included."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    url = urlsplit(endpoint)
    if not url.hostname:
        return False
    proxy = getproxies().get(url.scheme) if not proxy_bypass(url.hostname) else None
    target = urlsplit(proxy if "://" in (proxy or "") else f"http://{proxy}") if proxy else url
    port = target.port or (443 if target.scheme == "https" else 80)
    result: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((target.hostname, port), timeout=timeout):
                result.append(True)
        except (OSError, ValueError):
            result.append(False)

    probe = threading.Thread(target=connect, daemon=True)  # a stuck name lookup must not hold us up
    probe.start()
    probe.join(timeout)
    return bool(result and result[0])


def download(ref: HubRef) -> Path:
    """Fetch one file from the Hub (or the local cache), translating every failure into one line."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub import errors as hf_errors

    where = f"{ref.repo_id}/{ref.filename}" + (f"@{ref.revision}" if ref.revision else "")
    offline_mode = bool(constants.HF_HUB_OFFLINE)
    cache_only = offline_mode or not hub_reachable(constants.ENDPOINT)
    try:
        return Path(hf_hub_download(ref.repo_id, ref.filename, revision=ref.revision, local_files_only=cache_only))
    except hf_errors.LocalEntryNotFoundError:
        why = ("HF_HUB_OFFLINE=1 keeps the Hub from being asked (offline mode)" if offline_mode else
               f"the Hub ({constants.ENDPOINT}) cannot be reached (offline?); download it once while online, "
               "or set HF_HUB_OFFLINE=1 to use only the local cache without probing the network")
        raise ModelNotFoundError(f"{where}: not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) "
                                 f"and {why}") from None
    except hf_errors.RepositoryNotFoundError:
        raise ModelNotFoundError(f"{where}: no such Hugging Face repository (or it is private)") from None
    except hf_errors.RevisionNotFoundError:
        raise ModelNotFoundError(f"{where}: no such revision") from None
    except hf_errors.EntryNotFoundError:
        raise ModelNotFoundError(f"{where}: the repository has no file {ref.filename}") from None
    except (OSError, hf_errors.HfHubHTTPError) as e:
        raise ModelNotFoundError(f"{where}: download failed ({str(e).splitlines()[0]})") from None
