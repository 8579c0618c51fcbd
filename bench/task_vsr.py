"""Video super-resolution (model.name=vsr) and frame interpolation (model.name=interp) against their baselines.

    .venv/bin/python bench/task_vsr.py                        # both tasks, 600 steps each (CPU: minutes each)
    .venv/bin/python bench/task_vsr.py --tasks vsr --steps 50 # a quick look
    .venv/bin/python bench/task_vsr.py --workdir /tmp/w       # reuse a folder's data and evaluator if there

Everything runs through the real stages in a work folder with the repository's params.yaml: `vgan fetch`,
`vgan shards` and `vgan evaluator` once (skipped where the folder already has their outputs), then per task
`vgan train` (fixed step budget, the model's recommended objective: L1 reconstruction + a small adversarial
weight), `vgan evaluate` and `vgan sample`. Criteria: super-resolution beats bicubic upscaling and interpolation
beats linear blending, each on PSNR (interpolation: of the in-between frames) and on the evaluator-space Fréchet
distance.
Writes bench/results/task_vsr_<device>.json and the side-by-side frames in docs/results/task_{vsr,interp}.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vgan.util.io import write_json  # noqa: E402
from vgan.models.zoo import recommended_overrides  # noqa: E402

from quality import git_commit, public_command, run_stage, sets  # noqa: E402  (bench/, beside this file)

# model.name: (capability, baseline(s) to beat, [(measure, metric key, higher is better)], metrics the criterion
# needs beaten, baselines shown); bench/task_inpaint.py runs its task with this file's code
TASKS = {
    "vsr": ("video super-resolution", "bicubic", [
        ("PSNR dB (higher is better)", "psnr", True), ("SSIM (higher is better)", "ssim", True),
        ("evaluator-space Fréchet distance (lower is better)", "fd_evaluator", False),
        ("fd_motion (lower is better)", "fd_motion", False)], ("psnr", "fd_evaluator"), ("bicubic", "nearest")),
    "interp": ("frame interpolation", "linear_blend", [
        ("PSNR dB of in-between frames (higher is better)", "psnr", True),
        ("SSIM of in-between frames (higher is better)", "ssim", True),
        ("fd_motion (lower is better)", "fd_motion", False),
        ("evaluator-space Fréchet distance (lower is better)", "fd_evaluator", False)], ("psnr", "fd_evaluator"),
        ("linear_blend", "repeat")),
}
SHEETS = {"vsr": "super_resolution_sheet", "interp": "frame_interpolation_sheet"}  # the side-by-side PNG's kind


def prepare(workdir: Path) -> None:
    """This checkout's params.yaml; data and evaluator through the real stages, unless the folder has them."""
    shutil.copyfile(REPO / "params.yaml", workdir / "params.yaml")
    if not (workdir / "data/raw/index.json").exists():
        run_stage(workdir, "fetch")
    if not (workdir / "data/shards/manifest.json").exists():
        run_stage(workdir, "shards")
    if not (workdir / "models/evaluator.pt").exists():
        run_stage(workdir, "evaluator")


def train_and_judge(workdir: Path, name: str, overrides: list[str]) -> dict:
    shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
    shutil.rmtree(workdir / "samples", ignore_errors=True)
    train_s = run_stage(workdir, "train", "--no-progress", *sets(overrides))
    run_stage(workdir, "evaluate", *sets(overrides))
    run_stage(workdir, "sample", *sets(overrides + ["sample.mp4=false"]))
    return {"train_seconds": round(train_s, 1), "metrics": json.loads((workdir / "metrics/evaluate.json").read_text()),
            "train": json.loads((workdir / "metrics/train.json").read_text()),
            "index": json.loads((workdir / "samples/index.json").read_text())}


def rows_of(spec: tuple, metrics: dict) -> list[dict]:
    """One row per measure of a task (``spec``: an entry of ``TASKS``); a criterion passes where the model beats
    every baseline it names."""
    capability, beat, measures, criteria, baselines = spec
    beat = (beat,) if isinstance(beat, str) else tuple(beat)
    table = metrics["task_baselines"]
    rows = []
    for measure, key, higher in measures:
        model, bests = table["model"][key], [table[name][key] for name in beat]
        criterion = f"beats {' and '.join(beat)}" if key in criteria else "reported"
        better = model is not None and None not in bests and all(model > best if higher else model < best
                                                                   for best in bests)
        rows.append({"capability": capability, "measure": measure, "model": model,
                     "baselines": {base: table[base][key] for base in baselines}, "higher_is_better": higher,
                     "criterion": criterion, "passes": bool(better) if key in criteria else None})
    return rows


def main(bench: str = "vsr", tasks: dict = TASKS, sheets: dict = SHEETS, doc: str = __doc__, steps: int = 600,
         batch_size: int = 8) -> None:
    """Parse the command line, train and judge each task of ``tasks``, write bench/results/task_<bench>_<device>.json."""
    import torch

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(tasks), choices=list(tasks))
    parser.add_argument("--steps", type=int, default=steps, help="training steps per task")
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--width", type=int, default=16, help="model.width (network and discriminator)")
    parser.add_argument("--blocks", type=int, default=2, help="model.<task>.blocks")
    parser.add_argument("--workdir", type=Path, default=None, help="reuse this folder (default: a fresh temp one)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra override for every stage (repeatable), after the recommended objective")
    parser.add_argument("--out", type=Path, default=None, help="results file (default: bench/results/task_<name>_"
                                                                "<device>.json); the picture goes beside it then")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"vgan-task-{bench}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]  # the machine's load before this bench's own work (its timings are only as quiet)
    prepare(workdir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    budget = [f"train.steps={args.steps}", f"train.batch_size={args.batch_size}", f"model.width={args.width}",
              f"train.checkpoint_every={args.steps}", f"train.sample_every={args.steps}", "train.log_every=10"]
    rows, pictures, train_seconds, details = [], [], {}, {}
    for name in args.tasks:
        overrides = [f"model.name={name}", f"model.{name}.blocks={args.blocks}", *recommended_overrides(name), *budget,
                     *args.overrides]
        result = train_and_judge(workdir, name, overrides)
        train_seconds[name] = result["train_seconds"]
        rows += rows_of(tasks[name], result["metrics"])
        details[name] = {"overrides": overrides, "steps": result["train"]["steps"],
                         "metrics": {key: value for key, value in result["metrics"].items()
                                     if not isinstance(value, (dict, list))}}
        (sheet,) = [r for r in result["index"]["outputs"] if r["kind"] == sheets[name]]
        picture = (args.out.parent / f"{args.out.stem}_{name}.png" if args.out else
                   REPO / "docs/results" / f"task_{name}.png")
        shutil.copyfile(workdir / "samples" / sheet["file"], picture)
        pictures.append(str(picture.relative_to(REPO)) if picture.resolve().is_relative_to(REPO) else picture.name)

    print(f"{'capability':<24} {'measure':<50} {'model':>9}  baselines")
    for row in rows:
        bases = ", ".join(f"{base} {value:.4g}" for base, value in row["baselines"].items() if value is not None)
        verdict = {True: "PASS", False: "FAIL", None: ""}[row["passes"]]
        print(f"{row['capability']:<24} {row['measure']:<50} {row['model']:>9.4g}  {bases}  {verdict}")
    command = public_command(f"bench/task_{bench}.py", sys.argv[1:])
    results = {"task": bench, "command": command.strip(), "device": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "torch": torch.__version__, "git_commit": git_commit(),
               "date": date.today().isoformat(),
               "budget": f"{args.steps} steps per task, batch {args.batch_size}, width {args.width}, "
                         f"{args.blocks} residual blocks",
               "train_seconds": train_seconds, "rows": rows, "pictures": pictures, "runs": details,
               "note": f"1-minute load average {load:.1f} on {os.cpu_count()} cores when it started"}
    out = args.out or REPO / "bench/results" / f"task_{bench}_{device}.json"
    write_json(out, results)
    print(f"wrote {out} and {', '.join(pictures)} (work folder {workdir})")


if __name__ == "__main__":
    main()
