"""The paper's human two-alternative forced-choice study ("fool rate") as a static page, and its scoring.

``make_study`` turns run folders of ``palette eval`` into a folder holding one HTML file and its images:
each trial shows an original photo and a method's output side by side for a set time and asks which one
is from a camera. The page needs no server and loads nothing from elsewhere (it works from ``file://``).
Per participant it draws the trial order and the sides from a seed (``?seed=N`` in the address, else
derived from the participant's name, else random), keeps the answers in the browser's local storage
(a reload resumes), offers them as a JSON file and shows the participant's fool rate at the end.

``score_answers`` merges such files: the fool rate per task and method — the fraction of answers that
took the generated image for the camera's — with a 95% Wilson score interval over the pooled answers.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .comparison import MethodRun, is_run_folder, read_run
from .evaluate import EvaluationError, PathSpec

STUDY_FORMAT, ANSWERS_FORMAT, VERSION = "palette-study", "palette-study-answers", 1
PAGE, MANIFEST, IMAGES_DIR = "index.html", "study.json", "images"
SIDES = ("left", "right")
Z95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


class StudyError(ValueError):
    """A study that cannot be made or answers that cannot be scored; the message is one line."""


@dataclass(frozen=True)
class Trial:
    """One pair: the original photo and one method's output for it (image paths relative to the page)."""

    id: str
    task: str
    method: str
    photo: str
    original: str
    generated: str


def task_label(task: dict[str, Any]) -> str:
    """``colorize``, ``inpaint free_form_20_30``, ``uncrop right``, ``jpeg q10``."""
    name = str(task.get("task", "?"))
    if name == "jpeg" and "jpeg_quality" in task:
        return f"jpeg q{task['jpeg_quality']}"
    setting = task.get("mask_mode") or task.get("direction")
    return f"{name} {setting}" if setting else name


def collect_runs(eval_dirs: Sequence[PathSpec]) -> list[MethodRun]:
    """The methods of the run folders given, or of the run folders directly inside the folders given."""
    runs: list[MethodRun] = []
    for spec in eval_dirs:
        folder = Path(spec)
        if not folder.is_dir():
            raise StudyError(f"{folder}: no such folder")
        folders = [folder] if is_run_folder(folder) else sorted(p for p in folder.iterdir() if is_run_folder(p))
        if not folders:
            raise StudyError(f"{folder}: neither a run folder of palette eval nor a folder of them")
        try:
            runs += [m for f in folders for m in read_run(f)]
        except EvaluationError as e:
            raise StudyError(str(e)) from None
    return runs


def _copy_image(source: Path, out: Path, copied: dict[Path, str]) -> str:
    """Copy an image under a name made from its content (which says nothing about what it is)."""
    from .imageio import write_bytes_atomic

    if source not in copied:
        try:
            data = source.read_bytes()
        except OSError as e:
            raise StudyError(f"{source}: cannot read ({e.strerror or e})") from None
        name = f"{IMAGES_DIR}/{hashlib.sha256(data).hexdigest()[:20]}{source.suffix.lower()}"
        if not (out / name).is_file():
            write_bytes_atomic(out / name, data)
        copied[source] = name
    return copied[source]


def study_page(manifest: dict[str, Any]) -> str:
    """The HTML page with the study embedded (``<`` escaped so the data cannot end its script element)."""
    template = resources.files("palette_cli").joinpath("study_page.html").read_text(encoding="utf-8")
    data = json.dumps(manifest, ensure_ascii=False).replace("<", "\\u003c")
    title = manifest["title"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return template.replace("__TITLE__", title).replace("__STUDY__", data)


def make_study(eval_dirs: Sequence[PathSpec], out: PathSpec, *, seconds: float = 3.0,
               methods: Sequence[str] | None = None, photos: int | None = None,
               title: str = "Which photo is from a camera?", overwrite: bool = False) -> dict[str, Any]:
    """Write the study page for the run folders ``eval_dirs`` into ``out``; return its manifest.

    A trial per (run, method, photo): ``methods`` keeps only those method labels, ``photos`` only the first
    photos of each run. ``out`` must be new or empty unless ``overwrite``.
    """
    from .imageio import write_text_atomic

    if not 0.05 <= seconds <= 600:
        raise StudyError(f"the display time must be between 0.05 and 600 seconds, got {seconds}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StudyError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise StudyError(f"{out}: not empty (pass --overwrite to write the study there anyway)")
    runs = collect_runs(eval_dirs)
    if methods:
        unknown = sorted(set(methods) - {r.label for r in runs})
        if unknown:
            raise StudyError(f"no method {', '.join(unknown)} in the run folders (they hold: "
                             f"{', '.join(dict.fromkeys(r.label for r in runs))})")
        runs = [r for r in runs if r.label in methods]
    pairs = [(run, name) for run in runs for name in run.names[:photos]]
    for run, name in pairs:
        for path in (run.reference(name), run.output(name)):
            if not path.is_file():
                raise StudyError(f"{path}: missing (an unfinished evaluation run?)")
    if not pairs:
        raise StudyError("no trials: the run folders hold no outputs")
    if (out / MANIFEST).is_file():
        remove_study(out)  # no images of the previous study left behind
    copied: dict[Path, str] = {}
    trials = [Trial(f"t{k + 1:04d}", task_label(run.task), run.label, name,
                    _copy_image(run.reference(name), out, copied), _copy_image(run.output(name), out, copied))
              for k, (run, name) in enumerate(pairs)]
    body = {"title": title, "display_seconds": seconds, "trials": [asdict(t) for t in trials]}
    study_id = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    manifest = {"format": STUDY_FORMAT, "version": VERSION, "study_id": study_id, **body}
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / PAGE, study_page(manifest))
    return manifest


# --------------------------------------------------------------------------- scoring


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


_ANSWER_FIELDS = {"trial": str, "task": str, "method": str, "photo": str, "generated_side": str, "choice": str,
                  "fooled": bool}


def _check_answer(k: int, answer: Any) -> str | None:
    if not isinstance(answer, dict):
        return f"answer {k} is not an object"
    for key, kind in _ANSWER_FIELDS.items():
        if not isinstance(answer.get(key), kind):
            return f"answer {k} lacks {key!r}" if key not in answer else f"answer {k}: {key!r} is not a {kind.__name__}"
    for key in ("generated_side", "choice"):
        if answer[key] not in SIDES:
            return f"answer {k}: {key} is {answer[key]!r}, not left or right"
    if answer["fooled"] != (answer["choice"] == answer["generated_side"]):
        return f"answer {k}: 'fooled' contradicts the choice and the generated side"
    return None


def read_answers(path: PathSpec) -> dict[str, Any]:
    """One participant's answers file, checked in itself; :class:`StudyError` (one line) when malformed."""
    from .imageio import check_regular_file

    path = Path(path)
    check_regular_file(path, StudyError, "answers file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise StudyError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    except ValueError as e:
        raise StudyError(f"{path}: not JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != ANSWERS_FORMAT:
        raise StudyError(f"{path}: not an answers file of a palette study")
    if data.get("version") != VERSION:
        raise StudyError(f"{path}: answers format version {data.get('version')!r}, this version reads {VERSION}")
    for key, kind in (("study_id", str), ("participant", str), ("seed", int), ("answers", list)):
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise StudyError(f"{path}: {key!r} missing or not a {kind.__name__}")
    if not data["answers"]:
        raise StudyError(f"{path}: no answers")
    seen: set[str] = set()
    for k, answer in enumerate(data["answers"]):
        problem = _check_answer(k, answer)
        if problem is None and answer["trial"] in seen:
            problem = f"trial {answer['trial']} answered twice"
        if problem:
            raise StudyError(f"{path}: {problem}")
        seen.add(answer["trial"])
    return data


def _check_against(path: Path, data: dict[str, Any], study_id: str, trials: dict[str, tuple[str, str, str]]) -> None:
    if data["study_id"] != study_id:
        raise StudyError(f"{path}: answers to another study ({data['study_id']}, expected {study_id})")
    for answer in data["answers"]:
        key = (answer["task"], answer["method"], answer["photo"])
        known = trials.setdefault(answer["trial"], key)
        if known != key:
            raise StudyError(f"{path}: trial {answer['trial']} is {'/'.join(key)} here but {'/'.join(known)} "
                             "in the study")


def load_manifest(study: PathSpec) -> dict[str, Any]:
    """The manifest (``study.json``) of a study folder made by :func:`make_study`."""
    from .imageio import check_regular_file

    path = Path(study)
    path = path / MANIFEST if path.is_dir() else path
    check_regular_file(path, StudyError, "study manifest")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != STUDY_FORMAT:
            raise ValueError("not a study manifest")
        manifest["trials"] = list(manifest["trials"])
        return manifest
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as e:
        raise StudyError(f"{path}: not a study made by palette study make ({e})") from None


def score_answers(paths: Sequence[PathSpec], *, study: PathSpec | None = None) -> tuple[dict[str, Any], list[str]]:
    """Merge answers files into fool rates per task and method. Returns (result, refused): files that are
    malformed, answer another study (the manifest's, else the one most files answer) or repeat another
    file's participant and seed are refused, each with a one-line reason, and left out."""
    refused: list[str] = []
    loaded: list[tuple[Path, dict[str, Any]]] = []
    for spec in paths:
        try:
            loaded.append((Path(spec), read_answers(spec)))
        except StudyError as e:
            refused.append(str(e))
    trials: dict[str, tuple[str, str, str]] = {}
    if study is not None:
        manifest = load_manifest(study)
        study_id = manifest["study_id"]
        trials = {t["id"]: (t["task"], t["method"], t["photo"]) for t in manifest["trials"]}
        closed = True
    else:
        ids = Counter(data["study_id"] for _, data in loaded)
        study_id = ids.most_common(1)[0][0] if ids else ""
        closed = False
    kept: list[tuple[Path, dict[str, Any]]] = []
    who: dict[tuple[str, int], Path] = {}
    for path, data in loaded:
        try:
            if closed and (unknown := [a["trial"] for a in data["answers"] if a["trial"] not in trials]):
                raise StudyError(f"{path}: trial {unknown[0]} is not in the study")
            _check_against(path, data, study_id, trials)
            participant = (data["participant"], data["seed"])
            if participant in who:
                raise StudyError(f"{path}: the same participant and seed as {who[participant]} (a second copy?)")
        except StudyError as e:
            refused.append(str(e))
            continue
        who[participant] = path
        kept.append((path, data))

    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for path, data in kept:
        for answer in data["answers"]:
            group = groups.setdefault((answer["task"], answer["method"]), {"answers": 0, "fooled": 0,
                                                                          "participants": set()})
            group["answers"] += 1
            group["fooled"] += answer["fooled"]
            group["participants"].add(str(path))
    rates = []
    for (task, method), group in sorted(groups.items()):
        low, high = wilson_interval(group["fooled"], group["answers"])
        rates.append({"task": task, "method": method, "participants": len(group["participants"]),
                      "answers": group["answers"], "fooled": group["fooled"],
                      "fool_rate": group["fooled"] / group["answers"], "ci95": [low, high]})
    result = {"study_id": study_id, "files": [str(p) for p, _ in kept],
              "participants": [{"file": str(p), "participant": d["participant"], "seed": d["seed"],
                                "answers": len(d["answers"]), "trials_total": d.get("trials_total")}
                               for p, d in kept],
              "rates": rates,
              "interval": "95% Wilson score interval over the pooled answers of all participants",
              "refused": refused}
    return result, refused


def rates_markdown(result: dict[str, Any]) -> str:
    """The fool rates as a Markdown table."""
    lines = ["| task | method | participants | answers | fooled | fool rate | 95% CI |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in result["rates"]:
        low, high = r["ci95"]
        lines.append(f"| {r['task']} | {r['method']} | {r['participants']} | {r['answers']} | {r['fooled']} | "
                     f"{100 * r['fool_rate']:.1f}% | {100 * low:.1f}–{100 * high:.1f}% |")
    return "\n".join(lines) + "\n"


def remove_study(out: PathSpec) -> None:
    """Delete a study folder made by :func:`make_study` (its page, manifest and images only)."""
    out = Path(out)
    for name in (PAGE, MANIFEST):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / IMAGES_DIR, ignore_errors=True)
