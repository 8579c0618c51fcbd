"""Deployments declared in code.

- ``serve`` (no work pool): one long-running process registers the deployments on the Prefect server
  named by ``PREFECT_API_URL`` and executes their runs itself (``python -m flows.retrain serve`` serves
  the retraining one alone).
- ``deploy_to_pool``: registers the retraining deployment on a work pool, so that workers on GPU hosts
  (``prefect worker start --pool <pool>``) pick its runs up; the code is read from ``repo`` on the worker.

    python -m flows.deployments serve --cron "0 3 * * *"          # nightly retrain + on-demand pipeline
    python -m flows.deployments deploy --pool gpu --cron "0 3 * * *"
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from prefect import serve as prefect_serve
from prefect.schedules import Cron

from flows.pipeline import QUIET_ENV, pipeline
from flows.retrain import cron_argument, retrain, retrain_deployment, timezone_argument

RETRAIN_ENTRYPOINT = "flows/retrain.py:retrain"


def pipeline_deployment(repo: str, name: str = "on-demand"):
    """The pipeline with no schedule: start it from the UI or `prefect deployment run vgan-pipeline/on-demand`."""
    return pipeline.to_deployment(name=name, parameters={"repo": repo}, tags=["vgan"],
                                  description="reproduce every DVC stage and publish the report")


def deploy_to_pool(repo: str, pool: str, name: str, cron: str, parameters: dict, timezone: str = "UTC"):
    """Register retraining on a work pool; its workers load ``flows/retrain.py`` from ``repo``."""
    source = retrain.from_source(source=repo, entrypoint=RETRAIN_ENTRYPOINT)
    return source.deploy(name=name, work_pool_name=pool, schedules=[Cron(cron, timezone=timezone)],
                         parameters=parameters, tags=["vgan", "retrain"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.deployments", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["serve", "deploy"])
    parser.add_argument("--repo", default=".", help="the git+DVC repository (default: .)")
    parser.add_argument("--cron", default="0 3 * * *", type=cron_argument,
                        help='retraining schedule (default: "0 3 * * *")')
    parser.add_argument("--timezone", default="UTC", type=timezone_argument, help="timezone of the cron schedule")
    parser.add_argument("--name", default="nightly", help="retraining deployment name")
    parser.add_argument("--pool", help="work pool (deploy): e.g. a process pool whose workers run on GPU hosts")
    parser.add_argument("--max-minutes", type=float, default=None, help="training time budget per run")
    args = parser.parse_args(argv)
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if not (Path(args.repo) / "dvc.yaml").is_file():
        print(f"{Path(args.repo).resolve()} has no dvc.yaml; pass --repo", file=sys.stderr)
        return 2
    if not os.environ.get("PREFECT_API_URL"):
        print("deployments need a running Prefect server: `prefect server start --host 127.0.0.1` and "
              "export PREFECT_API_URL=http://127.0.0.1:4200/api", file=sys.stderr)
        return 2
    repo = str(Path(args.repo).resolve())
    parameters = {"repo": repo, "overrides": [], "max_minutes": args.max_minutes, "pull": True, "push": True}
    if args.command == "deploy":
        if not args.pool:
            print("deploy needs --pool (create one with `prefect work-pool create gpu --type process`)",
                  file=sys.stderr)
            return 2
        deployment_id = deploy_to_pool(repo, args.pool, args.name, args.cron, parameters, args.timezone)
        print(f"deployment vgan-retrain/{args.name} ({deployment_id}) on work pool {args.pool}")
        return 0
    prefect_serve(retrain_deployment(args.name, args.cron, parameters, args.timezone), pipeline_deployment(repo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
