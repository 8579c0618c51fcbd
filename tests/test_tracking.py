"""vgan.tracking.runs: stage runs, the registered generator, champion/challenger promotion, failures.

Local tests use the embedded sqlite store in a temporary folder; the `servers` tests use a real
`mlflow server` (sqlite backend, and PostgreSQL) and read the registry from other processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from servers import (  # noqa: F401
    QUIET_ENV,
    free_port,
    mlflow_on_postgres,
    mlflow_server,
    postgres_server,
)

from vgan.params import load_params
from vgan.tracking import provenance, registry, runs
from vgan.util import retry as retry_module
from vgan.util.errors import TrackingError

REPO_PARAMS = str(Path(__file__).resolve().parents[1] / "params.yaml")
# grey, as `auto` resolves for the moving digits: the pyfunc model still returns RGB video
TINY_MODEL = ["model.resolution=16", "model.frames=4", "model.z_dim=8", "model.width=4", "model.channels=1"]


def beating_static(fd: float, static: float = 1000.0) -> dict:
    """Metrics of a version whose fd_evaluator beats (or not) the static baseline's, as evaluate writes them."""
    return {"fd_evaluator": fd, "baseline_static_fd_evaluator": static}


def tiny_params(name: str, *extra: str):
    return load_params(REPO_PARAMS, [*TINY_MODEL, f"registry.model_name={name}", *extra])


def write_generator(path: Path, params, seed: int = 0) -> Path:
    import torch

    from vgan.models.zoo import build_model
    from vgan.util.torch_files import atomic_save
    from vgan.train.generator_file import GENERATOR_FORMAT

    torch.manual_seed(seed)
    generator, _ = build_model(params.model)
    atomic_save({"format": GENERATOR_FORMAT, "params": params.model_dump(mode="json"), "step": 3,
                 "G": generator.state_dict(), "G_ema": generator.state_dict()}, path)
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A repository folder with the embedded store; no tracking server in the environment."""
    for key, value in QUIET_ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "VGAN_PIPELINE_ID"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "dvc.lock").write_text(textwrap.dedent("""\
        schema: '2.0'
        stages:
          shards:
            cmd: vgan shards
            outs:
            - path: data/shards
              md5: 0123456789abcdef0123456789abcdef.dir
        """))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_python(code: str, env: dict | None = None, cwd: Path | None = None) -> str:
    """Run code in a separate interpreter (a different process than the one that logged)."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env={**os.environ, **QUIET_ENV, **(env or {})}, cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


# --- pure decisions ------------------------------------------------------------------------------

@pytest.mark.parametrize("value, champion, direction, margin, promoted", [
    (4.0, None, "minimize", 0.0, True),        # no champion yet
    (4.0, 5.0, "minimize", 0.0, True),
    (5.0, 5.0, "minimize", 0.0, False),        # a tie does not beat
    (4.5, 5.0, "minimize", 1.0, False),        # better, but not by min_improvement
    (6.5, 5.0, "maximize", 1.0, True),
    (None, 5.0, "minimize", 0.0, False),       # no finite metric: never promoted
])
def test_decide(value, champion, direction, margin, promoted):
    champion_version = None if champion is None else "3"
    decision, reason = registry.decide(value, champion, champion_version, "fd", direction, margin)
    assert decision is promoted
    assert reason


@pytest.mark.parametrize("gate_passes, champion, promoted, reason", [
    (True, None, True, "no champion yet; fd=4"),
    (True, 5.0, True, "beats champion: fd 4 vs champion v3 5"),
    (False, None, False, "fails the quality gate: fd 4 is not below the static baseline's 3; no champion is made"),
    (False, 5.0, False, "fails the quality gate: fd 4 is not below the static baseline's 3; champion v3 unchanged"),
])
def test_a_version_failing_the_gate_is_never_champion(gate_passes, champion, promoted, reason):
    static = 9.0 if gate_passes else 3.0
    gate = registry.check_gate(4.0, {"static": static}, "fd", "minimize")
    assert gate[0] is gate_passes
    decision = registry.decide(4.0, champion, None if champion is None else "3", "fd", "minimize", 0.0, gate)
    assert decision[0] is promoted and decision[1].startswith(reason)


def test_gate_verdicts_name_each_baseline_and_what_is_missing():
    assert registry.check_gate(4.0, {}, "fd", "minimize") == (None, "no quality gate (registry.gate_baselines is empty)")
    passed, reason = registry.check_gate(4.0, {"static": 9.0, "shuffled": 12.0}, "fd", "minimize")
    assert passed and reason == "passes the quality gate: fd 4 is below the baselines' (static 9, shuffled 12)"
    failed, reason = registry.check_gate(4.0, {"static": 9.0, "real_vs_real": None}, "fd", "minimize")
    assert failed is False and reason.startswith("fails the quality gate: no real_vs_real baseline fd recorded")
    assert "metric.baseline_real_vs_real_fd" in reason
    assert registry.check_gate(4.0, {"static": 4.0}, "fd", "minimize")[0] is False  # a tie does not beat
    assert registry.check_gate(4.0, {"static": 3.0}, "is", "maximize") == (
        True, "passes the quality gate: is 4 is above the baselines' (static 3)")
    assert registry.check_gate(None, {"static": 3.0}, "fd", "minimize") == (False, "fails the quality gate: no finite fd")


def test_unknown_gate_baseline_is_a_params_error():
    from vgan.util.errors import ParamsError

    assert load_params(REPO_PARAMS).registry.gate_baselines == ["static"]
    with pytest.raises(ParamsError, match="registry.gate_baselines = \\['statc'\\].*unknown baseline 'statc'; "
                                          "expected names from real_vs_real, static, shuffled, noise"):
        load_params(REPO_PARAMS, ["registry.gate_baselines=[statc]"])
    assert load_params(REPO_PARAMS, ["registry.gate_baselines=[]"]).registry.gate_baselines == []


def test_importing_tracking_does_not_import_mlflow():
    out = run_python("import sys, vgan.tracking.runs, vgan.cli; print('mlflow' in sys.modules)")
    assert out == "False"


def test_tracking_uri_defaults_to_the_repo_store(workdir, monkeypatch):
    assert runs.tracking_uri() == f"sqlite:///{workdir.resolve() / 'mlflow.db'}"
    assert runs.recorded_tracking_uri() == "sqlite:///mlflow.db"  # results files hold no machine path
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert runs.recorded_tracking_uri() == "http://127.0.0.1:5000"


# --- retries -------------------------------------------------------------------------------------

@pytest.fixture
def waits(monkeypatch):
    """Three tries, 1 s back-off; the seconds waited between them, recorded instead of slept."""
    monkeypatch.setenv("VGAN_TRACKING_RETRIES", "3")
    monkeypatch.setenv("VGAN_TRACKING_BACKOFF_S", "1.0")
    slept = []
    monkeypatch.setattr(retry_module.time, "sleep", slept.append)
    return slept


def raising(*failures: Exception):
    """A store call that raises ``failures`` in turn, then returns "ok"; ``calls`` counts the calls."""
    def call():
        call.calls += 1
        if call.calls <= len(failures):
            raise failures[call.calls - 1]
        return "ok"
    call.calls = 0
    return call


def test_store_calls_retry_transient_failures_with_jittered_doubling_waits(workdir, waits):
    call = raising(ConnectionError("refused"), TimeoutError("slow"))
    assert runs.retrying("testing", call) == "ok"
    assert call.calls == 3 and len(waits) == 2 and 1.0 <= waits[0] <= 1.25 and 2.0 <= waits[1] <= 2.5


def test_store_calls_give_up_in_one_tracking_error(workdir, waits):
    call = raising(*[ConnectionError("refused")] * 5)
    with pytest.raises(TrackingError, match=r"unreachable \(testing failed 3 times: ConnectionError: refused\)"):
        runs.retrying("testing", call)
    assert call.calls == 3 and len(waits) == 2


def test_store_calls_do_not_retry_what_is_not_transient(workdir, waits):
    refusal = type("RestException", (Exception,), {"__module__": "mlflow.exceptions"})("permission denied")
    with pytest.raises(TrackingError, match=r"testing failed: RestException: permission denied$"):
        runs.retrying("testing", raising(refusal))  # the store's own refusal: one TrackingError
    with pytest.raises(KeyError):
        runs.retrying("testing", raising(KeyError("ours")))  # a bug of ours goes through as it is
    inner = raising(TrackingError("the connection was lost"))  # already retried and worded by a nested call
    with pytest.raises(TrackingError, match="^the connection was lost$"):
        runs.retrying("testing", inner)
    assert inner.calls == 1 and waits == []


# --- the embedded store ----------------------------------------------------------------------------

@pytest.mark.slow
def test_register_promote_and_load_the_champion_from_another_process(workdir):
    params = tiny_params("vgan-local-test")
    generator = write_generator(workdir / "generator.pt", params)
    (workdir / "metrics").mkdir()
    (workdir / "metrics" / "evaluate.json").write_text(json.dumps({"fd_evaluator": 10.0}))

    first = registry.register_and_promote(params, generator, {"fd_evaluator": 10.0, "is_evaluator": 1.2},
                                          [workdir / "metrics" / "evaluate.json"],
                                          baselines={"static": {"fd_evaluator": 50.0}, "noise": {"fd_evaluator": 900.0}})
    assert (first["version"], first["champion_version"], first["promoted"]) == (1, 1, True)
    assert first["reason"].startswith("no champion yet") and first["gate"] == "passed"
    second = registry.register_and_promote(params, generator, beating_static(12.0), [])
    assert (second["version"], second["champion_version"], second["promoted"]) == (2, 1, False)
    assert "does not beat champion" in second["reason"]

    summary = registry.registry_summary(params)
    assert summary["champion"]["version"] == 1 and summary["challenger"]["version"] == 2
    assert summary["challenger"]["decision"] == "rejected"
    assert summary["champion"]["data_hash"] == provenance.data_hash() != "none"

    again = registry.promote(params, version=2)
    assert again["promoted"] is False and again["champion_version"] == 1
    third = registry.register_and_promote(params, generator, beating_static(9.5), [])
    assert (third["version"], third["champion_version"], third["promoted"]) == (3, 3, True)

    # better than the champion, but worse than a static real frame: challenger only, and the version says why
    fourth = registry.register_and_promote(params, generator, beating_static(5.0, static=4.0), [])
    assert (fourth["version"], fourth["champion_version"], fourth["promoted"], fourth["gate"]) == (4, 3, False, "failed")
    assert fourth["reason"] == ("fails the quality gate: fd_evaluator 5 is not below the static baseline's 4; "
                                "champion v3 unchanged")
    import mlflow

    tags = mlflow.MlflowClient().get_model_version("vgan-local-test", "4").tags
    assert tags["vgan.gate"] == "failed" and tags["vgan.reason"] == fourth["reason"]
    assert tags["metric.baseline_static_fd_evaluator"] == "4" and tags["vgan.gate_baselines"] == "static"
    assert mlflow.MlflowClient().get_model_version("vgan-local-test", "1").tags[
        "metric.baseline_noise_fd_evaluator"] == "900"
    # `vgan promote` re-decides from the registry alone, with the gate of the params it is given
    assert registry.promote(params)["champion_version"] == 3
    ungated = registry.promote(tiny_params("vgan-local-test", "registry.gate_baselines=[]"))
    assert (ungated["champion_version"], ungated["gate"]) == (4, "off")

    # artifacts land in <repo>/mlartifacts (set explicitly), the generator as a torch.export program
    assert list((workdir / "mlartifacts").rglob("model.pt2"))
    assert list((workdir / "mlartifacts").rglob("evaluate.json"))

    out = run_python("""
        import json, mlflow, numpy as np, pandas as pd
        model = mlflow.pyfunc.load_model("models:/vgan-local-test@champion")
        videos = model.predict(pd.DataFrame({"seed": [3, 3, 4]}))
        print(json.dumps({"shape": list(videos.shape), "dtype": str(videos.dtype),
                          "same_seed_same_video": bool((videos[0] == videos[1]).all()),
                          "other_seed_differs": bool((videos[0] != videos[2]).any())}))
        """, env={"MLFLOW_TRACKING_URI": runs.tracking_uri()}, cwd=workdir)
    assert json.loads(out) == {"shape": [3, 4, 16, 16, 3], "dtype": "uint8", "same_seed_same_video": True,
                               "other_seed_differs": True}


@pytest.mark.slow
def test_conditional_generator_falls_back_to_pickle_when_export_fails(workdir, monkeypatch):
    import pandas as pd
    import torch

    params = tiny_params("vgan-pickle-test", "model.num_classes=3")
    generator = write_generator(workdir / "generator.pt", params)

    def refuse(*args, **kwargs):
        raise RuntimeError("torch.export cannot trace this model")

    monkeypatch.setattr(torch.export, "export", refuse)
    result = registry.register_and_promote(params, generator, beating_static(1.0), [])
    assert result["promoted"] is True
    assert list((workdir / "mlartifacts").rglob("model.pth")) and not list((workdir / "mlartifacts").rglob("model.pt2"))

    model = registry.load_champion(params)
    videos = model.predict(pd.DataFrame({"seed": [1, 1, 2], "label": [0, 2, 1]}))
    assert videos.shape == (3, 4, 16, 16, 3) and videos.dtype.name == "uint8"
    assert (videos[0] != videos[1]).any()  # same latent, different label
    with pytest.raises(Exception, match="outside 0..2"):
        model.predict(pd.DataFrame({"seed": [1], "label": [7]}))


@pytest.mark.slow
def test_stage_run_is_tagged_and_linked_by_pipeline_id(workdir, monkeypatch):
    import mlflow

    params = tiny_params("vgan-stage-test")
    monkeypatch.setenv("VGAN_PIPELINE_ID", "pipeline-42")
    with runs.stage_run(params, "train") as run:
        run.log_params({"train": {"steps": 3, "lr_g": 0.001}})
        run.log_metrics({"loss_d": 0.5, "loss_g": float("nan"), "nested": {"acc": 0.75}}, step=2)
        (workdir / "report.md").write_text("# report\n")
        run.log_artifact(workdir / "report.md")
    with pytest.raises(RuntimeError, match="boom"):
        with runs.stage_run(params, "evaluate"):
            raise RuntimeError("boom")

    mlflow.set_tracking_uri(runs.tracking_uri())
    stage_runs = mlflow.search_runs(experiment_names=["vgan-moving-digits"], filter_string="tags.`vgan.pipeline_id` = 'pipeline-42'",
                              output_format="list")
    by_stage = {run.data.tags["vgan.stage"]: run for run in stage_runs}
    assert set(by_stage) == {"pipeline", "train", "evaluate"}
    train, parent = by_stage["train"], by_stage["pipeline"]
    assert train.info.status == "FINISHED" and by_stage["evaluate"].info.status == "FAILED"
    # one parent run per pipeline run: both stages nested under it, every param on it, the last outcome
    assert {by_stage[s].data.tags["mlflow.parentRunId"] for s in ("train", "evaluate")} == {parent.info.run_id}
    assert parent.info.status == "FAILED" and parent.data.params["train.steps"] == str(params.train.steps)
    assert train.data.tags["mlflow.source.name"] == "vgan train"
    assert train.data.params == {"train.steps": "3", "train.lr_g": "0.001"}
    assert train.data.metrics == {"loss_d": 0.5, "nested.acc": 0.75}  # NaN is not logged
    assert train.data.tags["vgan.params_hash"] == params.group_hash()
    assert train.data.tags["vgan.data_hash"] == provenance.data_hash() != "none"
    assert [a.path for a in mlflow.MlflowClient().list_artifacts(train.info.run_id)] == ["report.md"]


def test_unreachable_server_gives_one_clear_error_after_retries(workdir, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("VGAN_TRACKING_RETRIES", "2")
    monkeypatch.setenv("VGAN_TRACKING_BACKOFF_S", "0.05")
    params = tiny_params("vgan-offline-test")
    with pytest.raises(TrackingError, match=r"unreachable \(.* failed 2 times.*re-run the stage"):
        registry.promote(params)
    with pytest.raises(TrackingError, match="unreachable"):
        with runs.stage_run(params, "train"):
            pass


def test_cli_register_reports_an_unreachable_server_in_one_line(workdir):
    params = tiny_params("vgan-offline-cli")
    write_generator(workdir / "generator.pt", params)
    (workdir / "params.yaml").write_text(Path(REPO_PARAMS).read_text())
    (workdir / "metrics").mkdir()
    (workdir / "metrics" / "evaluate.json").write_text(json.dumps({"fd_evaluator": 1.0}))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "vgan"), "register", "--generator", "generator.pt", *sum((["--set", o] for o in
         [*TINY_MODEL, "registry.model_name=vgan-offline-cli"]), [])],
        capture_output=True, text=True, cwd=workdir, timeout=300,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}", "VGAN_TRACKING_RETRIES": "2",
             "VGAN_TRACKING_BACKOFF_S": "0.05"})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "unreachable" in result.stderr.strip().splitlines()[-1]
    assert not (workdir / "metrics" / "register.json").exists()
    assert (workdir / "generator.pt").exists()  # kept, so `vgan register` can run again


# --- real servers ----------------------------------------------------------------------------------

RACE = """
import json, sys, time
from pathlib import Path
from vgan.tracking import registry
from vgan.params import load_params
name, fd, generator, go = sys.argv[1], float(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
params = load_params({params_file!r}, {overrides!r} + [f"registry.model_name={{name}}"])
while not go.exists():  # start both promotions together
    time.sleep(0.01)
print(json.dumps(registry.register_and_promote(params, generator, {{"fd_evaluator": fd}}, [],
                                                     baselines={{"static": {{"fd_evaluator": 100.0}}}})))
"""


@pytest.mark.servers
@pytest.mark.slow
def test_racing_promotions_end_with_one_champion_and_a_consistent_record(mlflow_server, tmp_path):  # noqa: F811
    name = "vgan-race-test"
    params = tiny_params(name)
    generator = write_generator(tmp_path / "generator.pt", params)
    env = {**os.environ, **QUIET_ENV, "MLFLOW_TRACKING_URI": mlflow_server.url}
    go = tmp_path / "go"
    script = RACE.format(params_file=REPO_PARAMS, overrides=TINY_MODEL)
    racers = [subprocess.Popen([sys.executable, "-c", script, name, str(fd), str(generator), str(go)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
              for fd in (8.0, 6.0)]
    go.touch()
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    by_fd = {8.0: results[0], 6.0: results[1]}
    better, worse = by_fd[6.0], by_fd[8.0]
    versions = {str(r["version"]) for r in results}
    assert versions == {"1", "2"}
    script = """
        import json, sys, urllib.parse, urllib.request
        base, name = sys.argv[1], sys.argv[2]
        def get(path, **query):
            with urllib.request.urlopen(f"{base}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}") as r:
                return json.loads(r.read())
        versions = get("model-versions/search", filter=f"name='{name}'")["model_versions"]
        lock = get("registered-models/search", filter="name LIKE '%promotion-lock%'").get("registered_models", [])
        champion = get("registered-models/alias", name=name, alias="champion")["model_version"]["version"]
        aliases = get("registered-models/get", name=name)["registered_model"].get("aliases", [])
        print(json.dumps({"champion": champion, "locks": len(lock), "aliases": sorted(a["alias"] for a in aliases),
            "tags": {v["version"]: {t["key"]: t["value"] for t in v.get("tags", [])} for v in versions}}))
        """
    seen = json.loads(subprocess.run([sys.executable, "-c", textwrap.dedent(script), mlflow_server.url, name],
                                     capture_output=True, text=True, check=True).stdout)
    assert seen["champion"] == str(better["version"])  # the better model wins whichever promoted first
    assert seen["aliases"].count("champion") == 1 and seen["aliases"].count("challenger") == 1
    assert seen["locks"] == 0
    better_tags, worse_tags = seen["tags"][str(better["version"])], seen["tags"][str(worse["version"])]
    assert better_tags["vgan.decision"] == "promoted"
    if worse_tags["vgan.decision"] == "promoted":  # the worse one went first and was champion for a while
        assert worse_tags["vgan.compared_to"] == "" and better_tags["vgan.compared_to"] == str(worse["version"])
        assert worse_tags["vgan.superseded_by"] == str(better["version"])
    else:  # the better one went first; the worse one was compared against it
        assert worse_tags["vgan.compared_to"] == str(better["version"]) and better_tags["vgan.compared_to"] == ""
    assert better["champion_version"] == int(seen["champion"])


@pytest.mark.servers
@pytest.mark.slow
def test_mlflow_on_postgresql_registers_and_serves_the_champion(postgres_server, mlflow_on_postgres, tmp_path,  # noqa: F811
                                                               monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_on_postgres.url)
    assert mlflow_on_postgres.extra["backend"].startswith("postgresql://")
    params = tiny_params("vgan-postgres-test", "model.num_classes=2")
    generator = write_generator(tmp_path / "generator.pt", params)
    result = registry.register_and_promote(params, generator, beating_static(3.0), [])
    assert (result["version"], result["champion_version"], result["promoted"]) == (1, 1, True)

    out = run_python("""
        import json, mlflow, pandas as pd
        videos = mlflow.pyfunc.load_model("models:/vgan-postgres-test@champion").predict(
            pd.DataFrame({"seed": [0, 1], "label": [1, 0]}))
        print(json.dumps([list(videos.shape), str(videos.dtype)]))
        """, env={"MLFLOW_TRACKING_URI": mlflow_on_postgres.url}, cwd=tmp_path)
    assert json.loads(out) == [[2, 4, 16, 16, 3], "uint8"]
    rows = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(postgres_server.extra["port"]), "-U", "postgres", "-d", "mlflow", "-tAc",
         "select count(*) from model_versions where name = 'vgan-postgres-test'"],
        capture_output=True, text=True, check=True)
    assert rows.stdout.strip() == "1"  # the registry lives in PostgreSQL


def test_prediction_models_are_refused_by_the_registry_in_one_line(tmp_path):

    from vgan.models.zoo import build_model
    from vgan.params import load_params
    from vgan.util.torch_files import atomic_save
    from vgan.train.generator_file import GENERATOR_FORMAT
    from vgan.util.errors import TrackingError

    params = load_params(REPO_PARAMS, [*TINY_MODEL, "model.name=predictor", "model.predictor.context_frames=2"])
    G, _ = build_model(params.model)
    atomic_save({"format": GENERATOR_FORMAT, "params": params.model_dump(mode="json"), "step": 1,
                 "G": G.state_dict(), "G_ema": G.state_dict()}, tmp_path / "generator.pt")
    with pytest.raises(TrackingError, match="predicts from context clips"):
        registry.register_and_promote(params, tmp_path / "generator.pt", {"fd_evaluator": 1.0}, [])
    assert not (tmp_path / "mlflow.db").exists()


def test_promote_outside_a_project_creates_no_store(tmp_path, monkeypatch, capsys):
    from vgan.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "params.yaml").write_text(Path(REPO_PARAMS).read_text())
    assert main(["promote"]) == 1
    assert "no MLflow store at sqlite:///" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()
