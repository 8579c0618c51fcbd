"""What fd_evaluator charges for: real clips made softer, fainter or thinner, scored as a model's clips are.

The zoo's frames score 42-70 (first frame repeated) against the static frame's 19.7 (docs/results.md). This scores
n real val clips (other clips than the baselines') as they are and after fixed changes of how their strokes look (a
Gaussian or box blur, a lower contrast through the tanh the generators end with, strokes thinned by a minimum filter),
against the same reference set, evaluator and n as the learning curves (`learning_curve.Judge`); prints a table and
writes `bench/results/evaluator_sensitivity.json`. How large a change costs how much says what a generator's frames
must get right.

    python bench/evaluator_sensitivity.py --workdir <folder>    # a folder with shards and an evaluator (make run's)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_curve import Judge  # noqa: E402
from quality import REPO, git_commit, public_command  # noqa: E402

from vgan.util.io import write_json  # noqa: E402


def gaussian_blur(clips, sigma: float):
    """Each frame blurred by a 5x5 Gaussian of ``sigma`` pixels (edges replicated)."""
    import torch.nn.functional as F

    from vgan.metrics.prediction import gaussian_window

    kernel = gaussian_window(5, sigma).to(clips.dtype)[None, None].repeat(clips.shape[1], 1, 1, 1)
    frames = clips.transpose(1, 2).flatten(0, 1)  # (N * T, C, H, W)
    blurred = F.conv2d(F.pad(frames, (2, 2, 2, 2), mode="replicate"), kernel, groups=clips.shape[1])
    return blurred.unflatten(0, (clips.shape[0], clips.shape[2])).transpose(1, 2)


def changes() -> dict:
    """name -> function of clips (N, C, T, H, W) in [-1, 1]."""
    import torch
    import torch.nn.functional as F

    def contrast(scale):  # the generators' last layer is a tanh: a smaller pre-activation, fainter strokes
        return lambda clips: torch.tanh(torch.atanh(clips.clamp(-0.999, 0.999)) * scale)

    return {
        "as they are": lambda clips: clips,
        "Gaussian blur, sigma 0.5 px": lambda clips: gaussian_blur(clips, 0.5),
        "Gaussian blur, sigma 0.7 px": lambda clips: gaussian_blur(clips, 0.7),
        "3x3 box blur": lambda clips: F.avg_pool3d(clips, (1, 3, 3), 1, (0, 1, 1), count_include_pad=False),
        "contrast: tanh(0.8 atanh x)": contrast(0.8),
        "contrast: tanh(0.6 atanh x)": contrast(0.6),
        "strokes thinned (3x3 minimum)": lambda clips: -F.max_pool3d(-clips, (1, 3, 3), 1, (0, 1, 1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a folder with shards and an evaluator")
    args = parser.parse_args()
    from vgan.data.loader import real_clips

    judge = Judge(args.workdir)
    seed = judge.params.evaluate.seed + 1  # not the baselines' val clips
    clips, _ = real_clips(judge.params.shards.out_dir, "val", limit=judge.n, seed=seed)
    rows = []
    print(f"{'real val clips':32}  {'fd_evaluator [95 % CI]':>24}  {'first frame repeated':>20}")
    for name, change in changes().items():
        score = judge.score_clips(change(clips))
        rows.append({"clips": name, **score})
        print(f"{name:32}  {score['fd_evaluator']:8.2f} [{score['fd_evaluator_ci_low']:6.1f}, "
              f"{score['fd_evaluator_ci_high']:6.1f}]  {score['appearance_fd']:20.2f}", flush=True)
    out = REPO / "bench" / "results" / "evaluator_sensitivity.json"
    write_json(out, {"command": public_command("bench/evaluator_sensitivity.py", sys.argv[1:]),
                     "date": time.strftime("%Y-%m-%d"), "git_commit": git_commit(), "n": judge.n,
                     "static": judge.baseline("static"), "shuffled": judge.baseline("shuffled"), "rows": rows},
               indent=1)
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
