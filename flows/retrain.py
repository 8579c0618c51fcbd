"""Scheduled retraining: pull data, run the pipeline (an experiment when parameters change), promote, push.

    python -m flows.retrain run [--repo .] [--set train.steps=2000] [--max-minutes 60]
    python -m flows.retrain serve --cron "0 3 * * *" [--repo .] [--name nightly] [--set ...]

``serve`` registers the deployment with its cron schedule on the Prefect server named by
``PREFECT_API_URL`` and runs its flow runs until stopped (Ctrl-C). Every run says whether it moved the
champion alias (version before and after): in its result, a log line, the markdown artifact
``vgan-retrain-report`` and the table ``vgan-retrain-champion`` (one row per run in its history).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.commands import dvc, run_command
from flows.pipeline import (QUIET_ENV, StageFailed, _failure_artifact, pipeline, registry_markdown, registry_summary,
                            stage_names)

TRANSFER_TIMEOUT_S = 6 * 3600
EXPERIMENT_TIMEOUT_S = 24 * 3600
PROMOTE_TIMEOUT_S = 900
CHAMPION_TABLE_KEY = "vgan-retrain-champion"


def has_remote(repo: Path) -> bool:
    """Whether a DVC remote is configured (``dvc remote list`` prints one per line)."""
    result = run_command(dvc("remote", "list"), repo, "dvc-remote-list", 120)
    return result["returncode"] == 0 and bool(result["stdout"].strip())


def _checked(step: str, command: str, result: dict) -> dict:
    if result["returncode"] != 0:
        result.setdefault("limit_s", 0)
        _failure_artifact(step, command, result)
        last = (result["stderr_tail"] or result["stdout_tail"] or "no output").splitlines()[-1]
        raise StageFailed(f"{step} failed (exit code {result['returncode']}): {last}")
    return result


RETRY_DELAYS_S = [10, 30, 60]  # VGAN_FLOW_RETRY_DELAYS="5,20,60" overrides


def retry_delays(retries: int) -> list[float]:
    """Backoff between attempts of an I/O step (seconds), from VGAN_FLOW_RETRY_DELAYS when set."""
    raw = os.environ.get("VGAN_FLOW_RETRY_DELAYS")
    delays = [float(x) for x in raw.split(",") if x.strip()] if raw else RETRY_DELAYS_S
    return (delays + delays[-1:] * retries)[:retries]


@task(name="dvc-pull", retries=3)
def pull_data(repo: str) -> str:
    """``dvc pull --allow-missing``: fetch data and outputs cached on the remote."""
    result = run_command(dvc("pull", "--allow-missing"), Path(repo), "dvc-pull", TRANSFER_TIMEOUT_S,
                         log=get_run_logger().info)
    result["limit_s"] = TRANSFER_TIMEOUT_S
    return _checked("dvc-pull", "dvc pull --allow-missing", result)["stdout_tail"]


@task(name="dvc-exp-run")
def run_experiment(repo: str, assignments: list[str], pipeline_id: str, timeout_s: float) -> dict:
    """``dvc exp run -S key=value ...``: the whole pipeline as a DVC experiment (see `dvc exp show`)."""
    argv = dvc("exp", "run", *[item for assignment in assignments for item in ("-S", assignment)])
    result = run_command(argv, Path(repo), "dvc-exp-run", timeout_s, env={"VGAN_PIPELINE_ID": pipeline_id},
                         log=get_run_logger().info)
    result["limit_s"] = timeout_s
    _checked("dvc-exp-run", " ".join(["dvc exp run", *[f"-S {a}" for a in assignments]]), result)
    return {"command": "dvc exp run", "overrides": assignments, "seconds": result["seconds"],
            "output": result["stdout_tail"]}


@task(name="promote")  # no retries here: vgan promote retries its MLflow calls
def promote_challenger(repo: str) -> str:
    """``vgan promote``: re-check the challenger against the champion (idempotent)."""
    result = run_command(["vgan", "promote"], Path(repo), "vgan-promote", PROMOTE_TIMEOUT_S, log=get_run_logger().info)
    result["limit_s"] = PROMOTE_TIMEOUT_S
    return _checked("promote", "vgan promote", result)["stdout_tail"]


@task(name="dvc-push", retries=3)
def push_outputs(repo: str) -> str:
    result = run_command(dvc("push"), Path(repo), "dvc-push", TRANSFER_TIMEOUT_S, log=get_run_logger().info)
    result["limit_s"] = TRANSFER_TIMEOUT_S
    return _checked("dvc-push", "dvc push", result)["stdout_tail"]


def _experiment_timeout(max_minutes: float | None) -> float:
    return max_minutes * 60 * 1.5 + 3600 if max_minutes else EXPERIMENT_TIMEOUT_S


def champion_change(before: dict, after: dict) -> dict:
    """Whether the run moved the ``champion`` alias: its version before and after (None: no champion)."""
    old, new = ((summary.get("champion") or {}).get("version") for summary in (before, after))
    moved = old != new
    if moved:
        sentence = f"champion of {after['name']} moved: {_version(old)} -> {_version(new)}"
    else:
        sentence = f"champion of {after['name']} unchanged: {_version(new)}"
    return {"model": after["name"], "before": old, "after": new, "moved": moved, "sentence": sentence}


def _version(number: int | None) -> str:
    return "none" if number is None else f"v{number}"


def champion_table(change: dict, after: dict) -> list[dict]:
    """One row per retraining run (a keyed table's history lists every run): the champion before and after."""
    challenger = after.get("challenger") or {}
    return [{"model": change["model"], "champion before": change["before"], "champion after": change["after"],
             "moved": change["moved"], "challenger": challenger.get("version"),
             "challenger decision": challenger.get("decision"), "reason": challenger.get("reason")}]


@flow(name="vgan-retrain", log_prints=True)
def retrain(repo: str = ".", overrides: list[str] | None = None, max_minutes: float | None = None,
            pull: bool = True, push: bool = True) -> dict:
    """Pull, reproduce (``dvc exp run`` with overrides or a time budget, else stage by stage), promote, push.

    ``max_minutes`` is the training time budget (``train.max_minutes``): training stops there and the
    generator trained so far goes on through sample, evaluate and register. The result's ``champion``
    says whether the run moved the champion alias (its version before and after).
    """
    from prefect.runtime import flow_run

    logger = get_run_logger()
    repo_path = Path(repo).resolve()
    pipeline_id = str(flow_run.id or f"local-{os.getpid()}")
    assignments = list(overrides or [])
    if max_minutes is not None:
        assignments.append(f"train.max_minutes={max_minutes}")
    with_registry = "register" in stage_names(repo_path)
    # read with the run's overrides: they may name another registry model
    before = registry_summary(repo_path, assignments) if with_registry else None
    remote = has_remote(repo_path)
    steps: dict = {"remote": remote}
    upstream: list = []  # the step each step waits on: the run's graph draws pull -> run -> promote -> push
    if pull and remote:
        pulled = pull_data.with_options(retry_delay_seconds=retry_delays(3))(str(repo_path), return_state=True)
        steps["pull"], upstream = pulled.result(), [pulled]
    elif pull:
        logger.info("no DVC remote configured: nothing to pull")
    if assignments:
        steps["run"] = run_experiment(str(repo_path), assignments, pipeline_id, _experiment_timeout(max_minutes),
                                      wait_for=upstream)
    else:
        steps["run"] = pipeline(repo=str(repo_path), pipeline_id=pipeline_id, wait_for=upstream)
    # the result, not the state: a subflow's result names its flow run, which is the node the graph draws
    upstream = [steps["run"]]
    if with_registry:
        promoted = promote_challenger(str(repo_path), return_state=True, wait_for=upstream)
        steps["promote"], upstream = promoted.result(), [promoted]
    if push and remote:
        steps["push"] = push_outputs.with_options(retry_delay_seconds=retry_delays(3))(str(repo_path),
                                                                                        wait_for=upstream)
    markdown = (f"# vgan retrain\n\n- repository: `{repo_path}`\n- DVC remote: {'yes' if remote else 'none'}\n"
                f"- run: {'`dvc exp run ' + ' '.join('-S ' + a for a in assignments) + '`' if assignments else 'dvc repro, stage by stage'}\n")
    if with_registry:
        summary = registry_summary(repo_path, assignments)
        change = champion_change(before, summary)
        steps["registry"], steps["champion"] = summary, change
        logger.info(change["sentence"])
        markdown += f"- {change['sentence']}\n\n## Champion vs challenger\n\n{registry_markdown(summary)}\n"
        create_table_artifact(table=champion_table(change, summary), key=CHAMPION_TABLE_KEY,
                              description="whether this retraining run moved the champion")
    create_markdown_artifact(key="vgan-retrain-report", markdown=markdown, description="retraining outcome")
    return steps


def retrain_deployment(name: str, cron: str, parameters: dict, timezone: str = "UTC"):
    """The scheduled retraining deployment (a RunnerDeployment, served by the process that makes it)."""
    from prefect.schedules import Cron

    return retrain.to_deployment(name=name, schedules=[Cron(cron, timezone=timezone)], parameters=parameters,
                                 description=f"vgan retraining on {cron!r} ({timezone})", tags=["vgan", "retrain"])


def cron_argument(text: str) -> str:
    """argparse type: a cron expression Prefect accepts, or a one-line usage error."""
    from prefect.schedules import Cron

    try:
        Cron(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a cron expression: {text!r} (five fields: minute hour day month "
                                         f"weekday, e.g. \"0 3 * * *\")") from None
    return text


def timezone_argument(text: str) -> str:
    """argparse type: an IANA timezone name (Prefect's schedule accepts unknown names and fails later)."""
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(text)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise argparse.ArgumentTypeError(f"unknown timezone {text!r} (an IANA name, e.g. UTC or Europe/Berlin)") from None
    return text


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flows.retrain", description="vgan scheduled retraining")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "serve"):
        command = sub.add_parser(name, help="run once now" if name == "run" else "serve the cron deployment")
        command.add_argument("--repo", default=".", help="the git+DVC repository (default: .)")
        command.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                             help="parameter override for `dvc exp run -S` (repeatable)")
        command.add_argument("--max-minutes", type=float, default=None, help="training time budget")
        command.add_argument("--no-pull", action="store_true", help="skip `dvc pull`")
        command.add_argument("--no-push", action="store_true", help="skip `dvc push`")
        if name == "serve":
            command.add_argument("--cron", default="0 3 * * *", type=cron_argument,
                                 help='schedule (default: "0 3 * * *")')
            command.add_argument("--name", default="nightly", help="deployment name (default: nightly)")
            command.add_argument("--timezone", default="UTC", type=timezone_argument,
                                 help="timezone of the cron schedule")
    return parser.parse_args(argv)


def flow_parameters(args: argparse.Namespace) -> dict:
    return {"repo": str(Path(args.repo).resolve()), "overrides": args.overrides, "max_minutes": args.max_minutes,
            "pull": not args.no_pull, "push": not args.no_push}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if not (Path(args.repo) / "dvc.yaml").exists():
        print(f"{Path(args.repo).resolve()} has no dvc.yaml; pass --repo", file=sys.stderr)
        return 2
    if args.command == "serve":
        from prefect import serve

        if not os.environ.get("PREFECT_API_URL"):
            print("serving a schedule needs a running Prefect server: start one with "
                  "`prefect server start --host 127.0.0.1` and export PREFECT_API_URL=http://127.0.0.1:4200/api",
                  file=sys.stderr)
            return 2
        serve(retrain_deployment(args.name, args.cron, flow_parameters(args), args.timezone))
        return 0
    state = retrain(**flow_parameters(args), return_state=True)
    if not state.is_completed():
        print(f"retrain {state.name}: {state.message}", file=sys.stderr)
        return 1
    print(yaml.safe_dump({k: v for k, v in state.result().items() if k != "run"}, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
