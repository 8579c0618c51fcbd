"""Prefect flows against real servers: the pipeline flow, a failing stage, resuming, the cron deployment.

The repository is a small git+DVC repo whose stages are quick scripts plus the real `vgan register`
(so the registry part is the product's own code); the full pipeline on the tiny config is covered
by the end-to-end test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from servers import QUIET_ENV, mlflow_server, prefect_server  # noqa: F401 - session fixtures

pytestmark = [pytest.mark.servers, pytest.mark.slow]


# --- a small repository --------------------------------------------------------------------------

FETCH = """
import os, sys, yaml
from pathlib import Path
failures = yaml.safe_load(open("stage_params.yaml"))["fetch_failures"]
counter = Path(".fetch-attempts")
attempts = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(attempts + 1))
if attempts < failures:
    sys.exit(f"fetch: connection reset by peer (attempt {attempts + 1})")
Path("data/raw").mkdir(parents=True, exist_ok=True)
Path("data/raw/videos.txt").write_text("video-1\\n")
"""

TRAIN = """
import torch
from vgan.models.registry import build_model
from vgan.params import load_params
from vgan.train.checkpoint import GENERATOR_FORMAT, atomic_save
params = load_params()
torch.manual_seed(0)
G, _ = build_model(params.model)
atomic_save({"format": GENERATOR_FORMAT, "params": params.model_dump(mode="json"), "step": 1,
             "G": G.state_dict(), "G_ema": G.state_dict()}, "models/generator.pt")
"""

EVALUATE = """
import json, sys, yaml
from pathlib import Path
fd = yaml.safe_load(open("stage_params.yaml"))["fd"]
if fd < 0:
    print("loading evaluator features", file=sys.stderr)
    sys.exit("evaluate: feature extractor diverged (fd < 0)")
Path("metrics").mkdir(exist_ok=True)
Path("metrics/evaluate.json").write_text(json.dumps({"fd_evaluator": fd, "is_evaluator": 1.5,
                                                    "baseline_static_fd_evaluator": 1000.0}))
"""

DVC_YAML = """
stages:
  fetch:
    cmd: python tools/fetch.py
    deps: [tools/fetch.py]
    params: [{stage_params.yaml: [fetch_failures]}]
    outs: [data/raw]
  train:
    cmd: python tools/train.py
    deps: [data/raw, tools/train.py]
    params: [model]
    outs: [models/generator.pt]
  evaluate:
    cmd: python tools/evaluate.py
    deps: [models/generator.pt, tools/evaluate.py]
    params: [{stage_params.yaml: [fd]}]
    metrics: [{metrics/evaluate.json: {cache: false}}]
  register:
    cmd: vgan register
    deps: [models/generator.pt, metrics/evaluate.json]
    params: [registry]
    outs: [{metrics/register.json: {cache: false}}]
"""


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=vgan-test", "-c", "user.email=test@vgan.invalid", *args], cwd=root,
                   check=True, capture_output=True)


def make_repo(root: Path, model_name: str, fd: float = 5.0, fetch_failures: int = 0) -> Path:
    (root / "tools").mkdir(parents=True)
    (root / "params.yaml").write_text(textwrap.dedent(f"""\
        model: {{name: vgan, resolution: 16, frames: 4, z_dim: 8, width: 4}}
        registry: {{model_name: {model_name}, metric: fd_evaluator, direction: minimize}}
        """))
    (root / "stage_params.yaml").write_text(f"fd: {fd}\nfetch_failures: {fetch_failures}\n")
    for name, code in (("fetch", FETCH), ("train", TRAIN), ("evaluate", EVALUATE)):
        (root / "tools" / f"{name}.py").write_text(code)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / ".gitignore").write_text("/mlflow.db\n/mlartifacts/\n/.fetch-attempts\n")
    _git(root, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, capture_output=True)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "small pipeline")
    return root


def set_stage_param(root: Path, key: str, value) -> None:
    path = root / "stage_params.yaml"
    lines = [f"{key}: {value}" if line.startswith(f"{key}:") else line for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")


# --- REST helpers (what any client of the servers sees) -------------------------------------------

def rest(url: str, body: dict | None = None) -> dict | list:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def artifacts_of(prefect_url: str, flow_run_id: str) -> dict[str, str]:
    found = rest(f"{prefect_url}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    return {item["key"]: item["data"] for item in found if item.get("key")}


def registry_over_rest_in_subprocess(mlflow_url: str, name: str) -> dict:
    """Champion and challenger read by a separate process through MLflow's REST API (no mlflow import)."""
    script = textwrap.dedent("""
        import json, sys, urllib.error, urllib.parse, urllib.request
        base, name = sys.argv[1], sys.argv[2]
        out = {}
        for alias in ("champion", "challenger"):
            query = urllib.parse.urlencode({"name": name, "alias": alias})
            try:
                with urllib.request.urlopen(f"{base}/api/2.0/mlflow/registered-models/alias?{query}") as r:
                    version = json.loads(r.read())["model_version"]
            except urllib.error.HTTPError as missing:  # no such alias (e.g. no version passed the quality gate)
                if missing.code not in (400, 404):
                    raise
                out[alias] = None
                continue
            out[alias] = {"version": version["version"], "tags": {t["key"]: t["value"] for t in version.get("tags", [])}}
        print(json.dumps(out))
        """)
    result = subprocess.run([sys.executable, "-c", script, mlflow_url, name], capture_output=True, text=True,
                            check=True, timeout=60)
    return json.loads(result.stdout)


@pytest.fixture
def on_servers(monkeypatch, prefect_server, mlflow_server):  # noqa: F811
    """Point Prefect (this process) and MLflow (stage subprocesses) at the session servers."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    for key, value in QUIET_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VGAN_FLOW_RETRY_DELAYS", "1")
    monkeypatch.setenv("PREFECT_API_URL", prefect_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    with temporary_settings({PREFECT_API_URL: prefect_server.url}):
        yield prefect_server, mlflow_server


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """One repository for the module: the pipeline test reproduces it, the deployment test reuses it."""
    return make_repo(tmp_path_factory.mktemp("flow-repo") / "repo", "vgan-flows-test", fd=5.0, fetch_failures=1)


# --- tests ---------------------------------------------------------------------------------------

def test_pipeline_flow_on_servers_retries_fetch_registers_and_reports(on_servers, repo):
    from flows.pipeline import pipeline

    prefect, mlflow = on_servers
    state = pipeline(repo=str(repo), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert [(row["stage"], row["status"]) for row in result["stages"]] == [
        ("fetch", "ran"), ("train", "ran"), ("evaluate", "ran"), ("register", "ran")]
    assert (repo / ".fetch-attempts").read_text() == "2"  # the first fetch failed, the retry succeeded

    registered = json.loads((repo / "metrics" / "register.json").read_text())
    assert registered["promoted"] is True and registered["champion_version"] == registered["version"]

    artifacts = artifacts_of(prefect.url, str(state.state_details.flow_run_id))
    report = artifacts["vgan-pipeline-report"]
    assert "| fd_evaluator | 5 |" in report
    assert f"| champion | {registered['version']} | 5 | promoted |" in report

    seen = registry_over_rest_in_subprocess(mlflow.url, "vgan-flows-test")
    assert seen["champion"]["version"] == str(registered["version"])
    tags = seen["champion"]["tags"]
    assert tags["vgan.decision"] == "promoted" and tags["metric.fd_evaluator"] == "5"
    assert tags["vgan.pipeline_id"] == result["pipeline_id"] == str(state.state_details.flow_run_id)
    git_head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert tags["vgan.git_commit"].startswith(git_head)
    assert len(tags["vgan.data_hash"]) == 16  # from dvc.lock (the fetch stage's outputs)


def test_failed_stage_fails_the_flow_with_its_stderr_then_resumes(on_servers, tmp_path):
    from flows.pipeline import pipeline

    prefect, _ = on_servers
    root = make_repo(tmp_path / "repo", "vgan-flows-failing", fd=-1.0)
    state = pipeline(repo=str(root), stages=["fetch", "train", "evaluate"], return_state=True)
    assert state.is_failed()
    print(state.message)
    failure = artifacts_of(prefect.url, str(state.state_details.flow_run_id))["failed-evaluate"]
    assert "feature extractor diverged (fd < 0)" in failure
    assert "loading evaluator features" in failure

    set_stage_param(root, "fd", 7.0)
    again = pipeline(repo=str(root), stages=["fetch", "train", "evaluate"], return_state=True)
    assert again.is_completed(), again.message
    assert [(row["stage"], row["status"]) for row in again.result()["stages"]] == [
        ("fetch", "skipped"), ("train", "skipped"), ("evaluate", "ran")]
    assert json.loads((root / "metrics" / "evaluate.json").read_text())["fd_evaluator"] == 7.0


def test_cron_deployment_is_served_and_a_triggered_run_completes(on_servers, repo):
    prefect, mlflow = on_servers
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    log = repo.parent / "serve.log"
    with open(log, "wb") as handle:
        server = subprocess.Popen([sys.executable, "-m", "flows.retrain", "serve", "--cron", "0 3 * * *",
                                   "--repo", str(repo), "--no-pull", "--no-push"],
                                  stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deployment = None
        deadline = time.monotonic() + 120
        while deployment is None and time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                deployment = rest(f"{prefect.url}/deployments/name/vgan-retrain/nightly")
            except OSError:
                time.sleep(1)
        assert deployment is not None, log.read_text()[-3000:]
        crons = [item["schedule"].get("cron") for item in deployment["schedules"]]
        assert crons == ["0 3 * * *"]
        assert all(item["active"] for item in deployment["schedules"])
        assert deployment["parameters"]["repo"] == str(repo)

        flow_run = rest(f"{prefect.url}/deployments/{deployment['id']}/create_flow_run", {"parameters": {}})
        state = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            state = rest(f"{prefect.url}/flow_runs/{flow_run['id']}")["state"]
            if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(2)
        assert state["type"] == "COMPLETED", f"{state}\n{log.read_text()[-3000:]}"
        report = artifacts_of(prefect.url, flow_run["id"])["vgan-retrain-report"]
        assert "## Champion vs challenger" in report and "| champion |" in report
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_the_real_tiny_pipeline_runs_as_a_flow_on_both_servers(on_servers, tmp_path):
    """Not script stages: every real `vgan` stage of dvc.yaml, one Prefect task each, registering on the server."""
    from conftest import make_repo as make_tiny_repo
    from flows.pipeline import pipeline

    prefect, mlflow = on_servers
    root = make_tiny_repo(tmp_path / "tiny")
    state = pipeline(repo=str(root), return_state=True)
    assert state.is_completed(), state.message
    assert [(row["stage"], row["status"]) for row in state.result()["stages"]] == [
        (stage, "ran") for stage in ("fetch", "shards", "train", "sample", "evaluator", "evaluate", "register")]
    registered = json.loads((root / "metrics" / "register.json").read_text())
    assert registered["tracking_uri"] == mlflow.url
    seen = registry_over_rest_in_subprocess(mlflow.url, registered["name"])
    assert seen["challenger"]["version"] == str(registered["version"])
    assert seen["challenger"]["tags"]["vgan.gate"] == registered["gate"] in ("passed", "failed")
    # champion only through the quality gate (a 6-step generator usually fails it); the flow completed either way
    assert (seen["champion"] or {}).get("version") == (str(registered["version"]) if registered["gate"] == "passed"
                                                       else None)
    report = artifacts_of(prefect.url, str(state.state_details.flow_run_id))["vgan-pipeline-report"]
    assert "fd_evaluator" in report and "champion" in report and "clips per set" in report


@pytest.mark.parametrize("module, argv, message", [
    ("flows.retrain", ["serve", "--cron", "not a cron"], "argument --cron: not a cron expression: 'not a cron'"),
    ("flows.retrain", ["serve", "--cron", "61 3 * * *"], "not a cron expression"),
    ("flows.retrain", ["serve", "--timezone", "Mars/Base"], "unknown timezone 'Mars/Base'"),
    ("flows.deployments", ["serve", "--cron", "* *"], "not a cron expression"),
])
def test_bad_schedule_arguments_are_one_error_line_before_any_server_is_needed(capsys, module, argv, message):
    import importlib

    entry = importlib.import_module(module)
    with pytest.raises(SystemExit) as exited:
        entry.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].count("error:") == 1
