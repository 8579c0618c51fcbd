"""Generation quality on this machine: the default configuration on several seeds and every architecture of
the zoo on the same training budget, each judged against trivial baselines.

    .venv/bin/python bench/quality.py                      # 3 seeds of the default + the zoo on 2 seeds (hours on 2 CPU cores)
    .venv/bin/python bench/quality.py --models vgan mocogan --seeds 0 --zoo-seeds 0   # a shorter look
    .venv/bin/python bench/quality.py --append --models stylegan_v --zoo-seeds 0 1   # add/replace rows of the table
    .venv/bin/python bench/quality.py --tasks              # super-resolution, interpolation, anomaly detection
    .venv/bin/python bench/quality.py --render             # rewrite docs/results.md from bench/results/ only
    .venv/bin/python bench/quality.py --render --docs /tmp/page/results.md   # render elsewhere (notes: docs/results.md's)

Everything runs through the real stages (`vgan fetch/shards/evaluator` once, then `vgan train/evaluate/sample`
per configuration) in a work folder, with the repository's params.yaml plus overrides. The default configuration
trains exactly as `make run` does (its steps); each architecture of the zoo trains at its CPU preset
(``--set model.preset=cpu``: the shared recipe, its width, batch and steps; `vgan models` lists them) on each of
``--zoo-seeds``, so the zoo is compared at equal steps. Every run's checkpoints (every 250 steps) are scored too:
the learning curves. ``--paper-objective`` instead gives each architecture its paper's objective
(``RECOMMENDED_OVERRIDES``) on the wall-clock budget the default's first seed took (or ``--minutes``): the table
the zoo had before the presets.
Writes bench/results/quality_<device>.json, docs/results.md and contact-sheet thumbnails in docs/results/.
``--tasks`` runs ``bench/task_<name>.py`` for the tasks beyond generation (each writes
bench/results/task_<name>_<device>.json); docs/results.md shows their table below the zoo's.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from vgan import QUIET_ENV  # noqa: E402
from vgan.util.io import write_json, write_text  # noqa: E402
from vgan.models.zoo import ARCHITECTURES, recommended_overrides  # noqa: E402

from tasks_table import load_task_results, tasks_markdown  # noqa: E402  (bench/, beside this file)

TASKS = tuple(sorted(path.stem.removeprefix("task_") for path in (REPO / "bench").glob("task_*.py")))  # bench/task_<name>.py
DOCS = REPO / "docs/results.md"
CURVE_PICTURE = REPO / "docs/results/curve_default.png"  # the committed one; a page elsewhere has its own beside it
ZOO_CURVE_PICTURE = REPO / "docs/results/curve_zoo.png"
NOTES_HEADING = "\n## Notes"  # hand-written notes below the tables, kept when the tables are rewritten


def run_stage(workdir: Path, *args: str) -> float:
    """Run one `vgan` stage (this checkout's code) in ``workdir``; seconds it took. A failure stops the benchmark
    with its stderr."""
    started = time.monotonic()
    env = {**os.environ, **QUIET_ENV, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    result = subprocess.run([str(BIN / "vgan"), *args], cwd=workdir, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"vgan {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return time.monotonic() - started


def public_arg(arg: str) -> str:
    """A path into this checkout relative, any other absolute path (a work folder in a temp directory) ``<folder>``."""
    if not arg.startswith("/"):
        return arg
    path = Path(arg).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else "<folder>"


def public_command(script: str, argv: list[str]) -> str:
    """The command line as a reader reruns it from the repository root, with no machine's paths (``public_arg``);
    with ``OMP_NUM_THREADS`` first where it is set (the thread count changes the floats' summation order, so a GAN's
    trajectory: the same seed can end elsewhere)."""
    threads = os.environ.get("OMP_NUM_THREADS")
    return " ".join([*([f"OMP_NUM_THREADS={threads}"] if threads else []), f"python {script}",
                     *(public_arg(arg) for arg in argv)])


def republished(command: str, script: str = "bench/quality.py") -> str:
    """A recorded command line with its arguments made public (commands recorded before ``public_command`` named
    this machine's work folders); what precedes the script (thread count, interpreter) is kept as recorded, and a
    script name repeated after it (an earlier version of this function added one per rewrite) is dropped."""
    tokens = command.split()
    at = tokens.index(script) + 1 if script in tokens else 2
    rest = tokens[at:]
    while rest and rest[0] == script:
        rest = rest[1:]
    return " ".join(tokens[:at] + [public_arg(token) for token in rest])


def sets(overrides: list[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


def train_and_judge(workdir: Path, name: str, overrides: list[str], thumbs: Path, curve: bool = False,
                    curve_every: int | None = None) -> dict:
    """Train from scratch with ``overrides``, evaluate, sample; the row of the results table.

    curve: also score every checkpoint (every train.checkpoint_every steps, as `make run` writes them) like
    `vgan evaluate` does (bench/learning_curve.py's ``Judge``): fd_evaluator against step and training seconds;
    ``curve_every`` sets that interval (train.checkpoint_every: where a checkpoint is written, not what is learned)."""
    shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
    started = time.time()
    checkpoints = ["train.keep_checkpoints=1000"] + ([f"train.checkpoint_every={curve_every}"] if curve_every else [])
    train_s = run_stage(workdir, "train", *sets(overrides + (checkpoints if curve else [])))
    scored = score_checkpoints(workdir, started) if curve else None
    run_stage(workdir, "evaluate", *sets(overrides))
    run_stage(workdir, "sample", *sets(overrides + ["sample.mp4=false"]))
    metrics = json.loads((workdir / "metrics/evaluate.json").read_text())
    train = json.loads((workdir / "metrics/train.json").read_text())
    index = json.loads((workdir / "samples/index.json").read_text())
    thumb = thumbs / f"{name}.png"
    shutil.copyfile(workdir / "samples" / index["contact_sheet"], thumb)
    row = {"name": name, "overrides": overrides, "steps": train["steps"], "train_seconds": round(train_s, 1),
           "metrics": metrics, "contact_sheet": str(thumb.relative_to(REPO))}
    if scored is not None:
        row["curve"] = scored
    return row


def score_checkpoints(workdir: Path, started: float) -> list[dict]:
    """fd_evaluator (with its interval) of every checkpoint of the run just trained, oldest first."""
    from learning_curve import Judge  # bench/, beside this file

    from vgan.train.checkpoint import list_checkpoints

    judge = Judge(workdir)
    rows = []
    for path in list_checkpoints(next((workdir / "checkpoints").iterdir())):
        rows.append({"step": int(path.stem.split("-")[1]), "train_seconds": round(path.stat().st_mtime - started, 1),
                     **judge.score(path)})
    return rows


def appended_rows(entry: dict) -> set[tuple[str, int]]:
    """The (model, seed) rows an --append entry of the results file made (entries recorded before they named their
    seeds ran the default --zoo-seeds, 0 and 1)."""
    return {(model, seed) for model in entry["models"] for seed in entry.get("zoo_seeds", [0, 1])}


def entries_with_rows(entries: list[dict]) -> list[dict]:
    """The --append entries (oldest first) that still made some row of the table: an entry whose rows later
    entries all made again is dropped."""
    return [entry for i, entry in enumerate(entries)
            if not appended_rows(entry) <= set().union(*map(appended_rows, entries[i + 1:]))]


def headline(metrics: dict) -> dict:
    """The figures of one row: the model's fd_evaluator with its interval, and the baselines' on the same n."""
    return {"fd_evaluator": metrics.get("fd_evaluator"),
            "fd_ci": [metrics.get("fd_evaluator_ci_low"), metrics.get("fd_evaluator_ci_high")],
            "static": metrics.get("baseline_static_fd_evaluator"),
            "shuffled": metrics.get("baseline_shuffled_fd_evaluator"),
            "real_vs_real": metrics.get("baseline_real_vs_real_fd_evaluator"),
            "is_evaluator": metrics.get("is_evaluator"), "label_consistency": metrics.get("label_consistency"),
            "num_clips": metrics.get("num_clips")}


def fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def verdict(row: dict) -> str:
    fd, static, shuffled = row["fd_evaluator"], row["static"], row["shuffled"]
    if fd is None or static is None or shuffled is None:
        return "n/a"
    if fd < static:
        return "beats static" + (" and shuffled" if fd < shuffled else "")
    if fd < shuffled:
        return "beats shuffled only"
    return f"{fd / static:.1f}x static"


def markdown(results: dict) -> str:
    lines = ["# Generation quality: results", "",
             f"Made by `{results['command']}` on {results['device']} ({results['cpu_count']} cores), torch "
             f"{results['torch']}, commit {results['git_commit']}, {results['date']}.", "",
             "Every figure is the evaluator-space Fréchet distance (`fd_evaluator`, lower is better) against the "
             "same real reference clips, on the same number of clips n for the model and each baseline, with "
             "its 95 % bootstrap interval. Baselines: a static real frame repeated, real frames shuffled in "
             "time, and real clips themselves (the floor). A model that does not beat the static frame has "
             "not learned video.", "",
             "| configuration | seed | steps | train s | fd_evaluator [95 % CI] | static | shuffled | real | "
             "verdict | IS | label consistency | samples |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in results["runs"]:
        head = row["headline"]
        low, high = head["fd_ci"]
        lines.append(
            f"| {row['label']} | {row['seed']} | {row['steps']} | {row['train_seconds']:.0f} | "
            f"{fmt(head['fd_evaluator'])} [{fmt(low)}, {fmt(high)}] | {fmt(head['static'])} | "
            f"{fmt(head['shuffled'])} | {fmt(head['real_vs_real'])} | {verdict(head)} | "
            f"{fmt(head['is_evaluator'])} | {fmt(head['label_consistency'])} | "
            f"![{row['label']}]({Path(row['contact_sheet']).relative_to('docs')}) |")
    lines += ["", f"n = {results['runs'][0]['headline']['num_clips'] if results['runs'] else 'n/a'} clips per set. "
              "Contact sheets: a row per generated clip, a column per frame (first 8 clips, EMA generator).", ""]
    plain_rows = {row["name"] for row in results["runs"]}
    for entry in results.get("appended", []):
        if (entry["models"] != ["default"] and entry.get("budget") != "cpu preset"
                and not plain_rows & set(entry["models"])):
            continue  # a wall-clock table's rows, all since replaced by rows at the CPU presets
        budget = ("with the default's own train.steps" if entry["models"] == ["default"]
                  else "at their CPU presets (equal steps)" if entry.get("budget") == "cpu preset"
                  else f"on the same {entry['budget_minutes']}-minute budget")
        lines += [f"Rows {', '.join(entry['models'])}: added by `{entry['command']}` at commit {entry['git_commit']}, "
                  f"{entry['date']}, {budget}.", ""]
    lines += curves_markdown(results)
    return "\n".join(lines)


def curves(results: dict, zoo: bool = False) -> list[dict]:
    """Learning curves in bench/learning_curve.py's layout (for its ``plot``): the default's (one entry, named
    "default"), or with ``zoo`` one entry per zoo configuration; [] where no run has one."""
    groups: dict[str, list[dict]] = {}
    static = None
    for row in results["runs"]:
        if "curve" not in row or row["name"].startswith("default-seed") == zoo:
            continue
        static = static if static is not None else row["headline"]["static"]
        groups.setdefault("default" if not zoo else row["label"], []).append(
            {"seed": row["seed"], "curve": row["curve"]})
    return [{"name": name, "baselines": {"static": static}, "runs": runs} for name, runs in groups.items()]


def checkpoint_spacing(found: list[dict]) -> str:
    """The steps between scored checkpoints of these curves: "250", or "250 or 500" where runs differ."""
    spacings = sorted({run["curve"][0]["step"] for config in found for run in config["runs"] if run["curve"]})
    return " or ".join(map(str, spacings)) or "n/a"


def curves_markdown(results: dict) -> list[str]:
    from learning_curve import first_below  # bench/, beside this file

    when = lambda hit: "never" if hit is None else f"step {hit['step']} ({hit['train_seconds']:.0f} s)"  # noqa: E731
    lines = []
    for zoo, title, picture in ((False, "The default's learning curves and time to quality", CURVE_PICTURE),
                                (True, "The zoo's learning curves (CPU presets)", ZOO_CURVE_PICTURE)):
        found = curves(results, zoo)
        if not found:
            continue
        static = found[0]["baselines"]["static"]
        lines += [f"## {title}", "",
                  f"Every checkpoint of the runs above (every {checkpoint_spacing(found)} steps, EMA generator) "
                  "scored like `vgan evaluate` "
                  "scores the final one: same evaluator, same n, the same static-frame baseline. Training seconds "
                  "are wall-clock from the start of `vgan train` to the checkpoint file (start-up and checkpointing "
                  "included).", "", f"![learning curves]({picture.relative_to(REPO / 'docs')})", "",
                  "| configuration | seed | fd_evaluator at each checkpoint | first below 2x static | "
                  "first below static |", "| --- | --- | --- | --- | --- |"]
        for config in found:
            for run in config["runs"]:
                points = ", ".join(f"{fmt(point['fd_evaluator'])}" for point in run["curve"])
                lines.append(f"| {config['name']} | {run['seed']} | {points} | "
                             f"{when(first_below(run['curve'], 2 * static))} | "
                             f"{when(first_below(run['curve'], static))} |")
        lines += ["", ""]
    return lines


def write_docs(docs: Path, results: dict, notes: str) -> None:
    """docs/results.md: the zoo's table, the learning curves (and their pictures), the tasks' table (from their
    results files), the hand-written notes."""
    from learning_curve import plot  # bench/, beside this file

    for zoo, picture in ((False, CURVE_PICTURE), (True, ZOO_CURVE_PICTURE)):
        found = curves(results, zoo)
        if found:
            plot(found, docs.parent / picture.relative_to(DOCS.parent))
    write_text(docs, markdown(results) + tasks_markdown(load_task_results(REPO / "bench/results"), REPO) + notes)


def kept_notes(docs: Path) -> str:
    text = docs.read_text() if docs.exists() else ""
    return text[text.index(NOTES_HEADING):] if NOTES_HEADING in text else ""


def shown(path: Path) -> str:
    """A path as printed: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def run_tasks(names: list[str]) -> None:
    """Run each ``bench/task_<name>.py`` (its own work folder and results file); a failure stops here."""
    for name in names:
        print(f"task {name}: bench/task_{name}.py", flush=True)
        result = subprocess.run([sys.executable, str(REPO / "bench" / f"task_{name}.py")], cwd=REPO)
        if result.returncode != 0:
            raise SystemExit(f"bench/task_{name}.py failed (exit code {result.returncode})")


@contextlib.contextmanager
def append_lock(out: Path):
    """Holds an exclusive lock named after ``out`` (in the temp folder) while one --append rewrites it."""
    digest = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"vgan-quality-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="train.seed values of the default")
    parser.add_argument("--models", nargs="*", default=None,
                        help="architectures to compare with the default (default: the whole zoo; none: only seeds)")
    parser.add_argument("--zoo-seeds", type=int, nargs="+", default=[0, 1], help="train.seed values of each zoo model")
    parser.add_argument("--curve-every", type=int, default=None, metavar="STEPS",
                        help="steps between the scored checkpoints of a learning curve (default: params.yaml's "
                             "train.checkpoint_every, 250)")
    parser.add_argument("--reuse-data", action="store_true",
                        help="with --workdir: keep the shards and the evaluator an earlier run of this script made "
                             "there (the same params.yaml) instead of making them again")
    parser.add_argument("--paper-objective", action="store_true",
                        help="zoo runs with their paper's objective on a wall-clock budget instead of the CPU preset")
    parser.add_argument("--minutes", type=float, default=None,
                        help="--paper-objective: training budget of each zoo run (default: what the default's first "
                             "seed took)")
    parser.add_argument("--workdir", type=Path, default=None, help="work folder (default: a fresh temporary one)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/quality_cpu.json")
    parser.add_argument("--docs", type=Path, default=DOCS,
                        help="the results page to write; its pictures go to results/ beside it (default: docs/results.md)")
    parser.add_argument("--notes", type=Path, default=None,
                        help="the page whose hand-written notes (from '## Notes' on) are kept (default: --docs if it "
                             f"exists, else {DOCS.relative_to(REPO)})")
    parser.add_argument("--append", action="store_true",
                        help="keep the rows of --out and run only --models (at its budget_minutes unless --minutes), "
                             "replacing their rows; 'default' among them reruns the default's --seeds; notes below "
                             "the table stay")
    parser.add_argument("--tasks", nargs="*", default=None, metavar="NAME",
                        help=f"run bench/task_<name>.py for these tasks (none given: all of them: "
                             f"{' '.join(TASKS)}) and rewrite docs/results.md; the zoo is not rerun")
    parser.add_argument("--render", action="store_true",
                        help="rewrite docs/results.md from the results files in bench/results/ (nothing is run; "
                             "the results file's recorded commands are rewritten where they name machine paths)")
    args = parser.parse_args()
    if args.tasks is not None or args.render:
        unknown = sorted(set(args.tasks or []) - set(TASKS))
        if unknown:
            parser.error(f"unknown task(s) {', '.join(unknown)}; expected some of {', '.join(TASKS)}")
        if args.tasks is not None:
            run_tasks(args.tasks or list(TASKS))
        notes_from = args.notes or (args.docs if args.docs.exists() else DOCS)
        results = json.loads(args.out.read_text())
        tidied = {**results, "command": republished(results["command"]),
                  "appended": [{**entry, "command": republished(entry["command"])}
                               for entry in results.get("appended", [])]}
        if tidied != {**results, "appended": results.get("appended", [])}:  # commands as the current rules publish them
            write_json(args.out, tidied, indent=1)
        write_docs(args.docs, tidied, kept_notes(notes_from))
        print(f"wrote {shown(args.docs)}")
        return
    if args.append and not args.models:
        parser.error("--append needs --models: the architectures whose rows to add or replace")

    import torch

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vgan-quality-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "params.yaml", workdir / "params.yaml")
    thumbs = args.docs.parent / "results"
    thumbs.mkdir(parents=True, exist_ok=True)
    default_model = yaml.safe_load((REPO / "params.yaml").read_text())["model"]["name"]
    if args.reuse_data and all((workdir / made).exists() for made in ("data/shards/manifest.json",
                                                                      "models/evaluator.pt")):
        print(f"work folder {workdir}: its shards and evaluator are reused (--reuse-data)", flush=True)
    else:
        print(f"work folder {workdir}; data and evaluator first", flush=True)
        for stage in ("fetch", "shards", "evaluator"):
            print(f"  vgan {stage}: {run_stage(workdir, stage):.0f} s", flush=True)

    runs, previous, notes = [], {}, ""  # with --append, runs holds this command's rows only
    if args.append:
        previous = json.loads(args.out.read_text())
        notes = kept_notes(args.notes or args.docs)

    def replaced(row: dict) -> bool:
        """A row of the results file that this --append command reruns: a zoo model's row on one of --zoo-seeds (or
        its single row of the --paper-objective table), the default's rows if 'default' is among --models."""
        model, _, seed = row["name"].partition("-seed")
        if model == "default":
            return "default" in args.models
        return model in args.models and (args.paper_objective or not seed or int(seed) in args.zoo_seeds)

    def record(label: str, seed: int, overrides: list[str], file_name: str, curve: bool = False) -> None:
        row = train_and_judge(workdir, file_name, overrides, thumbs, curve, args.curve_every)
        row.update(label=label, seed=seed, headline=headline(row["metrics"]))
        runs.append(row)
        head = row["headline"]
        print(f"  {label:28s} seed {seed}  steps {row['steps']:5d}  train {row['train_seconds']:5.0f} s  "
              f"fd {fmt(head['fd_evaluator'])} [{fmt(head['fd_ci'][0])}, {fmt(head['fd_ci'][1])}]  "
              f"static {fmt(head['static'])}  shuffled {fmt(head['shuffled'])}  -> {verdict(head)}", flush=True)
        write_results()

    def write_results() -> None:
        command = public_command("bench/quality.py", sys.argv[1:])
        results = {"command": command, "device": platform.processor() or platform.machine(),
                   "cpu_count": os.cpu_count(), "torch": torch.__version__, "git_commit": git_commit(),
                   "date": time.strftime("%Y-%m-%d"), "default_model": default_model,
                   "budget_minutes": budget, "runs": runs}
        if args.append:  # the table's provenance stays the full run's; each appended run is listed beside it
            with append_lock(args.out):  # another --append may be writing other rows of the same file meanwhile
                current = json.loads(args.out.read_text())
                results["runs"] = [row for row in current["runs"] if not replaced(row)] + runs
                write_appended(results, current, command)
            return
        write_json(args.out, results, indent=1)
        write_docs(args.docs, results, notes)

    def write_appended(results: dict, current: dict, command: str) -> None:
        entries = [{**entry, "command": republished(entry["command"])} for entry in current.get("appended", [])]
        entries.append({"command": command, "models": args.models, "zoo_seeds": args.zoo_seeds,
                        "git_commit": results["git_commit"], "date": results["date"], "budget_minutes": budget,
                        "budget": "paper objective, wall clock" if args.paper_objective else "cpu preset"})
        appended = entries_with_rows(entries)
        results.update({key: current[key] for key in ("command", "device", "cpu_count", "torch", "git_commit",
                                                       "date", "default_model") if key in current})
        # commands recorded before public_command existed named this machine's work folders
        results["command"] = republished(results["command"])
        results["appended"] = appended
        write_json(args.out, results, indent=1)
        write_docs(args.docs, results, notes)

    budget = args.minutes
    if args.append:
        budget = budget if budget is not None else previous["budget_minutes"]
    for seed in ([] if args.append and "default" not in args.models else args.seeds):
        record(f"default ({default_model})", seed, [f"train.seed={seed}"], f"default-seed{seed}", curve=True)
    if budget is None:
        budget = round(runs[0]["train_seconds"] / 60, 2) if runs else 3.0
    models = [m for m in (ARCHITECTURES if args.models is None else args.models) if m not in (default_model, "default")]
    for model in models:
        if args.paper_objective:
            overrides = [f"model.name={model}", *recommended_overrides(model), f"train.max_minutes={budget}",
                         "train.steps=1000000", f"train.seed={args.seeds[0]}"]
            record(model, args.seeds[0], overrides, model)
            continue
        for seed in args.zoo_seeds:
            record(f"{model} (cpu preset)", seed, [f"model.name={model}", "model.preset=cpu", f"train.seed={seed}"],
                   f"{model}-seed{seed}", curve=True)
    write_results()
    print(f"wrote {shown(args.out)} and {shown(args.docs)}")


if __name__ == "__main__":
    main()
