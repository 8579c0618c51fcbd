"""Anomaly detection with the video predictor, against the frame-difference baseline.

    .venv/bin/python bench/task_anomaly.py                       # fresh temp folder, 300 predictor steps
    .venv/bin/python bench/task_anomaly.py --workdir /tmp/anomaly --steps 600 --seeds 0 1 2 3

In a fresh work folder with the repository's params.yaml: `vgan fetch` and `vgan shards` (the default moving
digits: 16-frame 32x32 clips), `vgan train` of the predictor (`model.name=predictor` with its recommended
objective, a fixed step budget), then `vgan anomaly` on the val shards with injected anomalies (every type,
half of the clips), once per injection seed (`--seeds`: other clips, onsets, jumps, donors and noise each time).
One row per anomaly type and scorer: the ROC AUC of the predictor's score, of its discriminator's and of the
frame-difference baseline (rules in vgan/metrics/anomaly.py), the mean over the seeds and each seed's;
criterion AUC >= 0.9 on every seed.
With ``--folder PATH`` it also scores a folder of videos labelled by name (``normal/...`` or ``normal_*.mp4`` for
the normal ones, ``<kind>/...`` or ``<kind>_*.mp4`` for each kind of anomaly; no injection: `vgan anomaly --set
anomaly.input=folder --set anomaly.folder=PATH --set anomaly.inject=false`), one row per kind and scorer.
Writes bench/results/task_anomaly_cpu.json and docs/results/task_anomaly.png (the most anomalous clips).
A work folder that already holds the shards (manifest.json) keeps them, and `vgan train` resumes from the
checkpoints it holds (so --steps 600 after --steps 300 trains 300 more; train_seconds adds up the calls).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vgan.models.predictor import RECOMMENDED_OVERRIDES  # noqa: E402

from quality import git_commit, public_command  # noqa: E402  (bench/, beside this file)

SCORERS = {"model": "predictor's relative error", "discriminator": "its discriminator"}
CRITERION = 0.9


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db",
           "DO_NOT_TRACK": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    vgan = Path(sys.executable).parent / "vgan"
    done = subprocess.run([str(vgan), *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"vgan {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    print(done.stdout.strip())
    return done.stdout


def reconstruction_trace(work: Path) -> dict:
    """The predictor's logged reconstruction loss (plots/train_losses.csv): first, lowest, last, and whether the last
    is over 4x the lowest (a diverged run: it was 1.88 against 0.02 when the heads saturated)."""
    with open(work / "plots/train_losses.csv", newline="") as handle:
        trace = [(int(row["step"]), float(row["loss_g_recon"])) for row in csv.DictReader(handle)]
    lowest = min(trace, key=lambda point: point[1])
    return {"first": trace[0][1], "lowest": lowest[1], "lowest_step": lowest[0], "last": trace[-1][1],
            "last_step": trace[-1][0], "diverged": trace[-1][1] > 4 * lowest[1]}


def score_folder(folder: Path, work: Path) -> dict:
    """`vgan anomaly` on a folder labelled by name (no injection): per kind, the clip-level ROC AUC of each scorer
    against the folder's normal videos."""
    run(["anomaly", "--set=anomaly.input=folder", f"--set=anomaly.folder={folder.resolve()}",
         "--set=anomaly.inject=false"], work)
    metrics = json.loads((work / "metrics/anomaly.json").read_text())
    if "labelled" not in metrics:
        raise SystemExit(f"{folder}: no videos labelled 'normal' and another kind by folder or file name")
    rows = {kind: {"clips": row["clips"], "predictor": row["auc_model"], "discriminator": row["auc_discriminator"],
                   "frame difference": row["auc_frame_difference"]} for kind, row in metrics["types"].items()}
    print(f"\n{'labelled kind':14s} {'clips':>5s} {'AUC predictor':>14s} {'AUC discriminator':>18s} "
          f"{'AUC frame diff':>15s}")
    for kind, row in rows.items():
        print(f"{kind:14s} {row['clips']:5d} {fmt(row['predictor']):>14s} {fmt(row['discriminator']):>18s} "
              f"{fmt(row['frame difference']):>15s}")
    where = folder.resolve()
    return {"folder": str(where.relative_to(REPO)) if where.is_relative_to(REPO) else "<folder>",
            "normal_clips": metrics["num_normal"],
            "kinds": rows, "skipped_videos": metrics["skipped_videos"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="work folder (default: a fresh temp folder)")
    parser.add_argument("--steps", type=int, default=300, help="predictor training steps")
    parser.add_argument("--batch", type=int, default=16, help="training batch size")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="anomaly injection seeds")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra `vgan train` override (repeatable), e.g. --set model.width=16")
    parser.add_argument("--folder", type=Path, default=None,
                        help="also score this folder of videos labelled by folder or file name (normal/..., <kind>/...)")
    parser.add_argument("--note", default="", help="a sentence on how this run was made (shared machine, reused shards)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/task_anomaly_cpu.json")
    parser.add_argument("--picture", type=Path, default=REPO / "docs/results/task_anomaly.png")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="vgan-anomaly-"))
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    if not (work / "data/shards/manifest.json").exists():
        run(["fetch"], work)
        run(["shards"], work)
    train_sets = ["model.name=predictor", *RECOMMENDED_OVERRIDES, f"train.steps={args.steps}",
                  f"train.batch_size={args.batch}", *args.overrides]
    # the training seconds of every call in this work folder (a resumed run adds to the earlier ones)
    ledger = work / "bench_train_seconds.json"
    calls = json.loads(ledger.read_text()) if ledger.exists() and (work / "checkpoints").exists() else []
    started = time.perf_counter()
    run(["train", "--no-progress", *(f"--set={item}" for item in train_sets)], work)
    calls.append({"steps": args.steps, "seconds": round(time.perf_counter() - started, 1)})
    ledger.write_text(json.dumps(calls))
    train_seconds = round(sum(call["seconds"] for call in calls), 1)
    per_seed = {}
    # the first seed last, so that the work folder's report and picture are its own
    for seed in [*args.seeds[1:], args.seeds[0]]:
        run(["anomaly", f"--set=anomaly.seed={seed}"], work)
        per_seed[seed] = json.loads((work / "metrics/anomaly.json").read_text())
    metrics = per_seed[args.seeds[0]]

    def mean(values):
        return None if None in values else round(sum(values) / len(values), 4)

    rows = []
    for (kind, row), (scorer, name) in itertools.product(metrics["types"].items(), SCORERS.items()):
        aucs = [per_seed[seed]["types"][kind][f"auc_{scorer}"] for seed in args.seeds]
        baselines = [per_seed[seed]["types"][kind]["auc_frame_difference"] for seed in args.seeds]
        model, baseline = mean(aucs), mean(baselines)
        rows.append({"capability": f"anomaly detection: {kind}", "measure": f"ROC AUC, {name} (higher is better)",
                     "type": kind, "scorer": scorer,
                     "model": model, "baselines": {"frame difference": baseline}, "higher_is_better": True,
                     "criterion": f"AUC >= {CRITERION} on every seed",
                     "passes": None not in aucs and min(aucs) >= CRITERION,
                     "beats_baseline": model is not None and baseline is not None and model > baseline,
                     "per_seed": {str(seed): {"model": auc, "frame difference": base}
                                  for seed, auc, base in zip(args.seeds, aucs, baselines)},
                     "anomalous_clips": row["clips"], "normal_clips": metrics["num_normal"],
                     "frame_auc": {"model": row["frame_auc_model"], "frame difference": row["frame_auc_frame_difference"]}})
    args.picture.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(work / "reports/anomaly.png", args.picture)
    labelled = score_folder(args.folder, work) if args.folder else None
    import torch

    result = {
        "task": "anomaly",
        "command": public_command("bench/task_anomaly.py", sys.argv[1:]),
        "device": "cpu", "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "platform": platform.machine(), "git_commit": git_commit(),
        "date": datetime.date.today().isoformat(),
        "budget": f"{args.steps} predictor steps, batch {args.batch} (" + " ".join(train_sets[1:]) + ")",
        "train_seconds": train_seconds,
        "train_calls": calls,
        "generator_steps": metrics["generator_steps"],
        "reconstruction_loss": reconstruction_trace(work),
        "data": f"{metrics['num_clips']} val clips of {metrics['clip_frames']} frames, "
                f"{metrics['num_clips'] - metrics['num_normal']} with an injected anomaly (fraction "
                f"{metrics['injected']['fraction']}; seeds {', '.join(map(str, args.seeds))}, picture of seed {args.seeds[0]})",
        "rules": metrics["rules"],
        "normal_frame_error": metrics.get("normal_frame_error"),
        "rows": rows,
        "summary": {"types_with_auc_ge_0.9": sorted({row["type"] for row in rows if row["passes"]}),
                    "types_with_auc_ge_0.9_per_seed": {
                        str(seed): sorted(row["type"] for row in rows if row["scorer"] == "model"
                                          and (row["per_seed"][str(seed)]["model"] or 0) >= CRITERION)
                        for seed in args.seeds},
                    "types_beating_frame_difference": sorted({row["type"] for row in rows if row["beats_baseline"]})},
        "pictures": [str(args.picture.resolve().relative_to(REPO))] if args.picture.resolve().is_relative_to(REPO) else [],
    }
    if labelled:
        result["labelled_folder"] = labelled
    passed = result["summary"]["types_with_auc_ge_0.9"]
    beaten = sorted({f"{row['type']} ({SCORERS[row['scorer']]} {row['model']:.3f} vs {row['baselines']['frame difference']:.3f})"
                     for row in rows if row["beats_baseline"]})
    errors = result["normal_frame_error"] or {}
    result["note"] = " ".join(part for part in [
        args.note.rstrip(".") + "." if args.note else "",
        f"Criteria: AUC >= {CRITERION} on every seed for {len(passed)} types ({', '.join(passed) or 'none'}; 3 wanted), "
        f"{'met' if len(passed) >= 3 and beaten else 'not met'}; per seed, the predictor's types at AUC >= "
        f"{CRITERION}: " + "; ".join(f"seed {seed} {len(kinds)} ({', '.join(kinds)})" for seed, kinds in
                                      result["summary"]["types_with_auc_ge_0.9_per_seed"].items()) +
        "; beats the frame-difference baseline on "
        f"{', '.join(beaten) or 'none'}.",
        f"Mean error on normal frames: predictor {errors.get('model')}, copying the previous frame "
        f"{errors.get('copy_last_frame')}." if errors else ""] if part)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'anomaly':10s} {'scorer':18s} {'clips':>5s} {'AUC':>6s} {'AUC frame diff':>15s}  AUC >= {CRITERION}")
    for row in rows:
        print(f"{row['type']:10s} {SCORERS[row['scorer']]:18s} {row['anomalous_clips']:5d} {fmt(row['model']):>6s} "
              f"{fmt(row['baselines']['frame difference']):>15s}  {'yes' if row['passes'] else 'no'}")
    trace = result["reconstruction_loss"]
    print(f"\nreconstruction loss: first {trace['first']:.4f}, lowest {trace['lowest']:.4f} (step "
          f"{trace['lowest_step']}), last {trace['last']:.4f} (step {trace['last_step']})"
          f"{': DIVERGED' if trace['diverged'] else ''}")
    print(f"train {train_seconds} s; {work}; -> {args.out}")


if __name__ == "__main__":
    main()
