"""Benchmark: I3D feature throughput (random weights) and Fréchet/KVD timing at 2048 x 400.

Usage: python bench/bench_metrics.py [--clips 4] [--frames 16] [--size 224] [--device auto]
Prints a table and writes bench/results/metrics.json. GPU figures need a GPU machine (--device cuda).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from vgan.metrics.frechet import frechet_distance
from vgan.metrics.kernel import kernel_distance
from vgan.metrics.i3d import I3DFeatures, InceptionI3d


def timed(function, repeats: int) -> float:
    """Best wall-clock seconds of `repeats` calls (after one warm-up call)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4, help="clips per I3D batch")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="input frame size (resized to 224 by the preprocessing)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", default="bench/results/metrics.json")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)

    extractor = I3DFeatures(InceptionI3d().eval().requires_grad_(False), torchscript=False).to(device)
    clips = torch.randint(0, 256, (args.clips, args.frames, args.size, args.size, 3), dtype=torch.uint8)
    i3d_seconds = timed(lambda: extractor(clips), args.repeats)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        i3d_bf16_seconds = timed(lambda: extractor(clips), args.repeats) if device.type == "cuda" else None

    rng = np.random.default_rng(0)
    real, generated = rng.standard_normal((2048, 400)), rng.standard_normal((2048, 400)) + 0.1
    frechet_seconds = timed(lambda: frechet_distance(real, generated), args.repeats)
    kernel_seconds = timed(lambda: kernel_distance(real, generated), 1)

    rows = [
        ("i3d_fp32_clips_per_s", args.clips / i3d_seconds, f"{args.clips}x{args.frames}x{args.size}² -> 224², {device}"),
        ("i3d_bf16_clips_per_s", None if i3d_bf16_seconds is None else args.clips / i3d_bf16_seconds, "cuda only"),
        ("frechet_2048x400_s", frechet_seconds, "float64, CPU"),
        ("kvd_2048x400_s", kernel_seconds, "100 subsets x 1000, CPU"),
    ]
    print(f"{'metric':<24}{'value':>12}  setting")
    for name, value, setting in rows:
        print(f"{name:<24}{'n/a' if value is None else f'{value:12.3f}':>12}  {setting}")
    result = {name: value for name, value, _ in rows}
    result.update(device=str(device), device_name=torch.cuda.get_device_name() if device.type == "cuda" else platform.processor(),
                  torch=torch.__version__, threads=torch.get_num_threads(), clips=args.clips, frames=args.frames, size=args.size)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
