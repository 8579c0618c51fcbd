"""`vgan <stage>`: one thin command per pipeline stage (+ utilities).

Every stage reads params.yaml (or --params FILE) plus repeated --set key.path=value overrides,
validates them before writing anything, and reports expected failures as one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from vgan import QUIET_ENV
from vgan.util.errors import ParamsError, VganError
from vgan.util.io import write_json


# -- stages ----------------------------------------------------------------------------------------
def cmd_fetch(params, args):
    from vgan.data.fetch import fetch

    index = fetch(params)
    print(f"fetch: {len(index['videos'])} videos in {params.data.raw_dir} ({index['source']})")


def cmd_shards(params, args):
    from vgan.data.shards import build_shards

    manifest = build_shards(params)
    counts = ", ".join(f"{split}={n}" for split, n in manifest["counts"].items())
    print(f"shards: {counts} clips of {manifest['clip_shape']} in {params.shards.out_dir}; "
          f"{len(manifest['quarantine'])} inputs quarantined")


def cmd_train(params, args):
    from vgan.train.run import train

    summary = train(params, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        print(f"train: {summary['steps']} steps, {summary['videos_per_s']} videos/s, generator -> {summary['generator']}")


def cmd_sample(params, args):
    from vgan.sample import write_samples

    summary = write_samples(params, args.generator)
    print(f"sample: {summary['num_samples']} clips -> {params.sample.out_dir}/ ({summary['contact_sheet']})")


def cmd_evaluator(params, args):
    from vgan.evaluate.evaluator_stage import build_evaluator

    metrics = build_evaluator(params, progress=not args.no_progress)
    print(f"evaluator: real val accuracy {metrics['val_accuracy']:.3f} -> {params.evaluate.evaluator_path}")


def cmd_evaluate(params, args):
    from vgan.evaluate.evaluate_stage import BASELINES_FILE, evaluate

    metrics = evaluate(params, args.generator)
    print("evaluate: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float))))
    print(f"evaluate: {json.loads(BASELINES_FILE.read_text())['standing']}")


def _registry_lines(stage: str, result: dict, what: str) -> str:
    """The gate's verdict, then the champion decision: two lines."""
    champion = f"champion v{result['champion_version']}" if result["champion_version"] else "no champion"
    return (f"{stage}: {result['gate_reason']}\n"
            f"{stage}: {result['name']} v{result['version']}{what}; {champion} ({result['reason']})")


def cmd_register(params, args):
    from vgan.evaluate.evaluate_stage import BASELINES_FILE, METRICS_FILE
    from vgan.tracking import registry

    if not METRICS_FILE.exists():
        raise VganError(f"no {METRICS_FILE}; run `vgan evaluate` first")
    # the baseline table lets the registry (and a later `vgan promote`) apply the quality gate from tags alone
    baselines = json.loads(BASELINES_FILE.read_text())["scores"] if BASELINES_FILE.exists() else {}
    result = registry.register_and_promote(
        params, Path(args.generator), json.loads(METRICS_FILE.read_text()),
        [Path(p) for p in ("samples", "reports/evaluation.md", BASELINES_FILE, args.params) if Path(p).exists()],
        baselines=baselines)
    write_json("metrics/register.json", result)
    print(_registry_lines("register", result, " -> challenger"))


def cmd_promote(params, args):
    from vgan.tracking import registry

    result = registry.promote(params, version=args.version)
    print(_registry_lines("promote", result, ""))


def cmd_models(params, args):
    from vgan.models import overview

    if args.check:
        results = overview.check_models()
        print(overview.format_check(results))
        if not all(ok for _, ok, _ in results):
            raise VganError(f"{sum(not ok for _, ok, _ in results)} architecture(s) failed the check")
        return
    model, note = params.model, None
    if model.channels == "auto":  # as the train stage resolves it; before `vgan shards`, colour
        from vgan.util.io import manifest_channels, read_manifest

        try:
            channels = manifest_channels(read_manifest(params.shards.out_dir))
            note = f"model.channels auto = {channels}, from {params.shards.out_dir}'s manifest"
        except VganError:
            channels, note = 3, f"model.channels auto: no shards in {params.shards.out_dir} yet, sized for 3 channels"
        model = model.model_copy(update={"channels": channels})
    print(overview.format_table(overview.model_table(model)))
    if note:
        print(note)


def cmd_rate(params, args):
    from vgan.rating.rate import rate

    result = rate(params, rounds=args.rounds, port=args.port, host=args.host, session=args.session,
                  mlflow=False if args.no_mlflow else None)
    run = f"; MLflow run {result['run_id']}" if result["run_id"] else ""
    print(f"rate: {result['line']} -> {result['answers_file']}{run}")
    print(f"rate: the score and the protocol it was measured under -> {result['report']}")


def cmd_anomaly(params, args):
    from vgan.anomaly.anomaly_stage import METRICS_FILE, REPORT_FILE, detect

    metrics = detect(params)
    aucs = ", ".join(f"{kind} {row['auc_model']} (frame difference {row['auc_frame_difference']})"
                     for kind, row in metrics.get("types", {}).items())
    print(f"anomaly: {metrics['num_clips']} clips scored -> {params.anomaly.out_dir}/clips.csv, {METRICS_FILE}, "
          f"{REPORT_FILE}" + (f"; ROC AUC {aucs}" if aucs else ""))


STAGES = {
    "fetch": (cmd_fetch, "download or synthesise raw videos into data.raw_dir"),
    "shards": (cmd_shards, "decode, resize and clip raw videos into WebDataset shards"),
    "train": (cmd_train, "train the GAN (resumes from the last checkpoint)"),
    "sample": (cmd_sample, "write GIF/MP4 samples and a PNG contact sheet"),
    "evaluator": (cmd_evaluator, "train the evaluator classifier on real train clips"),
    "evaluate": (cmd_evaluate, "compute metrics of generated vs real val clips"),
    "register": (cmd_register, "log the generator to MLflow, register it, promote if better"),
    "promote": (cmd_promote, "re-run the champion/challenger decision for a registered version"),
    "models": (cmd_models, "list the model zoo (--check: forward/backward of every architecture)"),
    "rate": (cmd_rate, "human evaluation: serve a local page of clip pairs (which is real? which model is more "
                       "realistic?), record the answers, score them with a confidence interval"),
    "anomaly": (cmd_anomaly, "score clips (val shards or a folder of videos) by a predictor's error, with injected "
                             "anomalies and ROC AUC per type (not a DVC stage: needs model.name=predictor)"),
}


# The params groups each stage reads, as dvc.yaml lists them (a test keeps the two equal), and the stage
# that reads each group: a --set on another stage's group changes nothing here but this stage's MLflow tags.
STAGE_PARAM_GROUPS = {"fetch": ("data",), "shards": ("shards",), "train": ("model", "train"), "sample": ("sample",),
                      "evaluator": ("evaluate",), "evaluate": ("evaluate",), "register": ("registry",)}
# single keys of another group that a stage also reads, as dvc.yaml lists them: a paper preset sets the clip size
STAGE_PARAM_KEYS = {"fetch": ("model.preset",), "shards": ("model.preset",)}
GROUP_STAGE = {"data": "fetch", "shards": "shards", "model": "train", "train": "train", "sample": "sample",
               "evaluate": "evaluate", "registry": "register", "rate": "rate"}


def foreign_overrides(stage: str, overrides: list[str]) -> list[str]:
    """One note per --set this stage does not act on: a parameter of an upstream or downstream stage.

    Locations (``*_dir``, ``*_path``, ``*_url``) and ``data.source`` are read across stages, so they pass."""
    if stage not in STAGE_PARAM_GROUPS:
        return []
    notes = []
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        group, _, name = key.partition(".")
        if group in STAGE_PARAM_GROUPS[stage] or group not in GROUP_STAGE or key == "data.source" \
                or key in STAGE_PARAM_KEYS.get(stage, ()) \
                or name.endswith(("_dir", "_path", "_url")):
            continue
        owner = GROUP_STAGE[group]
        notes.append(f"--set {key} is a parameter of `vgan {owner}`, which this stage does not read (it reads "
                     f"{', '.join(STAGE_PARAM_GROUPS[stage])}); run `vgan {owner}` with it, or `dvc repro` "
                     f"after setting it in params.yaml")
    return notes


def check_outputs(stage: str, params, allowed: bool) -> None:
    """A stage output outside the current folder (the project): a relative path that climbs out (a typo such as
    ``sample.out_dir=../../x``) is refused unless --allow-outside; an absolute one, written on purpose, is
    announced. Either way nothing lands in someone else's folder without a word."""
    from vgan.params import outputs_outside

    for key, path in outputs_outside(params, stage):
        where = os.path.abspath(path)
        if not os.path.isabs(path) and not allowed:
            raise ParamsError(f"{key} = {path!r} climbs out of the project ({os.getcwd()}) to {where}; pass "
                              f"--allow-outside if that is meant")
        print(f"vgan {stage}: note: {key} writes outside the project, to {where}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from vgan.params import STAGE_OUTPUTS

    parser = argparse.ArgumentParser(prog="vgan", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"vgan {__import__('vgan').__version__}")
    parser.add_argument("--debug", action="store_true", default=os.environ.get("VGAN_DEBUG", "") not in ("", "0"),
                        help="on an error, print the full traceback after the one-line message (or set VGAN_DEBUG=1)")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")
    for name, (_, help_text) in STAGES.items():
        stage = sub.add_parser(name, help=help_text, description=help_text)
        stage.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        stage.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                           help="override one parameter, e.g. --set train.steps=100 (repeatable)")
        if name in STAGE_OUTPUTS:
            stage.add_argument("--allow-outside", action="store_true",
                               help="let a relative output path climb out of the current folder (the project), "
                                    f"e.g. {STAGE_OUTPUTS[name][0]}=../elsewhere; without it that is refused (an "
                                    "absolute path outside is announced)")
        if name in ("train", "evaluator"):
            stage.add_argument("--no-progress", action="store_true", help="no progress bar")
        if name in ("sample", "evaluate", "register"):
            stage.add_argument("--generator", default="models/generator.pt", help="generator file")
        if name == "promote":
            stage.add_argument("--version", type=int, default=None, help="model version (default: latest)")
        if name == "anomaly":
            stage.epilog = ("reads anomaly.* in params.yaml: generator (a predictor's generator.pt), input (shards: "
                            "the split of shards.out_dir | folder: video files under anomaly.folder), inject, types "
                            "(teleport freeze reverse identity noise), fraction, seed; writes "
                            "<anomaly.out_dir>/clips.csv and frames.csv, metrics/anomaly.json, reports/anomaly.md "
                            "and reports/anomaly.png")
        if name == "models":
            stage.add_argument("--check", action="store_true", help="forward+backward every architecture on CPU")
        if name == "rate":
            stage.epilog = ("Mode real (rate.mode): pairs of a generated clip (rate.samples_dir, `vgan sample`'s GIFs) "
                            "and a real one (rate.real_split of shards.out_dir); the score is the fool rate. Mode "
                            "models: pairs from rate.samples_dir (A) and rate.other_dir (B); the score is the "
                            "preference for A. Answers go to <rate.out_dir>/<session>/answers.jsonl as they come; "
                            "the same command resumes a session.")
            stage.add_argument("--rounds", type=int, default=None, help="pairs to rate (default: rate.rounds)")
            stage.add_argument("--port", type=int, default=None, help="port to listen on, 0 = any free one "
                                                                      "(default: rate.port)")
            stage.add_argument("--host", default=None, help="address to listen on (default: rate.host, 127.0.0.1)")
            stage.add_argument("--session", default=None, help="session folder name under rate.out_dir "
                                                               "(default: <mode>-seed<seed>)")
            stage.add_argument("--no-mlflow", action="store_true", help="do not log the rating to MLflow")
    return parser


# Stages that compute in floats with torch: their thread count is pinned too (vgan/util/cpu.py).
TORCH_STAGES = ("train", "sample", "evaluator", "evaluate", "register", "models", "anomaly")


def main(argv: list[str] | None = None) -> int:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    args = build_parser().parse_args(argv)
    handler, _ = STAGES[args.stage]
    try:
        from vgan.params import load_params
        from vgan.util.cpu import pin_cpu_math, pin_threads

        pin_cpu_math()  # before the first torch operation: the CPU libraries read it once
        params = load_params(args.params, args.overrides)
        for note in foreign_overrides(args.stage, args.overrides):
            print(f"vgan {args.stage}: note: {note}", file=sys.stderr)
        check_outputs(args.stage, params, getattr(args, "allow_outside", False))
        if args.stage in TORCH_STAGES:
            pin_threads()
        handler(params, args)
    except VganError as exc:
        print(f"vgan {args.stage}: error: {exc}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"vgan {args.stage}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
