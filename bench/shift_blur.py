"""What resampling alone costs: fd_evaluator of real val clips whose frames are shifted by random sub-pixel amounts.

    .venv/bin/python bench/shift_blur.py --workdir <folder>     # a folder with make run's shards and evaluator

The default model (motionshape) makes each frame by sampling one generated appearance at a displaced grid
(``grid_sample``), so every frame is resampled at a sub-pixel offset. This bench applies the same operation to real
clips: each frame is shifted by an offset drawn uniformly from [0, s) pixels in x and y (s = 0.25, 0.5, 1), sampled
bilinearly or bicubically with the model's settings (align_corners, border padding), and scored like `vgan evaluate`
scores a model (n clips against n real train clips, bootstrap interval), beside the static-frame baseline and the
real-vs-real floor (the unshifted val clips). Writes bench/results/shift_blur_cpu.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from learning_curve import Judge, prepare_workdir  # noqa: E402
from quality import git_commit, public_command  # noqa: E402

from vgan.util.io import write_json  # noqa: E402


def shifted(clips: torch.Tensor, max_shift: float, mode: str, generator: torch.Generator) -> torch.Tensor:
    """(B, C, T, H, W) clips, each frame sampled at a grid shifted by U[0, max_shift) pixels in x and y."""
    batch, channels, frames, height, width = clips.shape
    flat = clips.transpose(1, 2).flatten(0, 1)  # (B*T, C, H, W)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    pixel = torch.tensor([2 / (width - 1), 2 / (height - 1)])  # one pixel in grid units (align_corners)
    offsets = torch.rand(flat.shape[0], 1, 1, 2, generator=generator) * max_shift * pixel
    grid = torch.stack([xs, ys], dim=-1)[None] + offsets
    out = F.grid_sample(flat, grid, mode=mode, padding_mode="border", align_corners=True).clamp(-1, 1)
    return out.unflatten(0, (batch, frames)).transpose(1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=REPO / ".bench-work", help="work folder (shards, evaluator)")
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="largest shifts, pixels")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/shift_blur_cpu.json")
    args = parser.parse_args()

    from vgan.data.loader import real_clips
    from vgan.evaluate.evaluate_stage import _embed

    prepare_workdir(args.workdir)
    judge = Judge(args.workdir)
    cfg = judge.params.evaluate
    val, _ = real_clips(judge.params.shards.out_dir, "val", limit=judge.n, seed=cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    sets = {"real val clips, unshifted": _embed(judge.net, val, cfg.batch_size)[0]}
    for mode in ("bilinear", "bicubic"):
        for shift in args.shifts:
            sets[f"{mode}, shift < {shift} px"] = _embed(judge.net, shifted(val, shift, mode, generator),
                                                         cfg.batch_size)[0]
    intervals = judge._intervals(sets)
    rows = [{"set": name, "fd_evaluator": round(value["fd"], 3), "ci_low": round(value["ci_low"], 3),
             "ci_high": round(value["ci_high"], 3)} for name, value in intervals.items()]
    print(f"| set (n = {judge.n} clips each) | fd_evaluator [95 % CI] |\n| --- | --- |")
    for row in rows:
        print(f"| {row['set']} | {row['fd_evaluator']:.2f} [{row['ci_low']:.1f}, {row['ci_high']:.1f}] |")
    write_json(args.out, {"command": public_command("bench/shift_blur.py", sys.argv[1:]), "commit": git_commit(),
                          "num_clips": judge.n, "rows": rows})
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out.name}")


if __name__ == "__main__":
    main()
