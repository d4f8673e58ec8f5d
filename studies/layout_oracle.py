"""Where the generating fill falls short for uncropping: the layout of the new half, or its texture?

A diagnostic, not a method: the fill model is started part-way (its ``guess``, at ``guess_time``) from a
guess that holds the *true* photo's layout and nothing finer: the reference's right half shrunk to
``N`` px across the photo and enlarged back (``lowN``). If the fill started from the true layout comes close
to the real continuations of ``studies/continuation_probe.py``, a coarse layout model (the issue's
coarse-to-fine item) is what the fill lacks; if it stays near the mirror, the fine texture is. The guesses
alone (no model) are written too (``guessN``), and the model's own guess (``own``: the guess its file names,
e.g. patch synthesis) for comparison. The model file must start from a guess (``palette export ...
--decode guess=exemplar --decode guess_time=T``); ``--guess-time`` overrides its T.

    python -m studies.layout_oracle runs/fill.safetensors --references runs/probe/references \
        --levels 16,32,64 --out runs/oracle
    for d in runs/oracle/*/; do palette eval --task uncrop --outputs $d --references runs/probe/references \
        --feature-net effnets --out $d/score; done
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from palette_cli.data import item_seed
from palette_cli.imageio import load_image, pil_to_tensor, tensor_to_pil
from palette_cli.diffusion.process import SamplerSettings
from palette_cli.pipeline import Pipeline
from palette_cli.tasks.base import noise_fill
from palette_cli.tasks.masks import uncrop_mask
from palette_cli.tasks.starts import fill_start


def right_half_uncrop(reference: Path) -> tuple[Tensor, Tensor, Tensor]:
    """The evaluation's uncropping of a reference: ``(image, mask, known)``, the right half unknown."""
    image = pil_to_tensor(load_image(reference).convert("RGB")).unsqueeze(0)
    mask = uncrop_mask(*image.shape[-2:], "right").unsqueeze(0)
    return image, mask, image * (1 - mask)


def sample_name(reference: Path, j: int, samples: int) -> str:
    """The output file name of sample ``j`` of a reference (``NAME_sJ.png`` when there are several)."""
    return reference.name if samples == 1 else f"{reference.stem}_s{j}.png"


def layout(image: Tensor, mask: Tensor, n: int) -> Tensor:
    """The image's unknown part replaced by the image shrunk to ``n`` px across and enlarged back."""
    h, w = image.shape[-2:]
    small = F.interpolate(image, size=(max(1, n * h // w), n), mode="area")
    big = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)
    return torch.where(mask.bool(), big, image)


def coarse_guess(coarse: Pipeline, known: Tensor, mask: Tensor, size: int, steps: int | None,
                 generator: torch.Generator, eta: float | None = None, detail: Tensor | None = None) -> Tensor:
    """The coarse model's fill of the photo shrunk to ``size`` across, enlarged into the unknown part; with
    ``detail`` (an image of the same size), its frequencies above the coarse size added on top."""
    h, w = known.shape[-2:]
    small_size = (max(1, size * h // w), size)
    small = F.interpolate(known, size=small_size, mode="area")
    m = (F.interpolate(mask, size=small_size, mode="area") > 0.5).float()
    small = small * (1 - m)
    cond = noise_fill(small, m, generator)
    start = fill_start(coarse.process.fill_start, small, m, generator)
    out = coarse.sample(cond, SamplerSettings(steps=steps, eta=eta), generator, known=small, mask=m, start=start)
    big = F.interpolate(out, size=(h, w), mode="bicubic", align_corners=False)
    if detail is not None:
        low = F.interpolate(F.interpolate(detail, size=small_size, mode="area"), size=(h, w), mode="bicubic",
                            align_corners=False)
        big = big + (detail - low)
    return torch.where(mask.bool(), big.clamp(-1, 1), known)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--references", type=Path, required=True, help="folder of 256² references")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--levels", default="16,32,64")
    parser.add_argument("--guess-time", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="auto", help="auto|fp32|bf16 (both models)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    parser.add_argument("--eta", type=float, default=None, help="fresh noise per step (default: the model's)")
    parser.add_argument("--coarse", type=Path, default=None,
                        help="a coarse fill model: its sample at --coarse-size, enlarged, is a further guess (coarse)")
    parser.add_argument("--coarse-size", type=int, default=64)
    parser.add_argument("--coarse-steps", type=int, default=None)
    parser.add_argument("--coarse-eta", type=float, default=None)
    parser.add_argument("--coarse-detail", choices=("none", "exemplar"), default="none",
                        help="add the detail (above the coarse size) of a patch-synthesis fill to the coarse guess")
    parser.add_argument("--samples", type=int, default=1, help="samples per photo (NAME_sK files from 2 on)")
    parser.add_argument("--no-own", action="store_true", help="skip the model's own guess (patch synthesis is slow)")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]

    pipe = Pipeline.from_file(args.model, device="cpu", precision=args.precision)
    if args.guess_time is not None:
        pipe.process.guess_time = args.guess_time
    if pipe.process.fill_guess is None:
        raise SystemExit(f"{args.model}: the model does not start from a guess (export it with --decode guess=…)")
    settings = SamplerSettings(steps=args.steps, eta=args.eta)
    refs = sorted(p for p in args.references.iterdir() if p.suffix == ".png")
    kinds = ([] if args.no_own else ["own"]) + [f"low{n}" for n in levels]
    coarse = None
    if args.coarse is not None:
        coarse = Pipeline.from_file(args.coarse, device="cpu", precision=args.precision)
        kinds.append("coarse")
    for k in kinds + [f"guess{n}" for n in levels] + (["guesscoarse"] if coarse else []):
        (args.out / k).mkdir(parents=True, exist_ok=True)
    for i, ref in enumerate(refs):
        image, mask, known = right_half_uncrop(ref)
        for j in range(args.samples):
            name = sample_name(ref, j, args.samples)
            for k in kinds:
                g = torch.Generator().manual_seed(item_seed(args.seed, i, j))
                cond = noise_fill(known, mask, g)
                start = fill_start(pipe.process.fill_start, known, mask, g)
                if k == "own":
                    guess = fill_start(pipe.process.fill_guess, known, mask, g)
                elif k == "coarse":
                    detail = (fill_start("exemplar", known, mask, g) if args.coarse_detail == "exemplar" else None)
                    guess = coarse_guess(coarse, known, mask, args.coarse_size, args.coarse_steps, g, args.coarse_eta,
                                         detail)
                    tensor_to_pil(guess[0]).save(args.out / "guesscoarse" / name)
                else:
                    guess = layout(image, mask, int(k[3:]))
                    tensor_to_pil(guess[0]).save(args.out / f"guess{k[3:]}" / name)
                out = pipe.sample(cond, settings, g, known=known, mask=mask, start=start, guess=guess)
                tensor_to_pil(out[0].clamp(-1, 1)).save(args.out / k / name)
        print(f"{i + 1}/{len(refs)} {ref.stem}", flush=True)


if __name__ == "__main__":
    main()
