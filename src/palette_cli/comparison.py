"""Several methods on identical evaluation inputs (``palette eval --method``): one table, one grid.

A comparison run folder::

    RUN/references/NAME.png, inputs/NAME.png, masks/NAME.png   the inputs every method sees
    RUN/methods/LABEL/outputs/NAME_sK.png                       each method's outputs
    RUN/methods/LABEL/generation.json, metrics.json, metrics.md each method's own full report
    RUN/metrics.json, metrics.md                                the table: a row per method
    RUN/grid.png                                                rows photos; columns input, methods, original

Every method is a model of the registry (:mod:`palette_cli.models`): a neural model (``model``: a shipped
name, file or Hub repo, several allowed, each labelled by its name; none given: the task's default model,
labelled by that model's name) or a classical method of :mod:`palette_cli.baselines`, and every method takes
the same path (:func:`palette_cli.evaluate.evaluate`). Every method gets the same photos, masks, JPEG quality
and seed; models sample ``samples_per_image`` outputs per input, deterministic methods (the classical ones)
one. A single method alone writes the plain run folder of :func:`palette_cli.evaluate.evaluate` instead
(outputs in ``RUN/outputs``), unless ``RUN`` is a comparison folder already; :func:`read_run` reads both
layouts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from .baselines import BASELINES
from .defaults import EVAL_METHODS
from .evaluate import (GENERATION_JSON, INPUTS_DIR, METRICS_JSON, METRICS_MD, OUTPUTS_DIR, REFERENCES_DIR,
                       EvalTask, EvaluationError, Log, PathSpec, References, check_method, evaluate)

METHODS_DIR = "methods"
GRID_PNG = "grid.png"
GRID_MIN_CELL = 96  # px: small evaluation images are enlarged (nearest neighbour) to at least this
GRID_HEADER = 18


@dataclass(frozen=True)
class Method:
    """One row of a comparison: its label and the model that makes it (a name of the model registry)."""

    label: str
    model: str


def model_label(spec: str) -> str:
    """A short, folder-safe name for a model spec: a shipped name as it is, a file or repo by its stem."""
    name = Path(spec.split("@")[0]).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"


def plan_methods(kinds: Sequence[str], models: Sequence[str | None], task: str) -> list[Method]:
    """The rows for method names in order: ``model`` gives one row per model spec (none given: ``task``'s
    default model, by its name), a classical method's name its row; a model named twice counts once; labels
    are made unique with ``-2``, ``-3`` …"""
    from .hub import ModelNotFoundError, default_model

    specs: list[str] = []
    for kind in dict.fromkeys(kinds):
        if kind == "model":
            try:
                specs += [spec or default_model(task) for spec in list(models) or [None]]
            except ModelNotFoundError as e:
                raise EvaluationError(str(e)) from None
        elif kind in BASELINES:
            specs.append(kind)
        else:
            raise EvaluationError(f"unknown method {kind!r} (use one of: {', '.join(EVAL_METHODS)})")
    if not specs:
        raise EvaluationError("no method to evaluate")
    methods: list[Method] = []
    labels: set[str] = set()
    for spec in dict.fromkeys(specs):
        label = unique = model_label(spec)
        k = 2
        while unique in labels:
            unique, k = f"{label}-{k}", k + 1
        labels.add(unique)
        methods.append(Method(unique, spec))
    return methods


def is_comparison(methods: Sequence[Method], out_dir: PathSpec | None = None) -> bool:
    """Whether the rows need a comparison run folder: more than one method, or a folder that is one already
    (a method run into it is checked against its earlier run there, and the shared inputs stay)."""
    return len(methods) > 1 or (out_dir is not None and (Path(out_dir) / METHODS_DIR).is_dir())


def compare(methods: Sequence[Method], task: EvalTask, references: References, out_dir: PathSpec, *,
            n_images: int | None = None, samples_per_image: int = 1, size: int = 128, seed: int = 0,
            grid_photos: int = 8, overwrite: bool = False, force: bool = False, on_image: Any = None,
            log: Log | None = print, **options: Any) -> dict[str, Any]:
    """Evaluate every method on identical inputs into a comparison run folder (module docstring).

    ``options`` are the other keyword arguments of :func:`palette_cli.evaluate.evaluate` (scoring:
    ``feature_net``, ``standard``, ``labels``, ``device``, ``threads`` …; models: ``settings``,
    ``precision``, ``batch_size``, ``on_step``). Every method is checked to run the task before any runs
    (``force``: models on tasks they were not trained for). Returns the dictionary written to ``metrics.json``.
    """
    from .imageio import save_image_atomic, write_text_atomic

    say = log or (lambda _msg: None)
    for method in methods:
        check_method(method.model, task.name, force)
    run_dir = Path(out_dir)
    results: dict[str, dict[str, Any]] = {}
    names: list[str] = []
    for method in methods:
        say(f"method {method.label}")
        results[method.label] = evaluate(method.model, task, references, run_dir, n_images=n_images,
                                         samples_per_image=samples_per_image, size=size, seed=seed,
                                         overwrite=overwrite, force=force, on_image=on_image,
                                         method_dir=run_dir / METHODS_DIR / method.label, log=log, **options)
        names = names or list(results[method.label]["generation"]["images"]["names"])

    combined = _combine(methods, results, task, size, seed, samples_per_image)
    shown = names[:max(0, grid_photos)]
    if shown:
        save_image_atomic(comparison_grid(run_dir, [m.label for m in methods], shown), run_dir / GRID_PNG,
                          overwrite=True)
        combined["grid"] = GRID_PNG
    write_text_atomic(run_dir / METRICS_JSON, json.dumps(combined, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(run_dir / METRICS_MD, comparison_markdown(combined))
    return combined


def _combine(methods: Sequence[Method], results: dict[str, dict[str, Any]], task: EvalTask, size: int, seed: int,
             samples_per_image: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    comparable: dict[str, bool] = {}
    descriptions: dict[str, str] = {}
    notes: list[str] = []
    for method in methods:
        result = results[method.label]
        record = result["generation"]
        comparable.update(result["comparable_to_published"])
        descriptions.update(result["descriptions"])
        notes += [n for n in result["notes"] if n not in notes]
        rows[method.label] = {
            "model": record["settings"].get("model"), "description": record.get("description", ""),
            "metrics": result["metrics"], "std": result["std"],
            "samples_per_input": result["images"]["samples_per_input"],
            "seconds_per_image": record["timing_s"]["generation_per_image"],
            "report": f"{METHODS_DIR}/{method.label}/{METRICS_JSON}"}
    first = results[methods[0].label]
    return {"task": task.describe(), "methods": rows, "comparable_to_published": comparable,
            "descriptions": descriptions, "notes": notes,
            "images": {"inputs": first["images"]["inputs"], "size": size,
                       "names": list(first["generation"]["images"]["names"])},
            "settings": {"seed": seed, "samples_per_image": samples_per_image, "size": size}}


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"


def comparison_markdown(result: dict[str, Any]) -> str:
    """The comparison as one Markdown table, a row per method; metrics not comparable to published
    numbers are marked with *."""
    rows = result["methods"]
    columns = list(dict.fromkeys(name for row in rows.values() for name in row["metrics"]
                                 if not name.endswith("_references")))
    task = ", ".join(f"{k} {v}" for k, v in result["task"].items() if k != "task")
    head = [f"`{c}`" + ("" if result["comparable_to_published"].get(c, True) else "*") for c in columns]
    lines = [f"# Side by side: {result['task']['task']}" + (f" ({task})" if task else ""), "",
             f"{result['images']['inputs']} inputs at {result['images']['size']} px, seed {result['settings']['seed']}; "
             "every method was given the same inputs (`inputs/`, `masks/`). Quality metrics score the first "
             "sample of each input against its original.", "",
             "| method | what it is | " + " | ".join(head) + " | s/image |",
             "|---|---|" + "---:|" * (len(columns) + 1)]
    for label, row in rows.items():
        values = [_fmt(row["metrics"].get(c)) for c in columns]
        lines.append(f"| {label} | {row['description']} | " + " | ".join(values)
                     + f" | {_fmt(row['seconds_per_image'])} |")
    lines += ["", "Higher is better for PSNR, SSIM, MS-SSIM, IS and CA; lower for FID, KID and PD. "
              "Metrics marked * use EfficientNet-Lite0 features and are not comparable to published numbers. "
              f"Each method's full report: `{METHODS_DIR}/LABEL/{METRICS_MD}`."]
    if result["notes"]:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in result["notes"]]
    if result.get("grid"):
        lines += ["", f"![rows: photos; columns: input, each method, original]({result['grid']})"]
    return "\n".join(lines) + "\n"


def comparison_grid(run_dir: Path, labels: Sequence[str], names: Sequence[str]) -> Image.Image:
    """Rows: the photos ``names``; columns: the input, the first sample of each method, the original."""
    columns = [("input", run_dir / INPUTS_DIR)] + [(label, run_dir / METHODS_DIR / label / OUTPUTS_DIR)
                                                   for label in labels] + [("original", run_dir / REFERENCES_DIR)]
    first = Image.open(run_dir / REFERENCES_DIR / f"{names[0]}.png")
    cell = first.width * max(1, -(-GRID_MIN_CELL // first.width))
    height = round(cell * first.height / first.width)
    grid = Image.new("RGB", (cell * len(columns), GRID_HEADER + height * len(names)), "white")
    draw = ImageDraw.Draw(grid)
    for c, (label, folder) in enumerate(columns):
        text = label
        while len(text) > 1 and draw.textlength(text) > cell - 6:
            text = text[:-1]
        draw.text((c * cell + 3, 3), text, fill="black")
        for r, name in enumerate(names):
            file = folder / (f"{name}.png" if folder.name != OUTPUTS_DIR else f"{name}_s0.png")
            image = Image.open(file).convert("RGB").resize((cell, height), Image.Resampling.NEAREST)
            grid.paste(image, (c * cell, GRID_HEADER + r * height))
    return grid


# --------------------------------------------------------------------------- reading run folders


@dataclass
class MethodRun:
    """One method's outputs in a run folder (either layout), for the study page."""

    run_dir: Path
    label: str
    task: dict[str, Any]
    outputs: Path
    names: list[str]

    def reference(self, name: str) -> Path:
        return self.run_dir / REFERENCES_DIR / f"{name}.png"

    def output(self, name: str) -> Path:
        return self.outputs / f"{name}_s0.png"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EvaluationError(f"{path}: unreadable ({e})") from None
    if not isinstance(data, dict):
        raise EvaluationError(f"{path}: not a JSON object")
    return data


def _method_run(run_dir: Path, label: str, own: Path) -> MethodRun:
    record = _read_json(own / GENERATION_JSON)
    try:
        settings, names = record["settings"], list(record["images"]["names"])
        task = {k: settings[k] for k in ("task", "mask_mode", "direction", "jpeg_quality") if k in settings}
    except (KeyError, TypeError):
        raise EvaluationError(f"{own / GENERATION_JSON}: not written by palette eval (or unfinished)") from None
    return MethodRun(run_dir, label, task, own / OUTPUTS_DIR, names)


def is_run_folder(folder: Path) -> bool:
    return (folder / REFERENCES_DIR).is_dir() and ((folder / GENERATION_JSON).is_file()
                                                    or (folder / METHODS_DIR).is_dir())


def read_run(run_dir: PathSpec) -> list[MethodRun]:
    """The methods of a run folder written by ``palette eval``: a comparison's rows (in table order), or
    the single model of a plain run folder (labelled by its model's name)."""
    run_dir = Path(run_dir)
    if (run_dir / METHODS_DIR).is_dir():
        table = _read_json(run_dir / METRICS_JSON) if (run_dir / METRICS_JSON).is_file() else {}
        labels = list(table.get("methods") or sorted(p.name for p in (run_dir / METHODS_DIR).iterdir() if p.is_dir()))
        return [_method_run(run_dir, label, run_dir / METHODS_DIR / label) for label in labels]
    if (run_dir / GENERATION_JSON).is_file():
        settings = _read_json(run_dir / GENERATION_JSON).get("settings") or {}
        return [_method_run(run_dir, model_label(str(settings.get("model") or "model")), run_dir)]
    raise EvaluationError(f"{run_dir}: not a run folder of palette eval (no generation.json or methods/)")
