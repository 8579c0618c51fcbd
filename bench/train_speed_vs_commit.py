"""Steps per second of the default training, this checkout against an earlier commit, side by side in one run.

    .venv/bin/python bench/train_speed_vs_commit.py --commit 1eb99e9

Each side is the real `vgan train` stage of its own code (`git archive` of the commit, or this checkout) with its
own params.yaml (so "the default" is each commit's default), reading the same shards. Every run starts from
scratch. Start-up and the end of a run (MLflow, export) cost the same whatever the length, so each side trains
``--short`` and ``--long`` steps and the marginal rate (long - short) / (seconds long - seconds short) is its
speed. The sides alternate, ``--repeats`` times; the median counts. Writes
bench/results/train_speed_vs_<commit>_cpu.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from learning_curve import prepare_workdir  # noqa: E402
from quality import git_commit, public_command  # noqa: E402

from vgan import QUIET_ENV  # noqa: E402
from vgan.util.io import write_json  # noqa: E402


def checkout(commit: str, into: Path) -> Path:
    """The files of ``commit`` (no git state) in ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def timed_train(code: Path, workdir: Path, steps: int, scratch: Path, overrides: list[str]) -> float:
    """Seconds of one `vgan train` of ``steps`` steps from scratch with the code in ``code``."""
    checkpoints = Path(tempfile.mkdtemp(dir=scratch))
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(code)}
    args = [sys.executable, "-m", "vgan.cli", "train", "--no-progress", "--set", f"train.steps={steps}",
            "--set", f"train.checkpoint_dir={checkpoints}", "--set", "train.checkpoint_every=1000000",
            "--set", "train.sample_every=1000000", *[arg for o in overrides for arg in ("--set", o)]]
    started = time.perf_counter()
    result = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"vgan train ({code.name}) failed:\n{result.stderr[-2000:]}")
    shutil.rmtree(checkpoints)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--commit", default="1eb99e9", help="the earlier commit")
    parser.add_argument("--short", type=int, default=50)
    parser.add_argument("--long", type=int, default=350)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=REPO / ".bench-work", help="holds the shards")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a params override for this checkout's side only (e.g. the earlier commit's default "
                             "model, to compare the trainers on one configuration)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import torch

    shared = args.workdir.resolve()
    prepare_workdir(shared)
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        sides = {args.commit: checkout(args.commit, scratch / "old"), "this checkout": REPO}
        workdirs = {}
        for name, code in sides.items():
            workdir = scratch / f"work-{len(workdirs)}"
            (workdir / "data").mkdir(parents=True)
            shutil.copyfile(code / "params.yaml", workdir / "params.yaml")
            (workdir / "data/shards").symlink_to(shared / "data/shards")
            workdirs[name] = workdir
        rates = {name: [] for name in sides}
        for repeat in range(args.repeats):
            for name, code in sides.items():
                overrides = args.overrides if code == REPO else []
                short = timed_train(code, workdirs[name], args.short, scratch, overrides)
                long = timed_train(code, workdirs[name], args.long, scratch, overrides)
                rates[name].append((args.long - args.short) / (long - short))
                print(f"round {repeat + 1}: {name:14s} {args.short} steps {short:6.1f} s, {args.long} steps "
                      f"{long:6.1f} s -> {rates[name][-1]:.2f} steps/s", flush=True)
    old, new = (statistics.median(rates[name]) for name in sides)
    result = {"command": public_command("bench/train_speed_vs_commit.py", sys.argv[1:]),
              "commit": git_commit(), "against": args.commit, "date": time.strftime("%Y-%m-%d"),
              "device": {"type": "cpu", "machine": platform.machine(), "cores": os.cpu_count(),
                         "torch": torch.__version__},
              "method": f"marginal steps/s of `vgan train` between {args.short} and {args.long} steps, each side its "
                        f"own code and params.yaml, alternating, median of {args.repeats}",
              "this_checkout_overrides": args.overrides,
              "steps_per_s": {args.commit: round(old, 3), "this checkout": round(new, 3)},
              "rounds": {name: [round(r, 3) for r in values] for name, values in rates.items()},
              "ratio": round(new / old, 3)}
    print(f"\n| code | steps/s (median) |\n| --- | --- |\n| {args.commit} | {old:.2f} |\n| this checkout "
          f"({result['commit']}) | {new:.2f} |\nratio {result['ratio']:.2f}")
    suffix = "_same_model" if args.overrides else ""
    out = args.out or REPO / "bench/results" / f"train_speed_vs_{args.commit}{suffix}_cpu.json"
    write_json(out, result)
    print(f"wrote {out.relative_to(REPO) if out.resolve().is_relative_to(REPO) else out.name}")


if __name__ == "__main__":
    main()
