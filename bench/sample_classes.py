"""Which digits a generator makes: the evaluator's class of each of n generated clips, beside n real val clips.

    python bench/sample_classes.py --workdir <folder> <generator.pt or checkpoint> [...]

The work folder holds the shards and the evaluator (as `bench/learning_curve.py` uses); n is the evaluation size and
the clips are those `vgan evaluate` scores (EMA weights, the evaluation seed). For each set: how many clips the
evaluator puts in each class (a generator that makes a few digits for every latent has collapsed in part) and its
mean top probability (how sure it is; real clips score about 0.96). Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def classes(judge, clips) -> tuple[list[int], float]:
    """Clips per evaluator class and the mean top class probability."""
    import numpy as np

    from vgan.evaluate.evaluate_stage import _embed

    _, probs = _embed(judge.net, clips, judge.params.evaluate.batch_size)
    counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
    return counts.tolist(), round(float(probs.max(axis=1).mean()), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("files", nargs="+", help="models/generator.pt or checkpoints")
    parser.add_argument("--workdir", type=Path, required=True, help="work folder with the shards and the evaluator")
    args = parser.parse_args()
    from learning_curve import Judge

    from vgan.data.loader import real_clips

    judge = Judge(args.workdir)
    cfg = judge.params.evaluate
    real, _ = real_clips(judge.params.shards.out_dir, "val", limit=judge.n, seed=cfg.seed)
    rows = [("real val clips", *classes(judge, real))]
    for path in args.files:
        rows.append((path, *classes(judge, judge.clips(path))))
    print(f"n = {judge.n} clips per set")
    for name, counts, top in rows:
        print(f"{name}\n  clips per class {counts}  mean top probability {top}")


if __name__ == "__main__":
    main()
