"""Training throughput of the shipped network preset: fp32 eager vs our default (bf16 autocast + channels_last).

Both settings run in one process on the same synthetic batches (the network and loss are what is
measured; data loading is excluded), alternating so that load from other processes on a shared machine
affects both alike. Prints a table with images/s and the ratio.

    python benchmarks/bench_train.py --size 128 --batch 8 --steps 4
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from palette_cli.nets import UNet, preset
from palette_cli.schedule import PAPER_TRAIN
from palette_cli.training import training_loss


def make_step(net: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict, autocast: bool):
    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = training_loss(net, batch, PAPER_TRAIN, torch.Generator().manual_seed(0), autocast=autocast)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per setting and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.size, args.size)
    base = {"cond": torch.rand(shape, generator=g) * 2 - 1, "target": torch.rand(shape, generator=g) * 2 - 1,
            "mask": torch.ones(args.batch, 1, args.size, args.size)}
    settings = {}
    for name, autocast, channels_last in (("fp32 eager", False, False), ("bf16 autocast + channels_last", True, True)):
        torch.manual_seed(0)
        net = UNet(preset(args.preset))
        batch = dict(base)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
            batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in base.items()}
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        step = make_step(net, opt, batch, autocast)
        step()  # warm-up (allocations, kernel selection)
        settings[name] = (step, [])
    for _ in range(args.rounds):
        for name, (step, times) in settings.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            times.append((time.perf_counter() - t0) / args.steps)

    print(f"preset {args.preset}, {args.size}² crops, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; median of {args.rounds} rounds × {args.steps} steps")
    print(f"{'setting':<32} {'s/step':>8} {'images/s':>9}")
    ips = {}
    for name, (_, times) in settings.items():
        t = statistics.median(times)
        ips[name] = args.batch / t
        print(f"{name:<32} {t:8.3f} {ips[name]:9.2f}")
    a, b = ips.values()
    print(f"ratio (default / fp32 eager): {b / a:.2f}×")


if __name__ == "__main__":
    main()
