"""Generating a run folder (``palette eval``): the paper's evaluation inputs, the model's outputs, and
:func:`evaluate`, which generates and then scores them (:mod:`.scoring`).

A run folder holds ``references/NAME.png`` (the ground truth at the evaluation size), ``inputs/NAME.png``
(what the model is given: gray, noise in the hole, JPEG-decoded …), ``masks/NAME.png`` for inpainting and
uncropping (white = generated), ``outputs/NAME_sK.png``, ``generation.json`` and the scores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..defaults import EVAL_MASK_MODES as _EVAL_MASK_MODES
from ..defaults import TASK_NAMES
from ..imageio import load_image, pil_to_tensor, write_text_atomic
from .pairs import EvaluationError, PathSpec, References, reference_specs
from .scoring import METRICS_JSON, METRICS_MD, Log, StandardWeights, metrics_markdown, score_outputs

EVAL_TASKS = TASK_NAMES
EVAL_MASK_MODES = _EVAL_MASK_MODES
REFERENCES_DIR, INPUTS_DIR, MASKS_DIR, OUTPUTS_DIR = "references", "inputs", "masks", "outputs"
GENERATION_JSON = "generation.json"
# Settings that may change between runs into one folder without invalidating its outputs (the model
# is identified by its hash, not by how it was named).
_RESUMABLE = ("n_images", "batch_size", "device", "threads", "model")

StepProgress = Callable[[int, int], None]
ImageProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class EvalTask:
    """A task and the paper's evaluation setting of it: mask mode, JPEG quality or uncrop direction."""

    name: str
    mask_mode: str = "free_form_20_30"
    jpeg_quality: int = 10
    direction: str = "right"

    def __post_init__(self) -> None:
        from ..tasks.masks import UNCROP_DIRECTIONS

        if self.name not in EVAL_TASKS:
            raise EvaluationError(f"unknown task {self.name!r} (use one of: {', '.join(EVAL_TASKS)})")
        if self.mask_mode not in EVAL_MASK_MODES:
            raise EvaluationError(f"unknown mask mode {self.mask_mode!r} (use one of: {', '.join(EVAL_MASK_MODES)})")
        if not 1 <= self.jpeg_quality <= 100:
            raise EvaluationError(f"JPEG quality must be in 1..100, got {self.jpeg_quality}")
        if self.direction not in UNCROP_DIRECTIONS:
            raise EvaluationError(f"unknown uncrop direction {self.direction!r} "
                                  f"(use one of: {', '.join(UNCROP_DIRECTIONS)})")

    def describe(self) -> dict[str, Any]:
        """The task with only the setting that applies to it."""
        extra = {"inpaint": {"mask_mode": self.mask_mode}, "uncrop": {"direction": self.direction},
                 "jpeg": {"jpeg_quality": self.jpeg_quality}}.get(self.name, {})
        return {"task": self.name, **extra}


@dataclass
class EvalInput:
    """One evaluation example: the ground truth, the degraded input and (inpaint/uncrop) the mask."""

    name: str
    source: Path
    reference: Image.Image
    input: Image.Image
    mask: Tensor | None = None  # (1, H, W), 1 = generated


def select_references(references: References, n_images: int | None = None) -> list[Path]:
    """The first ``n_images`` photos of folders (sorted), images or list files, in the order given."""
    from ..data import list_images

    try:
        paths = [p for spec in reference_specs(references) for p in list_images(spec)]
    except (OSError, UnicodeDecodeError) as e:
        raise EvaluationError(f"cannot read the references: {e}") from None
    if not paths:
        raise EvaluationError(f"no reference photos in {', '.join(reference_specs(references))}")
    if n_images is not None:
        if n_images < 1:
            raise EvaluationError(f"the number of images must be at least 1, got {n_images}")
        paths = paths[:n_images]
    return paths


def eval_names(paths: Sequence[Path]) -> list[str]:
    """A unique file stem per photo: its own, or ``STEM-INDEX`` where two photos share one."""
    names, seen = [], set()
    for i, path in enumerate(paths):
        name = path.stem if path.stem not in seen else f"{path.stem}-{i}"
        seen.add(name)
        names.append(name)
    return names


def degrade(reference: Image.Image, task: EvalTask, generator: torch.Generator) -> tuple[Image.Image, Tensor | None]:
    """The paper's evaluation input for a ground-truth square: (input image, mask or None), as the task's
    module defines it (``evaluation_input``)."""
    from ..imageio import tensor_to_pil
    from ..tasks import TASKS

    setting = {k: v for k, v in task.describe().items() if k != "task"}
    degraded, mask = TASKS[task.name].evaluation_input(pil_to_tensor(reference), generator, **setting)
    image = tensor_to_pil(degraded)
    info = getattr(TASKS[task.name], "evaluation_info", None)  # e.g. a JPEG file's quantization tables
    if info is not None:
        image.info.update(info(**setting))
    return image, mask


def make_eval_input(source: Path, name: str, task: EvalTask, size: int, seed: int, index: int) -> EvalInput:
    """The evaluation example of photo ``index``: largest centre square resized to ``size``, degraded with a
    generator seeded from (seed, index) only: evaluating more or fewer photos leaves it unchanged."""
    from ..data import center_crop, item_seed
    from ..imageio import ImageInputError

    try:
        reference = center_crop(load_image(source), size)
    except ImageInputError as e:
        raise EvaluationError(str(e)) from None
    generator = torch.Generator().manual_seed(item_seed(seed, index, 0))
    degraded, mask = degrade(reference, task, generator)
    return EvalInput(name, source, reference, degraded, mask)


def _mask_image(mask: Tensor) -> Image.Image:
    return Image.fromarray((mask[0].numpy() > 0).astype(np.uint8) * 255, mode="L")


def make_run_folders(run_dir: Path, task: EvalTask) -> None:
    """``references/``, ``inputs/`` and (inpaint, uncrop) ``masks/`` of a run folder."""
    for sub in (REFERENCES_DIR, INPUTS_DIR) + ((MASKS_DIR,) if task.name in ("inpaint", "uncrop") else ()):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)


def save_eval_input(run_dir: Path, example: EvalInput) -> None:
    """Write an example's reference, input and mask as ``references/NAME.png`` … of a run folder."""
    from ..imageio import save_image_atomic

    for folder, image in ((REFERENCES_DIR, example.reference), (INPUTS_DIR, example.input)):
        save_image_atomic(image, run_dir / folder / f"{example.name}.png", overwrite=True)
    if example.mask is not None:
        save_image_atomic(_mask_image(example.mask), run_dir / MASKS_DIR / f"{example.name}.png", overwrite=True)


class _Threads:
    """CPU threads while working: a fixed count, or (None) the training loop's governor, which drops to
    fewer threads while other processes keep cores busy. Restores the previous count on exit."""

    def __init__(self, threads: int | None, device: torch.device | str):
        from ..scale.threads import ThreadGovernor

        self.before = torch.get_num_threads()
        self.active = torch.device(device).type == "cpu"
        self.governor = ThreadGovernor(self.before) if threads is None and self.active else None
        self.threads = threads

    def __enter__(self) -> "_Threads":
        if self.threads is not None and self.active:
            torch.set_num_threads(max(1, self.threads))
        self.tick()
        return self

    def tick(self) -> None:
        """Re-decide the thread count (call before each piece of work)."""
        if self.governor is not None:
            n = self.governor()
            if n != torch.get_num_threads():
                torch.set_num_threads(n)

    def __exit__(self, *exc: object) -> None:
        if self.active:
            torch.set_num_threads(self.before)


def load_method(model: Any, task: str, size: int, *, device: str = "auto", precision: str = "auto",
                batch_size: int = 4, force: bool = False) -> Any:
    """The model that makes an evaluation's outputs: ``model`` is a name of the model registry — a neural model
    (shipped name, file, Hub repo; None: the task's default) or a classical method — or a model object already
    loaded (a :class:`~palette_cli.pipeline.Pipeline` working at ``size``). A refusal is one line
    (:class:`EvaluationError`)."""
    from ..models import open_model

    if model is not None and not isinstance(model, (str, Path)):
        if getattr(model, "resolution", size) != size:
            raise EvaluationError(f"the pipeline works at {model.resolution} px but the evaluation size is {size}")
        return model
    try:
        return open_model(None if model is None else str(model), task, force=force, device=device,
                          precision=precision, resolution=size, batch_size=batch_size)
    except ValueError as e:  # unknown or unreadable models, refused tasks, missing OpenCV: all one line
        raise EvaluationError(str(e)) from None


def check_method(model: str | None, task: str, force: bool = False) -> None:
    """Refuse now, as a one-line :class:`EvaluationError`, a model that may not run ``task`` (reads no more
    than a model file's header), so that a comparison fails before any method has written a file."""
    from ..models import check_model

    try:
        check_model(model, task, force=force)
    except ValueError as e:
        raise EvaluationError(str(e)) from None


def check_previous(run_dir: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Refuse to mix outputs of other settings into a run folder (unless ``overwrite``)."""
    path = run_dir / GENERATION_JSON
    if overwrite or not path.is_file():
        return
    try:
        before = json.loads(path.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    changed = sorted(k for k in set(before) | set(settings)
                     if k not in _RESUMABLE and before.get(k) != settings.get(k))
    if changed:
        raise EvaluationError(f"{run_dir} holds outputs made with other settings ({', '.join(changed)} differ); "
                              "use another output folder or overwrite them")


def generate_outputs(model: Any, task: str | EvalTask, references: References, out_dir: PathSpec, *,
                     n_images: int | None = None, samples_per_image: int = 1, size: int = 128,
                     mask_mode: str = "free_form_20_30", jpeg_quality: int = 10, direction: str = "right",
                     settings: Any = None, seed: int = 0, device: str = "auto", precision: str = "auto",
                     batch_size: int = 4, threads: int | None = None, overwrite: bool = False,
                     on_step: StepProgress | None = None, on_image: ImageProgress | None = None,
                     method_dir: PathSpec | None = None, force: bool = False,
                     log: Log | None = print) -> dict[str, Any]:
    """Build the paper's evaluation inputs, run the model on them and write every file of a run folder.

    ``model``: a name of the model registry (a neural model: shipped name, file, Hub repo, None for the
    task's default; or a classical method) or a loaded model (:func:`load_method`); ``force`` runs a model on
    a task it was not trained for. A deterministic model (a classical method) makes one sample per input.
    Inputs depend on (seed, photo index) only; sample ``k`` of photo ``i`` uses a
    generator seeded from (seed, i) too, so outputs do not depend on which other photos are evaluated.
    Outputs that exist already are kept (a re-run finishes an interrupted one) unless ``overwrite``.
    ``method_dir`` (default ``out_dir``) takes ``outputs/`` and ``generation.json`` where several methods
    share the inputs of one run folder (:mod:`palette_cli.comparison`).
    Returns the generation record written to ``generation.json`` (settings, counts, timing).
    """
    from ..data import item_seed
    from ..imageio import save_image_atomic
    from ..pipeline import SamplerSettings

    say = log or (lambda _msg: None)
    spec = task if isinstance(task, EvalTask) else EvalTask(task, mask_mode, jpeg_quality, direction)
    settings = settings or SamplerSettings()
    if size < 8 or samples_per_image < 1:
        raise EvaluationError(f"need size >= 8 and samples per image >= 1, got {size} and {samples_per_image}")
    run_dir = Path(out_dir)
    paths = select_references(references, n_images)
    names = eval_names(paths)
    pipe = load_method(model, spec.name, size, device=device, precision=precision, batch_size=batch_size,
                       force=force)
    if size % pipe.divisor:
        raise EvaluationError(f"size {size} must be a multiple of {pipe.divisor} for this model")
    samples_per_image = 1 if pipe.deterministic else samples_per_image
    try:
        described = pipe.record(settings)
    except ValueError as e:  # sampler settings the model does not take
        raise EvaluationError(str(e)) from None
    record_settings = {**spec.describe(), **described, "size": size, "samples_per_image": samples_per_image,
                       "seed": seed, "n_images": len(paths), "threads": threads}
    own = Path(method_dir) if method_dir is not None else run_dir
    check_previous(own, record_settings, overwrite)
    make_run_folders(run_dir, spec)
    (own / OUTPUTS_DIR).mkdir(parents=True, exist_ok=True)
    write_text_atomic(own / GENERATION_JSON, json.dumps({"settings": record_settings}, indent=2) + "\n")

    meta = {**pipe.provenance(spec.name, settings, seed), **{k: str(v) for k, v in spec.describe().items()}}
    generated, skipped, gen_seconds, prep_seconds = 0, 0, 0.0, 0.0
    with _Threads(threads, pipe.device) as threads_ctl:
        for i, (path, name) in enumerate(zip(paths, names)):
            t0 = time.perf_counter()
            example = make_eval_input(path, name, spec, size, seed, i)
            save_eval_input(run_dir, example)
            prep_seconds += time.perf_counter() - t0
            outs = [own / OUTPUTS_DIR / f"{name}_s{k}.png" for k in range(samples_per_image)]
            if not overwrite and all(o.is_file() for o in outs):
                skipped += 1
            else:
                t0 = time.perf_counter()
                threads_ctl.tick()

                def step(done: int, total: int) -> None:
                    threads_ctl.tick()
                    if on_step is not None:
                        on_step(done, total)

                generator = torch.Generator().manual_seed(item_seed(seed, i, 1))
                # the model sees only the degraded input (and the mask), never the reference
                results = pipe.infer(spec.name, example.input, example.mask, settings, generator,
                                     samples_per_image, step)
                for out, result in zip(outs, results):
                    save_image_atomic(result, out, metadata={**meta, "source": path.name}, overwrite=True)
                gen_seconds += time.perf_counter() - t0
                generated += 1
            if on_image is not None:
                on_image(i + 1, len(paths), name)
    model_calls = pipe.model_calls(settings)
    record = {
        "settings": record_settings,
        "description": pipe.summary(settings),
        "images": {"total": len(paths), "generated": generated, "kept_from_before": skipped,
                   "names": dict(zip(names, (str(p) for p in paths)))},
        "model_calls_per_sample": model_calls,
        "timing_s": {"inputs": round(prep_seconds, 3), "generation": round(gen_seconds, 3),
                     "generation_per_image": round(gen_seconds / generated, 3) if generated else None,
                     "generation_per_sample": (round(gen_seconds / (generated * samples_per_image), 3)
                                               if generated else None)},
    }
    write_text_atomic(own / GENERATION_JSON, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    if generated:
        say(f"generated {generated} image(s) x {samples_per_image} sample(s) in {gen_seconds:.1f} s "
            f"({gen_seconds / generated:.2f} s/image, {model_calls} model calls per sample)"
            + (f"; {skipped} kept from before" if skipped else ""))
    else:
        say(f"all {skipped} image(s) have outputs already; nothing generated")
    return record


def evaluate(model: Any, task: str | EvalTask, references: References, out_dir: PathSpec, *,
             outputs: PathSpec | None = None, n_images: int | None = None, samples_per_image: int = 1,
             feature_net: str = "effnet-lite0", standard: StandardWeights | None = None,
             labels: Mapping[str, int] | PathSpec | None = None, score_batch_size: int = 16,
             kid_subsets: int = 100, kid_subset_size: int = 1000, is_splits: int = 10, device: str = "auto",
             threads: int | None = None, log: Log | None = print, masks: PathSpec | None = None,
             **generation: Any) -> dict[str, Any]:
    """``palette eval``: generate outputs (:func:`generate_outputs`) and score them (:func:`score_outputs`).

    With ``outputs`` nothing is generated: the images there (made by any tool) are scored against
    ``references`` and the report goes to ``out_dir``; ``masks`` (a folder of ``NAME.png``, 1 = generated)
    adds the fill metrics there. Writes ``metrics.json`` and ``metrics.md`` into
    ``out_dir``; after generation they also carry the generation record (settings and timing).
    ``generation`` holds the other keyword arguments of :func:`generate_outputs`.
    """
    from ..scale.devices import resolve_device

    say = log or (lambda _msg: None)
    try:
        score_device = str(resolve_device(device))
    except ValueError as e:
        raise EvaluationError(str(e)) from None
    score_kw: dict[str, Any] = dict(feature_net=feature_net, standard=standard, labels=labels,
                                    batch_size=score_batch_size, kid_subsets=kid_subsets,
                                    kid_subset_size=kid_subset_size, is_splits=is_splits, out_dir=out_dir,
                                    log=log, device=score_device)
    if outputs is not None:
        refs = select_references(references, n_images)
        with _Threads(threads, score_device):
            return score_outputs(outputs, [str(p) for p in refs], masks=masks, **score_kw)

    record = generate_outputs(model, task, references, out_dir, n_images=n_images, samples_per_image=samples_per_image,
                              device=device, threads=threads, log=log, **generation)
    run_dir = Path(out_dir)
    own = Path(generation.get("method_dir") or run_dir)
    refs = [str(run_dir / REFERENCES_DIR / f"{name}.png") for name in record["images"]["names"]]
    t0 = time.perf_counter()
    with _Threads(threads, score_device):
        masks = run_dir / MASKS_DIR
        result = score_outputs(own / OUTPUTS_DIR, refs, samples_per_image=record["settings"]["samples_per_image"],
                               **{**score_kw, "out_dir": own, "masks": masks if masks.is_dir() else None})
    scoring = time.perf_counter() - t0
    result["generation"] = record
    write_text_atomic(own / METRICS_JSON, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(own / METRICS_MD, metrics_markdown(result) + generation_markdown(record))
    per_image = record["timing_s"]["generation_per_image"]
    say(f"timing: generation {record['timing_s']['generation']:.1f} s"
        + (f" ({per_image:.2f} s/image)" if per_image is not None else "") + f", scoring {scoring:.1f} s")
    return result


def generation_markdown(record: dict[str, Any]) -> str:
    s, timing = record["settings"], record["timing_s"]
    settings = ", ".join(f"{k} `{v}`" for k, v in s.items() if k not in ("model_hash", "threads"))
    per_image = timing["generation_per_image"]
    return ("\n## Generation\n\n"
            f"{settings}. {record['images']['generated']} image(s) generated"
            + (f" in {timing['generation']:.1f} s ({per_image:.2f} s/image, "
               f"{record['model_calls_per_sample']} model calls per sample)" if per_image is not None else "")
            + (f"; {record['images']['kept_from_before']} kept from an earlier run"
               if record["images"]["kept_from_before"] else "") + ".\n")
