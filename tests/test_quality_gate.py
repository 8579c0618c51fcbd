"""The registry's quality gate with real components: an untrained generator, evaluated by `vgan evaluate`
against a trained evaluator, registered by `vgan register` in the sqlite registry, is never champion."""

from __future__ import annotations

import json

import pytest

from conftest import write_tiny_params
from test_sample import tiny_setup, write_test_shards
from test_tracking import workdir  # noqa: F401 - the fixture: a repo folder with the embedded store

pytestmark = pytest.mark.slow


def test_untrained_generator_is_registered_as_challenger_with_the_reason_and_never_champion(workdir, capsys):  # noqa: F811
    import mlflow

    from vgan.cli import main
    from vgan.evaluate.evaluator_stage import build_evaluator

    # a generator with its random initial weights, exported as `vgan train` exports one
    params, generator = tiny_setup(workdir, "registry.model_name=vgan-untrained-test",
                                   f"evaluate.evaluator_path={workdir / 'evaluator.pt'}", "evaluate.evaluator_steps=60")
    write_test_shards(workdir / "shards", train=32, val=16)
    build_evaluator(params, progress=False)
    flags = ["--params", str(write_tiny_params(workdir / "params.yaml")), "--set", f"shards.out_dir={workdir / 'shards'}",
             "--set", f"evaluate.evaluator_path={workdir / 'evaluator.pt'}",
             "--set", "registry.model_name=vgan-untrained-test"]
    assert main(["evaluate", "--generator", str(generator), *flags]) == 0
    metrics = json.loads((workdir / "metrics/evaluate.json").read_text())
    static = metrics["baseline_static_fd_evaluator"]
    assert metrics["num_clips"] == 16 and metrics["fd_evaluator"] > static
    capsys.readouterr()

    assert main(["register", "--generator", str(generator), *flags]) == 0  # the pipeline goes on
    gate_line, decision_line = capsys.readouterr().out.splitlines()[-2:]
    reason = (f"fails the quality gate: fd_evaluator {metrics['fd_evaluator']:.4g} is not below the static "
              f"baseline's {static:.4g}")
    assert gate_line == f"register: {reason}"
    assert decision_line == f"register: vgan-untrained-test v1 -> challenger; no champion ({reason}; no champion is made)"
    registered = json.loads((workdir / "metrics/register.json").read_text())
    assert (registered["promoted"], registered["champion_version"], registered["gate"]) == (False, None, "failed")
    assert registered["gate_reason"] == reason and registered["gate_baselines"] == ["static"]
    assert registered["value"] == pytest.approx(metrics["fd_evaluator"])

    client = mlflow.MlflowClient()
    version = client.get_model_version("vgan-untrained-test", "1")
    assert version.aliases == ["challenger"]
    assert version.tags["vgan.gate"] == "failed" and version.tags["vgan.reason"].startswith(reason)
    assert float(version.tags["metric.baseline_static_fd_evaluator"]) == pytest.approx(static)
    assert float(version.tags["metric.baseline_shuffled_fd_evaluator"]) == pytest.approx(
        json.loads((workdir / "metrics/evaluate_baselines.json").read_text())["scores"]["shuffled"]["fd_evaluator"])

    # `vgan promote` re-decides from the registry alone and shows the gate's verdict
    assert main(["promote", *flags]) == 0
    gate_line, decision_line = capsys.readouterr().out.splitlines()[-2:]
    assert gate_line == f"promote: {reason}" and decision_line.startswith("promote: vgan-untrained-test v1; no champion")
    with pytest.raises(Exception, match="champion"):
        client.get_model_version_by_alias("vgan-untrained-test", "champion")
