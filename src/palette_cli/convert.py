"""Converter from the public re-implementation's checkpoints (Janspiry/Palette, guided_diffusion flavour).

Its ``*_Network.pth`` / ``*_Network_ema.pth`` files hold the state dict of its ``Network``: the U-Net
under ``denoise_fn.`` plus noise-schedule buffers (dropped here). The U-Net is guided-diffusion's
layout with module names we rename one to one; its 1-D attention convs become our 1×1 2-D convs. The
result, run with ``gamma_embedding="janspiry"``, computes the same function as the original.

Not stored in the file and therefore taken from ``config_overrides`` (defaults = their configs):
``num_head_channels`` (32; ``None`` or -1 with ``num_heads`` for a fixed head count), ``num_groups``
(32), ``dropout`` (0.2), ``image_size`` (256).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor

from .nets import UNet, UNetConfig

_PREFIXES = ("module.", "denoise_fn.")
_RES_PARTS = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "emb_proj", "out_layers.0": "norm2",
              "out_layers.3": "conv2", "skip_connection": "skip"}
_ATTN_PARTS = {"norm": "norm", "qkv": "qkv", "proj_out": "proj"}
_RESAMPLE_PARTS = {"op": "op", "conv": "conv"}
_TOP = {"cond_embed.0": "gamma_mlp.0", "cond_embed.2": "gamma_mlp.2", "input_blocks.0.0": "conv_in",
        "out.0": "norm_out", "out.2": "conv_out"}
_BLOCK_KEY = re.compile(r"^(input_blocks|middle_block|output_blocks)\.(?:(\d+)\.)?(\d+)\.(.+)\.(weight|bias)$")
_DEFAULTS = {"num_head_channels": 32, "num_groups": 32, "dropout": 0.2, "image_size": 256}


def _unet_keys(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """The U-Net's tensors without ``module.`` / ``denoise_fn.`` prefixes (schedule buffers dropped)."""
    if not isinstance(sd, dict) or not sd:
        raise ValueError("expected a non-empty state dict")
    out = {}
    has_denoise = any(k.replace("module.", "", 1).startswith("denoise_fn.") for k in sd)
    for key, value in sd.items():
        k = key[len("module."):] if key.startswith("module.") else key
        if has_denoise:
            if not k.startswith("denoise_fn."):
                continue  # the Network's noise-schedule buffers (gammas, posterior_* …)
            k = k[len("denoise_fn."):]
        if not isinstance(value, Tensor):
            raise ValueError(f"entry {key!r} is not a tensor")
        out[k] = value
    if "noise_level_mlp.1.weight" in out or "downs.0.weight" in out:
        raise ValueError("this is an 'sr3'-flavour checkpoint; only the 'guided_diffusion' flavour is supported")
    for required in ("cond_embed.0.weight", "input_blocks.0.0.weight", "out.2.weight"):
        if required not in out:
            raise ValueError(f"missing key {required!r}")
    return out


def _block_count(sd: dict[str, Tensor], name: str) -> int:
    return 1 + max(int(k.split(".")[1]) for k in sd if k.startswith(name + "."))


def _has(sd: dict[str, Tensor], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in sd)


def _up_layer(sd: dict[str, Tensor], block: int) -> str | None:
    """Kind of up-sampling layer in an output block: "res" (ResBlock), "conv" (Upsample + conv) or None."""
    for j in (1, 2):
        if _has(sd, f"output_blocks.{block}.{j}.in_layers."):
            return "res"
        if _has(sd, f"output_blocks.{block}.{j}.conv."):
            return "conv"
    return None


def infer_janspiry_config(sd: dict[str, Tensor], config_overrides: dict[str, Any] | None = None) -> UNetConfig:
    """Read the U-Net layout off the key names and shapes of a (prefix-free) Janspiry U-Net state dict."""
    mc = sd["cond_embed.0.weight"].shape[1]
    in_ch, out_ch = sd["input_blocks.0.0.weight"].shape[1], sd["out.2.weight"].shape[0]
    n_out = _block_count(sd, "output_blocks")

    # Output block i ends a level (and holds an up-sampling layer at index 1 or 2) at i = (R+1)k - 1.
    ups = {i: kind for i in range(n_out) if (kind := _up_layer(sd, i))}
    overrides = dict(config_overrides or {})
    if ups:
        res_blocks = min(ups)
    elif "num_res_blocks" in overrides:
        res_blocks = int(overrides["num_res_blocks"])  # parameter-free resampling: not visible in the keys
    else:
        res_blocks = n_out - 1  # a single level
    if res_blocks < 1 or n_out % (res_blocks + 1):
        raise ValueError(f"cannot split {n_out} output blocks into levels of {res_blocks} + 1")
    levels = n_out // (res_blocks + 1)
    up_kind = ups[min(ups)] if ups else ("res" if levels == 1 else "plain")

    mults, attention = [], []
    for level in range(levels):
        first = 1 + level * (res_blocks + 1)
        width = sd[f"input_blocks.{first}.0.out_layers.3.weight"].shape[0]
        if width % mc:
            raise ValueError(f"level {level} has {width} channels, not a multiple of {mc}")
        mults.append(width // mc)
        if f"input_blocks.{first}.1.qkv.weight" in sd:
            attention.append(2**level)

    emb_out = sd["input_blocks.1.0.emb_layers.1.weight"].shape[0]
    res_width = sd["input_blocks.1.0.out_layers.3.weight"].shape[0]

    config: dict[str, Any] = dict(_DEFAULTS)
    config.update(cond_channels=in_ch - out_ch, out_channels=out_ch, model_channels=mc, channel_mult=tuple(mults),
                  num_res_blocks=res_blocks, attention_resolutions=tuple(attention),
                  use_scale_shift_norm=emb_out == 2 * res_width, resblock_updown=up_kind == "res",
                  conv_resample=up_kind != "plain", gamma_embedding="janspiry", attention="global")
    if overrides.get("num_head_channels") == -1:
        overrides["num_head_channels"] = None
    config.update(overrides)
    return UNetConfig.from_dict(config)


def _rename(key: str) -> str:
    """Our name for one of their (prefix-free) U-Net keys."""
    for theirs, ours in _TOP.items():
        if key.startswith(theirs + "."):
            return ours + key[len(theirs):]
    m = _BLOCK_KEY.match(key)
    if not m:
        raise ValueError(f"unexpected key {key!r}")
    group, block, layer, part, kind = m.groups()
    if group == "middle_block":
        prefix = f"middle.{layer}"
    elif group == "input_blocks":
        prefix = f"encoder.{int(block) - 1}.{layer}"
    else:
        prefix = f"decoder.{block}.{layer}"
    for table in (_RES_PARTS, _ATTN_PARTS, _RESAMPLE_PARTS):
        if part in table:
            return f"{prefix}.{table[part]}.{kind}"
    raise ValueError(f"unexpected key {key!r}")


def janspiry_state_dict_to_ours(sd: dict[str, Tensor],
                                config_overrides: dict[str, Any] | None = None) -> tuple[UNetConfig, dict[str, Tensor]]:
    """Convert a Janspiry/Palette guided_diffusion U-Net state dict to ``(config, our_state_dict)``.

    Every key is renamed and every shape checked against the network the inferred config builds;
    anything unexpected raises ``ValueError``.
    """
    theirs = _unet_keys(sd)
    try:
        config = infer_janspiry_config(theirs, config_overrides)
    except KeyError as e:
        raise ValueError(f"missing key {e.args[0]!r}") from None
    ours: dict[str, Tensor] = {}
    for key, value in theirs.items():
        name = _rename(key)
        if value.dim() == 3 and (".qkv." in name or ".proj." in name):
            value = value.unsqueeze(-1)  # Conv1d (out, in, 1) -> Conv2d (out, in, 1, 1)
        ours[name] = value.detach().clone().contiguous()

    with torch.device("meta"):
        expected = {k: v.shape for k, v in UNet(config).state_dict().items()}
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    wrong = sorted(k for k in set(ours) & set(expected) if ours[k].shape != expected[k])
    if missing or unexpected or wrong:
        details = [f"{label}: {', '.join(names[:3])}{' …' if len(names) > 3 else ''}"
                   for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                   if names]
        raise ValueError("state dict does not match the inferred layout (" + "; ".join(details) + ")")
    return config, {k: ours[k] for k in expected}
