"""Learning curves: fd_evaluator of a configuration against training step and seconds, and time to quality.

    .venv/bin/python bench/learning_curve.py --name default --seeds 0 1 2          # the default, 3 seeds
    .venv/bin/python bench/learning_curve.py --name mocogan --set model.name=mocogan --steps 1500
    .venv/bin/python bench/learning_curve.py --plot bench/results/curve_default_cpu.json ...   # redraw the figure

Trains with the real `vgan train` stage (this checkout's code) in a work folder that holds the shards and the
evaluator of `make run` (`vgan fetch/shards/evaluator` run there when missing), writing a checkpoint every
``--every`` steps. Each checkpoint's EMA generator (standing statistics refreshed at that step, as
`models/generator.pt` has them) is then scored like `vgan evaluate` scores a model: n generated clips against n
real train clips in the evaluator's feature space, with the bootstrap interval, beside the static-frame and the
time-shuffled baselines made of n real val clips; the same clips' first frame repeated is scored too (appearance_fd:
appearance alone, made as the static-frame baseline is made of real clips). Training seconds at a checkpoint are
the wall-clock seconds from the start of `vgan train` to that checkpoint's file (start-up included, evaluation not).
Writes bench/results/curve_<name>_<device>.json and docs/results/curve_<name>.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from quality import git_commit, public_command, run_stage, sets  # noqa: E402

from vgan.util.io import write_json  # noqa: E402


def prepare_workdir(workdir: Path) -> None:
    """params.yaml plus the shards and the evaluator (made here by the real stages when missing)."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "params.yaml", workdir / "params.yaml")
    if not (workdir / "data/shards/manifest.json").exists():
        run_stage(workdir, "fetch")
        run_stage(workdir, "shards")
    if not (workdir / "models/evaluator.pt").exists():
        run_stage(workdir, "evaluator")


class Judge:
    """Scores generators against fixed real sets: n train clips (reference), n val clips (baselines)."""

    def __init__(self, workdir: Path):
        import torch

        from vgan.data.loader import real_clips
        from vgan.evaluate.evaluate_stage import _embed, evaluation_size
        from vgan.metrics.baselines import baseline_clips
        from vgan.metrics.evaluator import load_evaluator
        from vgan.params import load_params

        self.params = load_params(workdir / "params.yaml")
        cfg = self.params.evaluate
        shards = str(workdir / self.params.shards.out_dir)
        self.params.shards.out_dir = shards
        self.n = evaluation_size(self.params)
        self.net, _ = load_evaluator(workdir / cfg.evaluator_path)
        torch.manual_seed(cfg.seed)
        reference, _ = real_clips(shards, "train", limit=self.n, seed=cfg.seed)
        val, _ = real_clips(shards, "val", limit=self.n, seed=cfg.seed)
        self.reference_features, _ = _embed(self.net, reference, cfg.batch_size)
        self.baselines = {name: _embed(self.net, clips, cfg.batch_size)[0]
                          for name, clips in baseline_clips(val, seed=cfg.seed).items() if name in ("static", "shuffled")}
        self.intervals = self._intervals({})

    def _intervals(self, extra: dict) -> dict:
        from vgan.metrics.bootstrap import frechet_bootstrap

        cfg = self.params.evaluate
        return frechet_bootstrap(self.reference_features, {**self.baselines, **extra}, cfg.bootstrap_resamples,
                                 cfg.ci_level, cfg.seed)

    def clips(self, generator):
        """The n clips `vgan evaluate` scores: ``generator`` (a file, or a loaded generator) at the evaluation seed."""
        from vgan.sample import generate
        from vgan.train.generator_file import load_generator

        cfg = self.params.evaluate
        if isinstance(generator, (str, Path)):
            generator, _ = load_generator(generator, use_ema=cfg.use_ema)
        return generate(generator, self.n, seed=cfg.seed + 1, batch_size=cfg.batch_size)

    def score(self, generator_path: Path) -> dict:
        return self.score_clips(self.clips(generator_path))

    def score_clips(self, clips) -> dict:
        """fd_evaluator of ``clips`` (N, C, T, H, W) in [-1, 1] against the reference set, and of their first frame
        repeated (appearance_fd)."""
        from vgan.evaluate.evaluate_stage import _embed
        from vgan.metrics.baselines import static_clips

        cfg = self.params.evaluate
        # appearance alone: each generated clip's first frame repeated, made as the static-frame baseline is made of
        # real clips; a generator whose frames were real would score what that baseline scores
        intervals = self._intervals({"model": _embed(self.net, clips, cfg.batch_size)[0],
                                     "appearance": _embed(self.net, static_clips(clips), cfg.batch_size)[0]})
        interval = intervals["model"]
        return {"fd_evaluator": round(interval["fd"], 3), "fd_evaluator_ci_low": round(interval["ci_low"], 3),
                "fd_evaluator_ci_high": round(interval["ci_high"], 3),
                "appearance_fd": round(intervals["appearance"]["fd"], 3)}

    def baseline(self, name: str) -> float:
        return round(self.intervals[name]["fd"], 3)


def train_curve(workdir: Path, overrides: list[str], steps: int, every: int, judge: Judge) -> list[dict]:
    """Train from scratch, checkpointing every ``every`` steps; one scored row per checkpoint."""
    from vgan.train.checkpoint import list_checkpoints

    shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
    shutil.rmtree(workdir / "plots", ignore_errors=True)
    bookkeeping = [f"train.steps={steps}", f"train.checkpoint_every={every}", f"train.sample_every={every}",
                   f"train.keep_checkpoints={steps // every + 1}"]
    started = time.time()
    run_stage(workdir, "train", *sets(overrides + bookkeeping))
    rows = []
    for path in list_checkpoints(next((workdir / "checkpoints").iterdir())):
        step = int(path.stem.split("-")[1])
        rows.append({"step": step, "train_seconds": round(path.stat().st_mtime - started, 1), **judge.score(path)})
        print(f"  step {step:6d}  {rows[-1]['train_seconds']:7.1f} s  fd_evaluator {rows[-1]['fd_evaluator']:8.2f} "
              f"[{rows[-1]['fd_evaluator_ci_low']:.1f}, {rows[-1]['fd_evaluator_ci_high']:.1f}]  "
              f"first frame repeated {rows[-1]['appearance_fd']:8.2f}", flush=True)
    return rows


def first_below(rows: list[dict], threshold: float) -> dict | None:
    """The first checkpoint whose fd_evaluator is below ``threshold`` (step and training seconds), or None."""
    for row in rows:
        if row["fd_evaluator"] < threshold:
            return {"step": row["step"], "train_seconds": row["train_seconds"]}
    return None


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = sum(len(result["runs"]) for result in results)
    many = lines > 8  # then the legend goes beside the axes, and 20 colours instead of 10 tell the lines apart
    fig, ax = plt.subplots(figsize=(10, 4.6) if many else (7, 4.2), dpi=110)
    colours = plt.get_cmap("tab20" if lines > 10 else "tab10").colors
    index = 0
    for result in results:
        for run in result["runs"]:
            label = f"{result['name']} seed {run['seed']}"
            ax.plot([r["step"] for r in run["curve"]], [r["fd_evaluator"] for r in run["curve"]], marker="o",
                    markersize=3, label=label, color=colours[index % len(colours)])
            index += 1
    static = results[0]["baselines"]["static"]
    ax.axhline(static, color="black", linestyle="--", linewidth=1, label=f"static frame ({static:.1f})")
    ax.axhline(2 * static, color="grey", linestyle=":", linewidth=1, label="2x static")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("fd_evaluator (log scale, lower is better)")
    names = sorted({r["name"] for r in results})
    ax.set_title((", ".join(names) if len(names) <= 3 else f"{len(names)} configurations") + ": learning curves",
                 fontsize=10)
    if many:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def shown(path: Path) -> str:
    return str(path.resolve().relative_to(REPO)) if path.resolve().is_relative_to(REPO) else path.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--name", default="default", help="the configuration's name in the file names and the plot")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a params override for training (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="train.seed values")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps (default: train.steps of params.yaml with the --set overrides, a preset's "
                             "included)")
    parser.add_argument("--every", type=int, default=250, help="steps between scored checkpoints")
    parser.add_argument("--workdir", type=Path, default=REPO / ".bench-work", help="work folder (shards, evaluator)")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/curve_<name>_cpu.json")
    parser.add_argument("--plot", type=Path, nargs="+", default=None, metavar="JSON",
                        help="only draw these result files into one figure (--picture)")
    parser.add_argument("--picture", type=Path, default=None, help="default: docs/results/curve_<name>.png")
    args = parser.parse_args()
    picture = args.picture or REPO / "docs/results" / f"curve_{args.name}.png"
    if args.plot:
        plot([json.loads(path.read_text()) for path in args.plot], picture)
        print(f"wrote {shown(picture)}")
        return
    import torch

    from vgan.params import load_params

    steps = args.steps or load_params(REPO / "params.yaml", args.overrides).train.steps
    workdir = args.workdir.resolve()
    prepare_workdir(workdir)
    judge = Judge(workdir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = args.out or REPO / "bench/results" / f"curve_{args.name}_{device}.json"
    result = {
        "command": public_command("bench/learning_curve.py", sys.argv[1:]),
        "name": args.name, "overrides": args.overrides, "commit": git_commit(), "date": time.strftime("%Y-%m-%d"),
        "device": {"type": device, "machine": platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__},
        "num_clips": judge.n, "baselines": {"static": judge.baseline("static"), "shuffled": judge.baseline("shuffled")},
        "runs": [],
    }
    static = result["baselines"]["static"]
    print(f"{args.name}: n = {judge.n}, static {static}, shuffled {result['baselines']['shuffled']}")
    for seed in args.seeds:
        print(f"seed {seed}:", flush=True)
        curve = train_curve(workdir, args.overrides + [f"train.seed={seed}"], steps, args.every, judge)
        result["runs"].append({"seed": seed, "curve": curve, "final": curve[-1],
                               "below_2x_static": first_below(curve, 2 * static),
                               "below_static": first_below(curve, static)})
        write_json(out, result)
    plot([result], picture)
    print("\n| seed | final step | fd_evaluator [95 % CI] | first below 2x static | first below static |")
    print("| --- | --- | --- | --- | --- |")
    for run in result["runs"]:
        final = run["final"]
        when = lambda hit: "never" if hit is None else f"step {hit['step']} ({hit['train_seconds']} s)"  # noqa: E731
        print(f"| {run['seed']} | {final['step']} | {final['fd_evaluator']} [{final['fd_evaluator_ci_low']}, "
              f"{final['fd_evaluator_ci_high']}] | {when(run['below_2x_static'])} | {when(run['below_static'])} |")
    print(f"wrote {shown(out)} and {shown(picture)}")


if __name__ == "__main__":
    main()
