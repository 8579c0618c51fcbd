"""The whole chain as a Prefect flow: one task per DVC stage, each running ``dvc repro <stage>``.

DVC stays the only cache (a finished stage is skipped, so re-running a failed flow resumes) and
``dvc.lock`` stays true. Each stage's output goes line by line into its task run's logs while it runs
(and into ``.dvc/tmp/flow-logs/``); each stage waits on the one before, so the run's graph draws the
stage order. Publishes a markdown artifact (stages, metrics from ``metrics/evaluate.json``, champion
vs challenger from the registry) and a keyed table artifact (headline metrics beside their baselines,
the registry decision) whose history compares runs. Run it with
``python -m flows.pipeline`` (no server needed: Prefect starts a temporary one) or against a server
with ``PREFECT_API_URL`` set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.utilities.annotations import quote

from flows.commands import STDERR_TAIL_LINES, dvc, run_command
from vgan import QUIET_ENV
from vgan.params import dotted

# One retry layer per call path: the stages retry their own network calls (downloads resume with HTTP Range,
# `data.download_retries`; MLflow calls back off in vgan.tracking.runs), so the flow runs each stage once (a retry
# here would multiply those budgets). DVC's transfers (flows.retrain) have no layer of ours and retry there.
# Per-stage wall-clock limits (seconds); train's follows train.max_minutes when that is set.
STAGE_TIMEOUTS_S = {"fetch": 3600, "shards": 3600, "train": 24 * 3600, "sample": 1800, "evaluator": 3600,
                    "evaluate": 3600, "register": 1800}
DEFAULT_TIMEOUT_S = 6 * 3600
METRICS_TABLE_KEY = "vgan-pipeline-metrics"


class StageFailed(RuntimeError):
    """A DVC stage exited non-zero or ran past its time limit."""


def stage_names(repo: Path) -> list[str]:
    """Stages of ``dvc.yaml`` in file order (which lists them upstream first)."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text()) or {}
    return list((spec.get("stages") or {}).keys())


def stage_timeout(stage: str, repo: Path) -> float:
    if stage == "train":
        minutes = _param(repo, "train", "max_minutes")
        if minutes:
            return float(minutes) * 60 * 1.5 + 600  # the budget plus room for data loading and export
    return STAGE_TIMEOUTS_S.get(stage, DEFAULT_TIMEOUT_S)


def _param(repo: Path, group: str, key: str):
    path = repo / "params.yaml"
    if not path.exists():
        return None
    tree = yaml.safe_load(path.read_text()) or {}
    return (tree.get(group) or {}).get(key)


def _artifact_key(text: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")



def _failure_artifact(stage: str, command: str, result: dict) -> None:
    why = f"ran past its {result['limit_s']:.0f} s limit" if result["timed_out"] else f"exited {result['returncode']}"
    create_markdown_artifact(
        key=f"failed-{_artifact_key(stage)}",
        markdown=f"# Stage `{stage}` failed\n\n`{command}` {why} after {result['seconds']} s.\n\n"
                 f"## stderr (last {STDERR_TAIL_LINES} lines)\n\n```\n{result['stderr_tail'] or '(empty)'}\n```\n\n"
                 f"## stdout (last lines)\n\n```\n{result['stdout_tail'] or '(empty)'}\n```\n",
        description=f"why stage {stage} failed")


def _last_error_line(result: dict) -> str:
    """The stage's own last line of error output, not DVC's "failed to reproduce" wrapper around it."""
    lines = [line for line in (result["stderr_tail"] or result["stdout_tail"] or "no output").splitlines()
             if line.strip()]
    own = [line for line in lines if not line.startswith("ERROR: failed to reproduce")]
    return (own or lines or ["no output"])[-1]


@task(name="dvc-stage", task_run_name="{stage}")
def run_stage(stage: str, repo: str, timeout_s: float, pipeline_id: str) -> dict:
    """``dvc repro <stage>``: runs it when its deps/params changed, skips it otherwise."""
    logger = get_run_logger()
    argv = dvc("repro", stage)
    result = run_command(argv, Path(repo), f"stage-{stage}", timeout_s, env={"VGAN_PIPELINE_ID": pipeline_id},
                         log=logger.info)
    result["limit_s"] = timeout_s
    if result["returncode"] != 0:
        _failure_artifact(stage, f"dvc repro {stage}", result)
        last = _last_error_line(result)
        reason = "timed out" if result["timed_out"] else f"exit code {result['returncode']}"
        raise StageFailed(f"stage {stage} failed ({reason}): {last}")
    skipped = f"Stage '{stage}' didn't change, skipping" in result["stdout"]
    logger.info("stage %s %s in %.1f s", stage, "skipped (up to date)" if skipped else "ran", result["seconds"])
    return {"stage": stage, "status": "skipped" if skipped else "ran", "seconds": result["seconds"]}


def stage_task(stage: str):
    """The task for one stage, named for it; it runs once (the stage retries its own I/O) within a time limit."""
    return run_stage.with_options(name=f"stage-{stage}")


# --- report -----------------------------------------------------------------------------------

def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def metrics_markdown(repo: Path) -> str:
    path = repo / "metrics" / "evaluate.json"
    if not path.exists():
        return "_no metrics/evaluate.json yet_"
    rows = dotted(json.loads(path.read_text()))
    table = "| metric | value |\n|---|---|\n" + "\n".join(f"| {key} | {_fmt(value)} |" for key, value in rows.items())
    baselines = repo / "metrics" / "evaluate_baselines.json"
    if baselines.exists():  # the sentence placing the model among the baselines (the table is in the file)
        table = f"{json.loads(baselines.read_text())['standing']}\n\n{table}"
    return table


def registry_markdown(summary: dict) -> str:
    head = f"Model `{summary['name']}`, primary metric `{summary['metric']}` ({summary['direction']}).\n\n"
    table = ("| alias | version | " + summary["metric"] + " | decision | reason | quality gate | git commit |\n"
             "|---|---|---|---|---|---|---|\n")
    for alias in ("champion", "challenger"):
        record = summary.get(alias)
        if record is None:
            table += f"| {alias} | none | | | | | |\n"
        else:
            table += (f"| {alias} | {record['version']} | {_fmt(record['value'])} | {record['decision']} | "
                      f"{record['reason'].replace('|', '/')} | {record.get('gate', '')} | {record['git_commit'][:12]} |\n")
    return head + table


def metrics_table(repo: Path) -> list[dict]:
    """Table rows: each headline metric of metrics/evaluate.json (``model``) beside the baselines' values of it."""
    from vgan.metrics.catalog import BASELINE_NAMES, baseline_key

    path = repo / "metrics" / "evaluate.json"
    if not path.exists():
        return []
    metrics = dotted(json.loads(path.read_text()))
    baselines = repo / "metrics" / "evaluate_baselines.json"
    scores = json.loads(baselines.read_text())["scores"] if baselines.exists() else {}  # every baseline, every metric
    baseline_keys = {baseline_key(name, key) for name in BASELINE_NAMES for key in metrics}
    headline = [key for key, value in metrics.items() if key not in baseline_keys
                and isinstance(value, (int, float)) and not isinstance(value, bool)]

    def baseline_value(name: str, key: str):
        value = metrics.get(baseline_key(name, key), (scores.get(name) or {}).get(key))
        return value if isinstance(value, (int, float)) else None

    cells = {key: {name: baseline_value(name, key) for name in BASELINE_NAMES} for key in headline}
    columns = [name for name in BASELINE_NAMES if any(row[name] is not None for row in cells.values())]
    return [{"name": key, "model": metrics[key], **{name: cells[key][name] for name in columns}} for key in headline]


def registry_rows(repo: Path) -> list[dict]:
    """Table rows: what ``vgan register`` decided for this run's version (metrics/register.json)."""
    path = repo / "metrics" / "register.json"
    if not path.exists():
        return []
    decision = json.loads(path.read_text())
    alias = "champion" if decision.get("champion_version") == decision["version"] else "challenger"
    values = {"registered model": decision["name"], "version": decision["version"], "alias": alias,
              "decision": "promoted" if decision["promoted"] else "rejected", "reason": decision["reason"]}
    return [{"name": name, "registry": value} for name, value in values.items()]


def results_table(repo: Path, with_registry: bool) -> list[dict]:
    """One table for the artifact: the metric rows, then the registry rows, every row with every column.

    The registry's values get their own, last column: a long reason there leaves the baselines' columns
    (narrow numbers) in view instead of pushing them off the page.
    """
    rows = metrics_table(repo) + (registry_rows(repo) if with_registry else [])
    columns = list(dict.fromkeys(column for row in rows for column in row))
    return [{column: row.get(column) for column in columns} for row in rows]


@task(name="report")
def publish_report(repo: str, stage_results: list[dict], with_registry: bool) -> dict:
    """Artifacts: markdown (stages, metrics, champion vs challenger read through vgan.tracking.registry) and a
    table (metrics beside their baselines, the registry decision)."""
    repo_path = Path(repo)
    stages_md = "| stage | status | seconds |\n|---|---|---|\n" + "\n".join(
        f"| {r['stage']} | {r['status']} | {r['seconds']} |" for r in stage_results)
    metrics_md = metrics_markdown(repo_path)
    markdown = f"# vgan pipeline\n\n## Stages\n\n{stages_md}\n\n## Metrics (metrics/evaluate.json)\n\n{metrics_md}\n"
    summary = None
    if with_registry:
        summary = registry_summary(repo_path)
        markdown += f"\n## Registry: champion vs challenger\n\n{registry_markdown(summary)}\n"
    create_markdown_artifact(key="vgan-pipeline-report", markdown=markdown, description="metrics and registry")
    table = results_table(repo_path, with_registry)
    if table:  # one keyed table per run: the artifact's history compares runs
        create_table_artifact(table=table, key=METRICS_TABLE_KEY,
                              description="headline metrics (model and baselines) and the registry decision")
    return {"markdown": markdown, "registry": summary}


def registry_summary(repo: Path, overrides: list[str] | None = None) -> dict:
    """Read the registry for the repo's params (mlflow stays inside vgan).

    overrides: ``key.path=value`` assignments to params.yaml (as ``dvc exp run -S`` takes them) that the
    registry name may depend on; assignments to other files (``file.yaml:key=value``) are left out.
    """
    previous = Path.cwd()
    os.chdir(repo)  # the default store and params.yaml are relative to the repo
    try:
        from vgan.params import load_params
        from vgan.tracking import registry

        to_params = [item for item in overrides or [] if ":" not in item.split("=", 1)[0]]
        return registry.registry_summary(load_params(repo / "params.yaml", to_params))
    finally:
        os.chdir(previous)


# --- the flow ---------------------------------------------------------------------------------

@flow(name="vgan-pipeline", log_prints=True)
def pipeline(repo: str = ".", stages: list[str] | None = None, pipeline_id: str | None = None) -> dict:
    """Reproduce the DVC stages in order (all of dvc.yaml by default), then publish the report."""
    from prefect.runtime import flow_run

    repo_path = Path(repo).resolve()
    chosen = stages or stage_names(repo_path)
    pipeline_id = pipeline_id or os.environ.get("VGAN_PIPELINE_ID") or str(flow_run.id or f"local-{os.getpid()}")
    results = []
    for stage in chosen:
        # waiting on the previous stage records the edge, so the run's graph draws the stage order
        results.append(stage_task(stage)(stage, str(repo_path), stage_timeout(stage, repo_path), pipeline_id,
                                         wait_for=results[-1:]))
    # quoted: the report reads every stage's row but follows only the last stage in the graph
    report = publish_report(str(repo_path), quote(results), with_registry="register" in chosen, wait_for=results[-1:])
    return {"stages": results, "pipeline_id": pipeline_id, "registry": report["registry"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.pipeline", description=pipeline.description)
    parser.add_argument("--repo", default=".", help="the git+DVC repository (default: .)")
    parser.add_argument("--stage", dest="stages", action="append", help="run only these stages (repeatable)")
    args = parser.parse_args(argv)
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    # checked before Prefect starts a server: a wrong --repo or --stage is one line, not a failed flow run
    repo = Path(args.repo)
    if not (repo / "dvc.yaml").is_file():
        print(f"{repo.resolve()} has no dvc.yaml; pass --repo", file=sys.stderr)
        return 2
    unknown = sorted(set(args.stages or []) - set(stage_names(repo)))
    if unknown:
        print(f"no stage {', '.join(unknown)} in {repo.resolve() / 'dvc.yaml'}; it has {', '.join(stage_names(repo))}",
              file=sys.stderr)
        return 2
    state = pipeline(repo=args.repo, stages=args.stages, return_state=True)
    if not state.is_completed():
        print(f"pipeline {state.name}: {state.message}", file=sys.stderr)
        return 1
    result = state.result()
    for row in result["stages"]:
        print(f"{row['stage']:10s} {row['status']:8s} {row['seconds']:8.1f} s")
    if result["registry"] and result["registry"].get("champion"):
        champion = result["registry"]["champion"]
        print(f"champion: {result['registry']['name']} v{champion['version']} ({champion['reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
