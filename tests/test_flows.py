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
import urllib.error
import urllib.request
from datetime import datetime
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

# Prints like a training run (no flush: the flow must make Python unbuffered): a line, a pause, a progress
# bar redrawn with carriage returns on stderr, then more lines.
TRAIN = """
import sys, time
import torch
from vgan.models.zoo import build_model
from vgan.params import load_params
from vgan.train.generator_file import GENERATOR_FORMAT
from vgan.util.torch_files import atomic_save
print("train: step 1/2 loss_g=0.70")
time.sleep(1.5)
for done in range(1, 21):
    print(f"\\rtrain: batches {done}/20", end="", file=sys.stderr)
    time.sleep(0.02)
print(file=sys.stderr)
print("train: step 2/2 loss_g=0.60")
params = load_params(overrides=["model.channels=1"])  # as `auto` resolves for grey shards
torch.manual_seed(0)
G, _ = build_model(params.model)
atomic_save({"format": GENERATOR_FORMAT, "params": params.model_dump(mode="json"), "step": 1,
             "G": G.state_dict(), "G_ema": G.state_dict()}, "models/generator.pt")
print("train: saved models/generator.pt", file=sys.stderr)
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

def rest(url: str, body: dict | None = None, attempts: int = 5) -> dict | list:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="POST" if body is not None else "GET")
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            # Prefect's server answers 503 for errors a client should retry (sqlite busy under load), as its own
            # client does
            if error.code != 503 or attempt == attempts:
                raise
            time.sleep(attempt)


def artifacts_of(prefect_url: str, flow_run_id: str) -> dict[str, str]:
    found = rest(f"{prefect_url}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    return {item["key"]: item["data"] for item in found if item.get("key")}


def task_runs_of(prefect_url: str, flow_run_id: str) -> dict[str, dict]:
    """The flow run's task runs by name."""
    found = rest(f"{prefect_url}/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    return {item["name"]: item for item in found}


def upstream_names(task_run: dict, by_id: dict[str, str]) -> set[str]:
    """Names of the task runs this one waited on (``task_inputs.wait_for``, what the run graph draws)."""
    return {by_id[item["id"]] for item in task_run["task_inputs"].get("wait_for", [])}


def logs_of(prefect_url: str, expect: str, timeout: float = 30, **run_ids: str) -> list[dict]:
    """The server's read_logs (oldest first) for ``flow_run_id`` and/or ``task_run_id``, once a message contains
    ``expect`` (logs reach the server in batches, after the run may have finished)."""
    query = {"logs": {key: {"any_": [value]} for key, value in run_ids.items()}, "sort": "TIMESTAMP_ASC",
             "limit": 200}
    deadline = time.monotonic() + timeout
    while True:
        logs = rest(f"{prefect_url}/logs/filter", query)
        if any(expect in log["message"] for log in logs) or time.monotonic() > deadline:
            return logs
        time.sleep(0.5)


def log_time(logs: list[dict], text: str) -> datetime:
    return datetime.fromisoformat(next(log["timestamp"] for log in logs if text in log["message"]))


def remove_alias(mlflow_url: str, name: str, alias: str) -> None:
    """Delete a registry alias through MLflow's REST API (a model that does not exist yet has none to delete)."""
    request = urllib.request.Request(f"{mlflow_url}/api/2.0/mlflow/registered-models/alias",
                                     data=json.dumps({"name": name, "alias": alias}).encode(),
                                     headers={"Content-Type": "application/json"}, method="DELETE")
    try:
        urllib.request.urlopen(request, timeout=30).close()
    except urllib.error.HTTPError as missing:
        if missing.code not in (400, 404):
            raise


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
            query = urllib.parse.urlencode({"run_id": version["run_id"]})
            with urllib.request.urlopen(f"{base}/api/2.0/mlflow/runs/get?{query}") as r:
                run_tags = {t["key"]: t["value"] for t in json.loads(r.read())["run"]["data"].get("tags", [])}
            out[alias] = {"version": version["version"], "tags": {t["key"]: t["value"] for t in version.get("tags", [])},
                          "run_tags": run_tags}
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

def test_pipeline_flow_on_servers_fails_once_then_registers_and_reports(on_servers, repo):
    from flows.pipeline import pipeline

    prefect, mlflow = on_servers
    # one retry layer: the flow runs a failing stage once (the stages retry their own I/O), says why in one
    # line, and a re-run picks up from there
    failed = pipeline(repo=str(repo), return_state=True)
    assert failed.is_failed()
    assert "fetch: connection reset by peer (attempt 1)" in failed.message
    assert (repo / ".fetch-attempts").read_text() == "1"
    state = pipeline(repo=str(repo), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert [(row["stage"], row["status"]) for row in result["stages"]] == [
        ("fetch", "ran"), ("train", "ran"), ("evaluate", "ran"), ("register", "ran")]
    assert (repo / ".fetch-attempts").read_text() == "2"  # the first run's fetch failed, the re-run's succeeded

    registered = json.loads((repo / "metrics" / "register.json").read_text())
    assert registered["promoted"] is True and registered["champion_version"] == registered["version"]

    flow_run_id = str(state.state_details.flow_run_id)
    artifacts = artifacts_of(prefect.url, flow_run_id)
    report = artifacts["vgan-pipeline-report"]
    assert "| fd_evaluator | 5 |" in report
    assert f"| champion | {registered['version']} | 5 | promoted |" in report
    table = json.loads(artifacts["vgan-pipeline-metrics"])
    rows = {row["name"]: row for row in table}
    assert list(rows["fd_evaluator"]) == ["name", "model", "static", "registry"]  # baselines with values only
    assert {key: rows["fd_evaluator"][key] for key in ("model", "static")} == {"model": 5.0, "static": 1000.0}
    assert rows["is_evaluator"]["model"] == 1.5 and rows["is_evaluator"]["static"] is None
    assert "baseline_static_fd_evaluator" not in rows  # a baseline is a column, not a metric
    assert {name: rows[name]["registry"] for name in ("registered model", "version", "alias", "decision", "reason")} == {
        "registered model": "vgan-flows-test", "version": registered["version"], "alias": "champion",
        "decision": "promoted", "reason": registered["reason"]}
    assert rows["fd_evaluator"]["registry"] is None and rows["version"]["model"] is None

    # the graph: each stage waits on the one before, the report on the last stage only
    task_runs = task_runs_of(prefect.url, flow_run_id)
    by_id = {run["id"]: name for name, run in task_runs.items()}
    report_run = next(name for name in task_runs if name.startswith("report"))
    assert {name: upstream_names(run, by_id) for name, run in task_runs.items()} == {
        "fetch": set(), "train": {"fetch"}, "evaluate": {"train"}, "register": {"evaluate"},
        report_run: {"register"}}
    assert not any(task_runs[report_run]["task_inputs"]["stage_results"])

    # each stage's output in its task run's logs, line by line while it ran
    train_logs = logs_of(prefect.url, "train: saved models/generator.pt", task_run_id=task_runs["train"]["id"])
    messages = [log["message"] for log in train_logs]
    for line in ("> python tools/train.py", "train: step 1/2 loss_g=0.70", "train: step 2/2 loss_g=0.60",
                 "train: saved models/generator.pt"):  # stdout and stderr, DVC's lines and the command's
        assert line in messages, messages
    # the script pauses 1.5 s after its first line: logged as it came, not all at the end
    waited = log_time(train_logs, "train: step 2/2") - log_time(train_logs, "train: step 1/2")
    assert waited.total_seconds() >= 1.0, messages
    redraws = [message for message in messages if "train: batches" in message]
    assert 1 <= len(redraws) <= 2 and redraws[-1] == "train: batches 20/20", redraws  # 20 redraws, collapsed
    assert b"\rtrain: batches 7/20" in (repo / ".dvc" / "tmp" / "flow-logs" / "stage-train.err").read_bytes()
    failed_fetch = task_runs_of(prefect.url, str(failed.state_details.flow_run_id))["fetch"]
    fetch_logs = logs_of(prefect.url, "connection reset", task_run_id=failed_fetch["id"])
    assert "fetch: connection reset by peer (attempt 1)" in [log["message"] for log in fetch_logs]

    seen = registry_over_rest_in_subprocess(mlflow.url, "vgan-flows-test")
    assert seen["champion"]["version"] == str(registered["version"])
    tags = seen["champion"]["tags"]
    assert tags["vgan.decision"] == "promoted" and tags["metric.fd_evaluator"] == "5"
    # the pipeline id is on the version's run (the version keeps the decision, the gate's inputs, provenance)
    run_tags = seen["champion"]["run_tags"]
    assert run_tags["vgan.pipeline_id"] == result["pipeline_id"] == str(state.state_details.flow_run_id)
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
    failed_run_id = str(state.state_details.flow_run_id)
    failure = artifacts_of(prefect.url, failed_run_id)["failed-evaluate"]
    assert "feature extractor diverged (fd < 0)" in failure
    assert "loading evaluator features" in failure
    evaluate_run = task_runs_of(prefect.url, failed_run_id)["evaluate"]
    assert evaluate_run["state"]["type"] == "FAILED"
    streamed = [log["message"] for log in logs_of(prefect.url, "diverged", task_run_id=evaluate_run["id"])]
    assert "loading evaluator features" in streamed and "evaluate: feature extractor diverged (fd < 0)" in streamed

    set_stage_param(root, "fd", 7.0)
    again = pipeline(repo=str(root), stages=["fetch", "train", "evaluate"], return_state=True)
    assert again.is_completed(), again.message
    assert [(row["stage"], row["status"]) for row in again.result()["stages"]] == [
        ("fetch", "skipped"), ("train", "skipped"), ("evaluate", "ran")]
    assert json.loads((root / "metrics" / "evaluate.json").read_text())["fd_evaluator"] == 7.0


def test_cron_deployment_is_served_and_a_triggered_run_moves_the_champion(on_servers, repo):
    prefect, mlflow = on_servers
    # no champion before the run (cheaper than registering a better model): the run's `vgan promote` makes the
    # pipeline test's version champion (or, when this test runs alone, the run registers the first one)
    remove_alias(mlflow.url, "vgan-flows-test", "champion")
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
        registered = json.loads((repo / "metrics" / "register.json").read_text())
        moved = f"champion of vgan-flows-test moved: none -> v{registered['version']}"
        artifacts = artifacts_of(prefect.url, flow_run["id"])
        report = artifacts["vgan-retrain-report"]
        assert moved in report and "## Champion vs challenger" in report
        assert f"| champion | {registered['version']} | 5 | promoted |" in report
        assert json.loads(artifacts["vgan-retrain-champion"]) == [{
            "model": "vgan-flows-test", "champion before": None, "champion after": registered["version"],
            "moved": True, "challenger": registered["version"], "challenger decision": "promoted",
            "reason": "no champion yet; fd_evaluator=5"}]
        assert moved in [log["message"] for log in logs_of(prefect.url, moved, flow_run_id=flow_run["id"])]
        # the graph: promote waits on the pipeline's subflow run (the node the graph draws for it)
        task_runs = task_runs_of(prefect.url, flow_run["id"])
        promote = next(run for name, run in task_runs.items() if name.startswith("promote"))
        tracking = next(run for name, run in task_runs.items() if name.startswith("vgan-pipeline"))
        [waited] = promote["task_inputs"]["wait_for"]
        assert waited["input_type"] == "flow_run"
        assert rest(f"{prefect.url}/flow_runs/{waited['id']}")["parent_task_run_id"] == tracking["id"]
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
    artifacts = artifacts_of(prefect.url, str(state.state_details.flow_run_id))
    report = artifacts["vgan-pipeline-report"]
    assert "fd_evaluator" in report and "champion" in report and "clips per set" in report
    rows = {row["name"]: row for row in json.loads(artifacts["vgan-pipeline-metrics"])}
    headline = json.loads((root / "metrics" / "evaluate.json").read_text())
    fd_row = rows["fd_evaluator"]  # its baselines: evaluate.json's headline ones, the rest from the baseline table
    assert fd_row["model"] == headline["fd_evaluator"] and fd_row["static"] == headline["baseline_static_fd_evaluator"]
    assert all(isinstance(fd_row[name], float) for name in ("real_vs_real", "static", "shuffled", "noise"))
    assert rows["version"]["registry"] == registered["version"]
    assert rows["alias"]["registry"] == ("champion" if registered["gate"] == "passed" else "challenger")


def test_stream_log_logs_lines_and_collapses_progress_redraws():
    import io

    from flows.commands import PROGRESS_LOG_EVERY_S, StreamLog

    logged, file = [], io.BytesIO()
    stream = StreamLog(file, logged.append)
    stream.feed(b"Running stage 'train':\n\rbatches 1/3")
    stream.tick(100.0)  # the first redraw is logged at once
    stream.feed(b"\rbatches 2/3")
    stream.tick(100.0 + PROGRESS_LOG_EVERY_S / 2)  # too soon for the next
    stream.feed(b"\rbatches 3/3\r\n")  # a finished line is always logged (its last redraw)
    stream.feed(b"\repoch 1")
    stream.tick(100.0 + PROGRESS_LOG_EVERY_S)
    stream.feed(b"\repoch 2")
    stream.tick(100.0 + PROGRESS_LOG_EVERY_S * 1.5)
    stream.tick(100.0 + PROGRESS_LOG_EVERY_S * 2)  # late enough: the newest redraw
    stream.feed(b"\nno newline at the end")  # ends the line "epoch 2", logged already
    stream.close()
    assert logged == ["Running stage 'train':", "batches 1/3", "batches 3/3", "epoch 1", "epoch 2",
                      "no newline at the end"]
    assert file.getvalue() == (b"Running stage 'train':\n\rbatches 1/3\rbatches 2/3\rbatches 3/3\r\n"
                               b"\repoch 1\repoch 2\nno newline at the end")  # the file keeps every byte


def test_run_command_reads_both_pipes_without_deadlock(tmp_path):
    from flows.commands import run_command

    # far more than a pipe's buffer on both streams: reading one pipe to its end first would hang
    script = ("import sys\nfor i in range(4000):\n    print('out', i, 'x' * 100)\n"
              "    print('err', i, 'y' * 100, file=sys.stderr)\n")
    logged = []
    result = run_command([sys.executable, "-c", script], tmp_path, "chatty", 60, log=logged.append)
    assert result["returncode"] == 0 and not result["timed_out"]
    assert len(logged) == 8000  # the two streams interleave as the reads fall; each keeps its order
    assert [line for line in logged if line.startswith("out")] == [f"out {i} {'x' * 100}" for i in range(4000)]
    assert [line for line in logged if line.startswith("err")] == [f"err {i} {'y' * 100}" for i in range(4000)]
    assert result["stdout"].count("\n") == 4000 and result["stderr_tail"].endswith(f"err 3999 {'y' * 100}")


def test_run_command_at_its_limit_interrupts_then_kills_the_process_group(tmp_path, monkeypatch):
    import flows.commands as commands_module

    monkeypatch.setattr(commands_module, "INTERRUPT_GRACE_S", 1.0)
    # ignores Ctrl-C, and leaves a child in its process group
    script = ("import signal, subprocess, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
              "child = subprocess.Popen(['sleep', '120'])\nprint('child', child.pid)\ntime.sleep(120)\n")
    logged = []
    result = commands_module.run_command([sys.executable, "-c", script], tmp_path, "stuck", 1.5, log=logged.append)
    assert result["timed_out"] and result["returncode"] == -9  # SIGINT ignored, SIGKILL one grace later
    assert 2.4 <= result["seconds"] < 15
    child = int(next(line for line in logged if line.startswith("child ")).split()[1])

    def running(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 5
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(child), "the stage's child outlived the kill"


@pytest.mark.parametrize("before, after, moved, sentence", [
    (None, 1, True, "champion of m moved: none -> v1"),
    (1, 2, True, "champion of m moved: v1 -> v2"),
    (2, 2, False, "champion of m unchanged: v2"),
    (None, None, False, "champion of m unchanged: none"),
])
def test_champion_change_says_whether_the_alias_moved(before, after, moved, sentence):
    from flows.retrain import champion_change

    def summary(version):
        return {"name": "m", "champion": {"version": version} if version else None, "challenger": None}

    assert champion_change(summary(before), summary(after)) == {
        "model": "m", "before": before, "after": after, "moved": moved, "sentence": sentence}


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
