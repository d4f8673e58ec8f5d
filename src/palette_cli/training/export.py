"""Export: a run's newest checkpoint → a slim EMA-only model file that ``palette`` commands load."""

from __future__ import annotations

from pathlib import Path

from .checkpoints import latest_checkpoint, load_checkpoint


#: Decoding settings of a chroma-bin colorizer that an export may set (chosen after training, on validation photos).


def export_checkpoint(source: str | Path, out: str | Path, dtype: str = "fp16", extra: dict | None = None,
                      temperature: float | None = None, decoding: dict | None = None) -> Path:
    """A run folder (newest checkpoint) or checkpoint file → a slim EMA-only safetensors model file.
    ``temperature``: a chroma-bin colorizer's default annealed-mean temperature (else the config's);
    ``decoding``: its other decoding defaults (the process's ``decoding_keys``)."""
    from ..checkpoint import ModelInfo, save_model

    path = latest_checkpoint(source)
    ckpt = load_checkpoint(path)
    cfg = ckpt["config"]
    stints = ckpt.get("stints", [])
    training = {
        "steps": ckpt["step"],
        "images_seen": ckpt.get("images_seen"),
        "wall_time_s": round(float(ckpt.get("wall_s", 0.0)), 1),
        "hardware": sorted({s.get("hardware", "") for s in stints if s.get("hardware")}),
        "stints": stints,
        "data": ckpt.get("data", ""),
        "objective": cfg.get("objective", "diffusion"),
        "loss": cfg.get("loss", "l2"),
        "prediction": cfg.get("prediction", "eps"),
        "process": cfg.get("process", {}),
        "resolution": cfg.get("data", {}).get("size"),
        "batch_size": cfg.get("batch_size"),
        "lr": cfg.get("optim", {}).get("lr"),
        "ema_decay": cfg.get("ema_decay"),
        "precision": cfg.get("precision"),
        "task": cfg.get("task"),
    }
    from ..process import Process, process_from_metadata

    decoding = dict(decoding or {})
    if temperature is not None:
        decoding["temperature"] = float(temperature)
    def build(spec: dict) -> Process:
        return process_from_metadata({"objective": training["objective"], "prediction": training["prediction"],
                                      "process": spec}, schedule=ckpt["schedule"])

    process = build(training["process"])
    if decoding:
        known = process.decoding_keys
        if not known:
            raise ValueError("decoding settings (--anneal, --decode) apply to bridge models only; this model's "
                             "process has none")
        unknown = sorted(set(decoding) - set(known))
        if unknown:
            raise ValueError(f"unknown decoding setting(s) {', '.join(unknown)} for this model; known: "
                             f"{', '.join(known)}")
        training["process"] = {**training["process"], **decoding}
        process = build(training["process"])
    info = ModelInfo(net=ckpt["net"], schedule=ckpt["schedule"], tasks=list(ckpt["tasks"]), training=training,
                     extra={**process.metadata(), **(extra or {})})
    return save_model(out, info, ckpt["ema"], dtype=dtype)
