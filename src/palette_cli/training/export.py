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
