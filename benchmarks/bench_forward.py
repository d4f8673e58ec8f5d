"""Forward time of the `janspiry` U-Net on the CPU: float32 eager NCHW against our inference mode.

The inference mode is what ``palette_cli.nets.inference_mode(net, "cpu", "auto")`` gives: channels_last
weights plus bf16 autocast where the CPU computes bf16 natively. Both modes are timed in the same run
(best of ``--repeats`` after a warm-up: on a shared CPU the fastest run is the one least
disturbed by other processes) and the fast output is compared with float32 by relative L2
error. Every weight gets PyTorch's default initialisation (the zero-initialised output layers too), so
the outputs are not trivially zero.

    python benchmarks/bench_forward.py [--sizes 128 256] [--repeats 5] [--batch 1] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from palette_cli.nets import UNet, inference_mode, preset, resolve_precision


def best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: kernel selection, oneDNN primitive creation
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="janspiry")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    net = UNet(preset(args.preset)).eval()
    for module in net.modules():
        if hasattr(module, "reset_parameters") and module is not net:
            module.reset_parameters()
    fast, autocast = inference_mode(copy.deepcopy(net), "cpu", "auto")
    dtype = resolve_precision("cpu", "auto")
    print(f"preset {args.preset}: {sum(p.numel() for p in net.parameters()) / 1e6:.1f}M parameters, "
          f"batch {args.batch}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, fast mode = channels_last + "
          f"{'bf16 autocast' if dtype is not None else 'float32'}")
    print("| size | float32 eager NCHW (s) | inference mode (s) | speed-up | rel. L2 error |")
    print("|-----:|----------------------:|-------------------:|---------:|--------------:|")
    for size in args.sizes:
        g = torch.Generator().manual_seed(size)
        y = torch.randn(args.batch, 3, size, size, generator=g)
        cond = torch.rand(args.batch, 3, size, size, generator=g) * 2 - 1
        gamma = torch.rand(args.batch, generator=g)

        def run_fp32() -> torch.Tensor:
            return net(y, gamma, cond)

        def run_fast() -> torch.Tensor:
            with autocast():
                return fast(y, gamma, cond)

        with torch.inference_mode():
            t_ref = best_seconds(run_fp32, args.repeats)
            t_fast = best_seconds(run_fast, args.repeats)
            ref, out = run_fp32(), run_fast().float()
        rel = ((out - ref).norm() / ref.norm()).item()
        print(f"| {size}² | {t_ref:21.3f} | {t_fast:18.3f} | {t_ref / t_fast:7.2f}× | {rel:13.2e} |", flush=True)


if __name__ == "__main__":
    main()
