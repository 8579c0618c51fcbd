"""What a frame-by-frame generator (TGAN, MoCoGAN) feeds its image generator, and what each frame scores.

    python bench/frame_latents.py <generator.pt or checkpoint> [...] [--workdir <folder>] [--frames 0 4 8 15]

For each file (EMA weights unless --raw; eval mode unless --train-mode), over n latents (--n): the spread (standard
deviation over the latents, averaged over features) of the image generator's input, its per-clip part (the clip or
content latent) and its per-frame part (TGAN's frame latents, MoCoGAN's motion codes) at the frames listed, the
frames' spread over the latents and over time, and TGAN's ``temporal_gain`` where the model has one. A collapsed
generator paints alike frames for every latent: a small spread over the latents. With ``--workdir`` (a work folder
holding the shards and the evaluator, as `bench/learning_curve.py` uses) each listed frame repeated over the clip is
scored like the static-frame baseline (fd_evaluator of n = the evaluation size, the clips `vgan evaluate` scores: eval
mode, the evaluation seed), beside the whole clip.
Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def spread(x) -> float:
    """Standard deviation over the first axis, averaged over the rest."""
    return round(float(x.float().std(dim=0).mean()), 4)


def describe(path: str, n: int, frames: list[int], raw: bool, train_mode: bool, judge=None) -> dict:
    import torch

    from vgan.train.generator_file import load_generator

    G, _ = load_generator(path, use_ema=not raw)
    if not hasattr(G, "frame_latents"):
        raise SystemExit(f"{path}: {type(G).__name__} does not paint its frames one at a time (TGAN, MoCoGAN do)")
    G.train(train_mode)
    z = G.sample_z(n, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        latents = G.frame_latents(z)  # (n, T, D): the per-clip part first, then the per-frame part
        clips = G(z)
    split = G.cond.out_dim
    row = {"file": path, "clip_latent": spread(latents[:, 0, :split]),
           **{f"frame_latent_t{t}": spread(latents[:, t, split:]) for t in frames},
           "frames_over_latents": spread(clips), "frames_over_time": round(float(clips.std(dim=2).mean()), 4)}
    if hasattr(G, "temporal_gain"):
        row["temporal_gain"] = round(float(G.temporal_gain.detach()), 4)
    if judge is not None:
        from vgan.evaluate.evaluate_stage import _embed

        cfg = judge.params.evaluate
        G.eval()
        scored = judge.clips(G)
        sets = {"clip": _embed(judge.net, scored, cfg.batch_size)[0]}
        for t in frames:
            still = scored[:, :, t:t + 1].expand(-1, -1, scored.shape[2], -1, -1)
            sets[f"t{t}"] = _embed(judge.net, still, cfg.batch_size)[0]
        intervals = judge._intervals(sets)
        row.update({f"fd_{name}": round(intervals[name]["fd"], 2) for name in sets})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("files", nargs="+", help="models/generator.pt or checkpoints of TGAN or MoCoGAN runs")
    parser.add_argument("--n", type=int, default=64, help="latents for the spreads")
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 4, 8, 15], help="frames to describe")
    parser.add_argument("--raw", action="store_true", help="G's own weights instead of the EMA")
    parser.add_argument("--train-mode", action="store_true", help="batch norms on the batch's statistics")
    parser.add_argument("--workdir", type=Path, help="score each listed frame repeated (shards and evaluator here)")
    args = parser.parse_args()
    judge = None
    if args.workdir is not None:
        from learning_curve import Judge

        judge = Judge(args.workdir)
    for path in args.files:
        row = describe(path, args.n, args.frames, args.raw, args.train_mode, judge)
        print(row.pop("file"))
        print("  " + "  ".join(f"{key} {value}" for key, value in row.items()), flush=True)


if __name__ == "__main__":
    main()
