"""The sampler's network calls on one condition with the encoder's features kept between steps, against the
same calls recomputing them at every step, for the two networks that read the condition with a pretrained
encoder: the encoder fill of ``configs/fill-effnet.toml`` and the U-Net of ``configs/fill-generate.toml`` with a
context encoder (``net.context = "lite1"``).

Each is timed in the same run, in the inference mode the commands use (channels_last, bf16 autocast where the
CPU computes it natively), ``--steps`` calls at decreasing levels on one condition, best of ``--repeats``; the
outputs of the two ways are compared (they must be identical). Random weights: the cost does not depend on them.

    python benchmarks/bench_encoder_cache.py [--size 256] [--steps 8] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

from palette_cli.nets import EffNetUNetConfig, UNetConfig, inference_mode


def networks():
    fill = EffNetUNetConfig(encoder="lite1", image_size=256, num_classes=0, out_channels=3,
                            decoder_channels=(256, 160, 96, 64, 48), global_channels=256, output_stride=2,
                            gamma_embedding="time", state_pyramid=True)
    context = UNetConfig(image_size=256, model_channels=64, channel_mult=(1, 2, 2, 2), num_res_blocks=1,
                         attention_resolutions=(), num_head_channels=64, patch_size=2, gamma_embedding="time",
                         context="lite1")
    return {"encoder fill (fill-effnet.toml)": fill, "U-Net + context (fill-generate.toml, context lite1)": context}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cond = torch.rand(1, 3, args.size, args.size) * 2 - 1
    y = torch.randn(1, 3, args.size, args.size)
    levels = torch.linspace(1.0, 1.0 / args.steps, args.steps)
    print(f"{args.steps} calls at {args.size}², batch 1, {torch.get_num_threads()} threads, best of {args.repeats}")
    print("| network | kept features | recomputed | recomputed / kept | identical |")
    print("|---|---:|---:|---:|---|")
    for name, config in networks().items():
        net, autocast = inference_mode(config.build(), "cpu", "auto")
        cache = "_last_encoding" if hasattr(net, "_last_encoding") else "_last_context"

        def run(keep: bool) -> list[torch.Tensor]:
            outs = []
            with torch.no_grad(), autocast():
                for t in levels:
                    if not keep:
                        setattr(net, cache, None)
                    outs.append(net(y, float(t), cond).float())
            setattr(net, cache, None)
            return outs

        def best(keep: bool) -> float:
            run(keep)  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                run(keep)
                times.append(time.perf_counter() - t0)
            return min(times)

        kept, recomputed = best(True), best(False)
        same = all(torch.equal(a, b) for a, b in zip(run(True), run(False)))
        print(f"| {name} | {kept:.3f} s | {recomputed:.3f} s | {recomputed / kept:.2f} | {same} |")


if __name__ == "__main__":
    main()
