"""Training throughput on this machine: images/s and achieved GFLOP/s of a training config's network and
loss, under each precision / memory-layout setting, against the CPU's measured matmul peak.

The settings run in one process on the same synthetic batches (network, loss and optimiser are measured;
data loading is not), alternating round by round so that load from other processes affects all alike.
The CPU's capability (AVX2 / AVX-512, native bf16 or not) is printed first: on a CPU without native
bf16, bf16 autocast is emulated and many times slower, which is why training's ``precision = "auto"``
picks float32 there.

    python benchmarks/bench_train.py --config configs/restore-bridge.toml --size 64 --batch 16 --steps 3
    python benchmarks/bench_train.py --preset small --size 64 --batch 32   # the earlier shipped network
    python benchmarks/bench_train.py --config configs/colorize-effnet.toml --size 224 --batch 24 --compile

``--compile`` adds the fastest eager setting under ``torch.compile`` (its compile time is printed apart and
left out of the timings).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from palette_cli.nets import build_network, cpu_has_fast_bf16, preset
from palette_cli.diffusion.gaussian import EpsDiffusion
from palette_cli.training import build_net_config, load_config


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an n×n matrix product in ``dtype``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def step_flops(step) -> float:
    """FLOPs of one training step (forward + backward), counted by torch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def make_step(net, opt, process, batch, autocast):
    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = process.loss(net, batch, torch.Generator().manual_seed(0), autocast=autocast)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="a training config: its network and process (default: --preset, ε loss)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per setting and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compile", action="store_true", help="also time the last setting under torch.compile")
    ap.add_argument("--bf16", choices=("auto", "yes", "no"), default="auto",
                    help="also time bf16 autocast (auto: only where the CPU computes bf16 natively)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.config:
        config = load_config(args.config)
        net_config, process, label = build_net_config(config.net), config.build_process(), args.config
    else:
        net_config, process, label = preset(args.preset), EpsDiffusion(), f"preset {args.preset}"
    fast_bf16 = cpu_has_fast_bf16()
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {'yes' if fast_bf16 else 'no'}; "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    time_bf16 = args.bf16 == "yes" or (args.bf16 == "auto" and fast_bf16)
    peak32 = matmul_peak(torch.float32)
    peak16 = matmul_peak(torch.bfloat16) if time_bf16 else float("nan")  # emulated bf16: minutes, and moot
    print(f"matmul peak (2048², best of 5): float32 {peak32:.0f} GFLOP/s, bf16 "
          + (f"{peak16:.0f} GFLOP/s" if time_bf16 else "not measured (no native bf16)"))

    g = torch.Generator().manual_seed(0)
    shape = (args.batch, net_config.out_channels, args.size, args.size)
    base = {"cond": torch.rand(args.batch, net_config.cond_channels, args.size, args.size, generator=g) * 2 - 1,
            "target": torch.rand(shape, generator=g) * 2 - 1, "mask": torch.ones(args.batch, 1, args.size, args.size)}
    variants = [("fp32", False, False), ("fp32 + channels_last", False, True)]
    if time_bf16:
        variants.append(("bf16 autocast + channels_last", True, True))
    if args.compile:
        variants.append((variants[-1][0] + " + torch.compile", variants[-1][1], variants[-1][2]))
    settings = {}
    flops = 0.0
    for name, autocast, channels_last in variants:
        torch.manual_seed(0)
        net = build_network(net_config).train()
        batch = dict(base)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
            batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in base.items()}
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)
        if name.endswith("torch.compile"):
            net = torch.compile(net)
        step = make_step(net, opt, process, batch, autocast)
        flops = flops or step_flops(step)  # also the warm-up of the first setting
        t0 = time.perf_counter()
        step()  # warm-up (allocations, kernel selection, compilation)
        if name.endswith("torch.compile"):
            print(f"torch.compile: first step {time.perf_counter() - t0:.1f} s (compilation)")
        settings[name] = (step, [])
    for _ in range(args.rounds):
        for name, (step, times) in settings.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            times.append((time.perf_counter() - t0) / args.steps)

    params = sum(p.numel() for p in build_network(net_config).parameters())
    print(f"{label}: {params / 1e6:.2f}M parameters, {process.kind} process, {args.size}² crops, batch {args.batch}; "
          f"{flops / 1e9:.1f} GFLOP per step; median of {args.rounds} rounds × {args.steps} steps")
    print("| setting | s/step | images/s | GFLOP/s | % of float32 peak | % of bf16 peak |")
    print("|---|---:|---:|---:|---:|---:|")
    ips = {}
    for name, (_, times) in settings.items():
        t = statistics.median(times)
        ips[name] = args.batch / t
        rate = flops / t / 1e9
        print(f"| {name} | {t:.3f} | {ips[name]:.2f} | {rate:.1f} | {100 * rate / peak32:.0f}% | {100 * rate / peak16:.0f}% |")
    first = next(iter(ips))
    for name in list(ips)[1:]:
        print(f"ratio {name} / {first}: {ips[name] / ips[first]:.2f}×")


if __name__ == "__main__":
    main()
