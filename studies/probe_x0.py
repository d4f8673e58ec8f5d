"""How well a diffusion model knows the clean image at each noise level, from the condition alone.

For evaluation inputs made by ``palette eval`` (a run folder with ``references/`` and ``inputs/``), noise
each reference to ``y_t = √γ·y0 + √(1−γ)·ε`` at several γ, ask the model (ε or v prediction, as its file
says) for its estimate of y0, and print per γ: the noise-estimate error, the error of the clipped y0
estimate, and the error of its mean colour (per image and channel, in [-1, 1] units squared). For
comparison the first line gives the same errors of the condition image itself (for JPEG restoration it
is already close to y0). Near γ = 0 the condition is all the model has to go on: a model that has not
learnt to read colour from it commits the sampler's first steps to a wrong colour.

    python -m studies.probe_x0 --model runs/study-training/models/reference.safetensors \\
        --run runs/study-training/jpeg/reference --n 32
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

from palette_cli.checkpoint import load_model
from palette_cli.imageio import pil_to_tensor
from palette_cli.diffusion.gaussian import DiffusionProcess
from palette_cli.diffusion.registry import process_from_metadata

GAMMAS = (1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5, 0.9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="model file (repeat to compare)")
    p.add_argument("--run", required=True, help="a palette eval run folder (references/ and inputs/)")
    p.add_argument("--n", type=int, default=32, help="inputs to use (spread over the folder)")
    p.add_argument("--draws", type=int, default=4, help="noise draws per input and γ")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    run = Path(args.run)
    names = sorted(f.stem for f in (run / "references").glob("*.png"))
    names = names[:: max(1, len(names) // args.n)][: args.n]
    y0 = torch.stack([pil_to_tensor(Image.open(run / "references" / f"{n}.png").convert("RGB")) for n in names])
    cond = torch.stack([pil_to_tensor(Image.open(run / "inputs" / f"{n}.png").convert("RGB")) for n in names])

    def colour_err(x: torch.Tensor) -> float:
        return float(((x.mean((2, 3)) - y0.mean((2, 3))) ** 2).mean())

    print(f"{len(names)} inputs from {run}; the condition itself: y0 error {float(((cond - y0) ** 2).mean()):.4f}, "
          f"mean-colour error {colour_err(cond):.5f}\n")
    for model in args.model:
        net, info = load_model(model)
        net.eval()
        process = process_from_metadata(info.extra, info.training, info.schedule)
        if not isinstance(process, DiffusionProcess):
            print(f"### {Path(model).name}: a {process.kind} model, not a γ diffusion; skipped\n")
            continue
        print(f"### {Path(model).name} (predicts {process.kind})\n")
        denoise = process.denoiser(lambda y, g, c: net(y, g, c).float(), cond)
        print("| γ | noise-estimate error | y0-estimate error | mean-colour error |")
        print("|---:|---:|---:|---:|")
        gen = torch.Generator().manual_seed(0)
        for gamma in GAMMAS:
            e_eps = e_y0 = e_col = 0.0
            for _ in range(args.draws):
                eps = torch.randn(y0.shape, generator=gen)
                g = torch.full((len(names),), gamma)
                y = gamma ** 0.5 * y0 + (1 - gamma) ** 0.5 * eps
                with torch.no_grad():
                    raw_y0 = denoise(y, g)
                eps_hat = (y - gamma ** 0.5 * raw_y0) / (1 - gamma) ** 0.5
                y0_hat = raw_y0.clamp(-1, 1)
                e_eps += float(((eps_hat - eps) ** 2).mean()) / args.draws
                e_y0 += float(((y0_hat - y0) ** 2).mean()) / args.draws
                e_col += colour_err(y0_hat) / args.draws
            print(f"| {gamma:g} | {e_eps:.4f} | {e_y0:.4f} | {e_col:.5f} |")
        print()


if __name__ == "__main__":
    main()
