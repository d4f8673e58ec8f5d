"""`palette convert`: turn a checkpoint of the public re-implementation into a palette-cli model file."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import nonempty_path
from .runner import fail


class StorageDtype(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


def convert(source: Annotated[Path, typer.Argument(help="A Janspiry/Palette UNet state dict (.pth).", metavar="SOURCE",
                                                  parser=nonempty_path, show_default=False)],
            output: Annotated[Path, typer.Argument(help="The .safetensors file to write.", metavar="OUTPUT",
                                                  parser=nonempty_path, show_default=False)],
            task: Annotated[Optional[str], typer.Option(help="Task the model was trained for (colorize, inpaint, uncrop, jpeg).")] = None,
            image_size: Annotated[int, typer.Option(help="Resolution the model was trained at.")] = 256,
            num_head_channels: Annotated[int, typer.Option(help="Channels per attention head in its config.")] = 32,
            dtype: Annotated[StorageDtype, typer.Option(help="Storage precision.")] = StorageDtype.fp32,
            overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False) -> None:
    """Convert a guided-diffusion-flavour checkpoint (e.g. 200_Network_ema.pth) so our samplers can run it."""
    from ..checkpoint import ModelInfo, save_model
    from ..convert import janspiry_state_dict_to_ours
    from ..imageio import ImageInputError, OutputError, path_kind
    from ..outputs import output_problem
    from ..pickles import PickleLoadError, load_plain

    try:
        if path_kind(source) == "missing":
            raise fail(f"{source}: file not found", 2)
    except ImageInputError as e:
        raise fail(str(e), 2)
    problem = output_problem(output)
    if problem:
        raise fail(f"{output}: {problem}", 2)
    if output.exists() and not overwrite:
        raise fail(f"{output} exists (use --overwrite)", 2)
    try:
        sd = load_plain(source, "state dict")
    except PickleLoadError as e:
        raise fail(str(e))
    if not isinstance(sd, dict):
        raise fail(f"{source}: expected a state dict, found {type(sd).__name__}")
    try:
        config, ours = janspiry_state_dict_to_ours(
            sd, config_overrides={"image_size": image_size, "num_head_channels": num_head_channels})
    except (KeyError, ValueError, IndexError, RuntimeError) as e:
        raise fail(f"{source}: not a Janspiry/Palette UNet state dict ({(str(e).splitlines() or [''])[0]})")
    info = ModelInfo(net=config.to_dict(), schedule={"kind": "linear", "steps": 2000, "start": 1e-6, "end": 0.01},
                     tasks=[task] if task else [], extra={"converted_from": source.name})
    try:
        save_model(output, info, ours, dtype=dtype.value)
    except OutputError as e:
        raise fail(str(e))
    typer.echo(f"wrote {output}")
