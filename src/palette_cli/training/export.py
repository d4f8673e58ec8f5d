"""Export: a run's newest checkpoint → a slim EMA-only model file that ``palette`` commands load; or a model
file → the same weights with other sampling defaults (``--decode``, chosen after training)."""

from __future__ import annotations

from pathlib import Path

from .checkpoints import latest_checkpoint, load_checkpoint


def export_checkpoint(source: str | Path, out: str | Path, dtype: str = "fp16", extra: dict | None = None,
                      temperature: float | None = None, decoding: dict | None = None) -> Path:
    """A run folder (newest checkpoint) or checkpoint file → a slim EMA-only safetensors model file.
    ``temperature``: a chroma-bin colorizer's default annealed-mean temperature (else the config's);
    ``decoding``: the other settings its process chooses after training (its ``decoding_keys``). A model file
    (``.safetensors``) as ``source`` keeps its weights bit for bit and its record, with the decoding changed."""
    from ..checkpoint import ModelInfo, save_model
    from ..diffusion.registry import process_class

    if Path(source).is_file() and Path(source).suffix == ".safetensors":
        return redecode_model(source, out, temperature, decoding, extra)
    path = latest_checkpoint(source)
    ckpt = load_checkpoint(path)
    cfg = ckpt["config"]
    stints = ckpt.get("stints", [])
    cls = process_class(cfg.get("objective"), cfg.get("prediction"))
    decoding = dict(decoding or {})
    if temperature is not None:
        decoding["temperature"] = float(temperature)
    cls.check_decoding(decoding)
    settings = {**cfg.get("process", {}), **decoding}
    process = cls.from_spec(settings, ckpt["schedule"])
    training = {
        "steps": ckpt["step"],
        "images_seen": ckpt.get("images_seen"),
        "wall_time_s": round(float(ckpt.get("wall_s", 0.0)), 1),
        "hardware": sorted({s.get("hardware", "") for s in stints if s.get("hardware")}),
        "stints": stints,
        "data": ckpt.get("data", ""),
        "objective": process.objective,
        "loss": cfg.get("loss", "l2"),
        "prediction": process.prediction,
        "process": settings,
        "resolution": cfg.get("data", {}).get("size"),
        "batch_size": cfg.get("batch_size"),
        "lr": cfg.get("optim", {}).get("lr"),
        "ema_decay": cfg.get("ema_decay"),
        "precision": cfg.get("precision"),
        "task": cfg.get("task"),
    }
    if cfg.get("task_options"):  # written only when set: the files of runs without them read as before
        training["task_options"] = cfg["task_options"]
    info = ModelInfo(net=ckpt["net"], schedule=ckpt["schedule"], tasks=list(ckpt["tasks"]), training=training,
                     extra={**process.metadata(), **(extra or {})})
    return save_model(out, info, ckpt["ema"], dtype=dtype)


def redecode_model(source: str | Path, out: str | Path, temperature: float | None = None,
                   decoding: dict | None = None, extra: dict | None = None) -> Path:
    """A model file with other decoding defaults: the same tensors, in the same storage precision, and the
    same record, where the process settings (and the training record's copy of them) take ``decoding``."""
    from dataclasses import replace

    from ..checkpoint import load_state_dict, read_info, save_model, storage_dtype
    from ..diffusion.registry import process_from_metadata

    info = read_info(source)
    process = process_from_metadata(info.extra, info.training, info.schedule)
    decoding = dict(decoding or {})
    if temperature is not None:
        decoding["temperature"] = float(temperature)
    type(process).check_decoding(decoding)
    settings = {**process.metadata().get("process", {}), **decoding}
    settings.pop("kind", None)
    rebuilt = type(process).from_spec(settings, info.schedule)
    training = dict(info.training)
    if isinstance(training.get("process"), dict):
        training["process"] = {**training["process"], **decoding}
    new = replace(info, training=training, extra={**info.extra, **rebuilt.metadata(), **(extra or {})})
    return save_model(out, new, load_state_dict(source), dtype=storage_dtype(source))


def attach_coarse(model: str | Path, coarse: str | Path, out: str | Path, size: int | None = None) -> Path:
    """``model`` with ``coarse`` as its coarse stage (:mod:`palette_cli.tasks.coarse`): the fill model's own
    tensors and record, the coarse model's tensors under ``coarse.`` and its config, with the working size
    ``size`` (default: the size it trained at), in ``extra["coarse"]``; stored in ``model``'s precision. A
    coarse stage already in ``model`` is replaced. Both must be fill models; the coarse one may not itself
    have a coarse stage."""
    from dataclasses import replace

    from ..checkpoint import COARSE_KEY, COARSE_PREFIX, load_state_dict, read_info, save_model, storage_dtype
    from ..tasks.coarse import coarse_record

    info, c_info = read_info(model), read_info(coarse)
    fills = {"inpaint", "uncrop"}
    for path, i in ((model, info), (coarse, c_info)):
        if not fills & set(i.tasks):
            raise ValueError(f"{path}: not a fill model (its tasks: {', '.join(i.tasks) or 'none'}); a coarse "
                             "stage joins two inpainting / uncropping models")
    if COARSE_KEY in c_info.extra:
        raise ValueError(f"{coarse}: has a coarse stage of its own; give the plain coarse model")
    if size is None:
        size = c_info.training.get("resolution")
        if not isinstance(size, int) or isinstance(size, bool):
            raise ValueError(f"{coarse}: its training resolution is not recorded; give --coarse-size")
    if not 8 <= size <= 16384:
        raise ValueError(f"coarse size must be 8 to 16384 px, got {size}")
    state = {k: v for k, v in load_state_dict(model).items() if not k.startswith(COARSE_PREFIX)}
    state.update({COARSE_PREFIX + k: v for k, v in load_state_dict(coarse).items()})
    new = replace(info, extra={**info.extra, COARSE_KEY: coarse_record(c_info, size)})
    return save_model(out, new, state, dtype=storage_dtype(model))


def check_stages(path: str | Path) -> None:
    """Refuse (``ValueError``, one line) a model file whose fill starts from a coarse stage it does not hold."""
    from ..checkpoint import read_info
    from ..tasks.coarse import lacks_coarse_stage

    if lacks_coarse_stage(read_info(path)):
        raise ValueError(f"{path}: guess=coarse needs a coarse stage: give one with --coarse MODEL")
