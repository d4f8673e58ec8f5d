"""Model names → local files: shipped weights, a path, or a Hugging Face Hub repository.

``--model`` accepts
- a shipped model name (``palette models`` lists them), or nothing for the default;
- a local ``.safetensors`` file;
- ``hf:USER/REPO[/FILE.safetensors][@REVISION]`` or plain ``USER/REPO[@REVISION]`` for the Hub
  (default file ``model.safetensors``). Downloads go to the Hugging Face cache; with
  ``HF_HUB_OFFLINE=1`` or no network, a file already in the cache is used and a missing one is an error.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "palette-multitask-small"
#: Each command's default where a specialist is shipped: the model measured best for that task
#: (docs/RESULTS.md); other tasks, and a missing specialist, fall back to DEFAULT_MODEL.
TASK_MODELS = {"restore": "palette-restore", "jpeg": "palette-restore"}
HUB_FILENAME = "model.safetensors"
_HUB_RE = re.compile(r"^(?:hf:)?(?P<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]+)(?P<file>/[^@]+)?(?:@(?P<rev>[\w.\-/]+))?$")


class ModelNotFoundError(ValueError):
    """A model that cannot be found or fetched; its message is one line."""


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    filename: str = HUB_FILENAME
    revision: str | None = None


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


def default_model(task: str | None = None) -> str:
    """The shipped model a command uses without ``--model``."""
    name = TASK_MODELS.get(task or "")
    return name if name and name in shipped_models() else DEFAULT_MODEL


def resolve_model(spec: str | None, task: str | None = None) -> tuple[Path, str]:
    """Return ``(local file, display id)`` for a ``--model`` value (none: ``task``'s default model)."""
    spec = spec or default_model(task)
    shipped = shipped_models()
    if spec in shipped:
        return shipped[spec], spec
    path = Path(spec).expanduser()
    if path.exists():
        return path, str(path)
    if spec.endswith((".safetensors", ".pth", ".pt", ".ckpt")) or spec.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"model file not found: {spec}")
    ref = parse_hub_ref(spec)
    if ref is None:
        names = ", ".join(shipped) or "none installed"
        raise ModelNotFoundError(f"unknown model {spec!r} (shipped models: {names}; or give a file or USER/REPO)")
    return download(ref), f"hf:{ref.repo_id}/{ref.filename}" + (f"@{ref.revision}" if ref.revision else "")


def download(ref: HubRef) -> Path:
    """Fetch one file from the Hub (or the local cache), translating every failure into one line."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors as hf_errors

    where = f"{ref.repo_id}/{ref.filename}" + (f"@{ref.revision}" if ref.revision else "")
    try:
        return Path(hf_hub_download(ref.repo_id, ref.filename, revision=ref.revision))
    except hf_errors.LocalEntryNotFoundError:
        raise ModelNotFoundError(
            f"{where}: not in the local Hugging Face cache and the Hub cannot be reached "
            "(offline mode or no network)") from None
    except hf_errors.RepositoryNotFoundError:
        raise ModelNotFoundError(f"{where}: no such Hugging Face repository (or it is private)") from None
    except hf_errors.RevisionNotFoundError:
        raise ModelNotFoundError(f"{where}: no such revision") from None
    except hf_errors.EntryNotFoundError:
        raise ModelNotFoundError(f"{where}: the repository has no file {ref.filename}") from None
    except (OSError, hf_errors.HfHubHTTPError) as e:
        raise ModelNotFoundError(f"{where}: download failed ({str(e).splitlines()[0]})") from None
