"""Does the EMA generator beat the raw one? Both weights of the same checkpoints, scored alike.

A run of `bench/quality.py` or `bench/learning_curve.py` leaves its checkpoints in its work folder (each holds the raw
generator and its exponential moving average); this scores both at the steps asked for, with the same evaluator, n and
real sets as the learning curves (`learning_curve.Judge`), prints a table and writes `bench/results/ema_vs_raw_<name>.json`.

    python bench/ema_vs_raw.py --workdir <folder> --steps 3500 4000 4250 --name tgan_decay_s0
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a work folder with a run's checkpoints")
    parser.add_argument("--steps", type=int, nargs="+", required=True, help="the checkpoints' steps to score")
    parser.add_argument("--name", required=True, help="names the results file")
    args = parser.parse_args()

    runs = sorted((args.workdir / "checkpoints").glob("*/"))
    if len(runs) != 1:
        parser.error(f"{args.workdir}/checkpoints holds {len(runs)} runs' checkpoints; expected one")
    paths = {step: runs[0] / f"step-{step:08d}.pt" for step in args.steps}
    missing = [str(step) for step, path in paths.items() if not path.exists()]
    if missing:
        parser.error(f"no checkpoint at step {', '.join(missing)} in {runs[0]}")

    judge = Judge(args.workdir)
    rows = []
    print(f"{'step':>6}  {'weights':7}  {'fd_evaluator [95 % CI]':>24}  {'first frame repeated':>20}")
    for step, path in paths.items():
        for use_ema in (True, False):
            judge.params.evaluate.use_ema = use_ema
            score = judge.score(path)
            rows.append({"step": step, "weights": "ema" if use_ema else "raw", **score})
            print(f"{step:6d}  {rows[-1]['weights']:7}  {score['fd_evaluator']:8.2f} [{score['fd_evaluator_ci_low']:6.1f}, "
                  f"{score['fd_evaluator_ci_high']:6.1f}]  {score['appearance_fd']:20.2f}", flush=True)
    out = REPO / "bench" / "results" / f"ema_vs_raw_{args.name}.json"
    write_json(out, {"command": public_command("bench/ema_vs_raw.py", sys.argv[1:]), "date": time.strftime("%Y-%m-%d"),
                     "git_commit": git_commit(), "static": judge.baseline("static"),
                     "shuffled": judge.baseline("shuffled"), "n": judge.n, "rows": rows}, indent=1)
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
