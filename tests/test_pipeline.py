"""End to end: the whole DVC pipeline on the tiny config in a temp git + DVC repo, checked as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_cli

pytestmark = pytest.mark.slow


def test_shards_hold_as_many_samples_as_the_manifest_says(tiny_repo):
    manifest = json.loads((tiny_repo / "data/shards/manifest.json").read_text())
    assert manifest["clip_shape"] == [8, 16, 16, 3]
    for split, expected in manifest["counts"].items():
        keys = set()
        for shard in sorted((tiny_repo / "data/shards").glob(f"{split}-*.tar")):
            with tarfile.open(shard) as tar:
                keys |= {member.name.split(".", 1)[0] for member in tar.getmembers()}
        assert len(keys) == expected > 0
    videos = {key.rsplit("_", 1)[0] for key in keys}
    assert videos, "val clips come from whole videos"


def test_training_leaves_checkpoint_generator_and_curves(tiny_repo):
    checkpoints = list((tiny_repo / "checkpoints").glob("*/step-*.pt"))
    assert [p.name for p in sorted(checkpoints)] == ["step-00000003.pt", "step-00000006.pt"]
    assert sorted(p.name for p in (tiny_repo / "plots/training_samples").glob("*.gif")) == [
        "step-00000003.gif", "step-00000006.gif"]
    assert (tiny_repo / "models/generator.pt").stat().st_size > 0
    curves = (tiny_repo / "plots/train_losses.csv").read_text().splitlines()
    assert curves[0].startswith("step,") and len(curves) == 1 + 3  # logged at steps 2, 4, 6
    assert json.loads((tiny_repo / "metrics/train.json").read_text())["steps"] == 6


def test_samples_are_gif_mp4_and_contact_sheet_with_the_configured_frames(tiny_repo):
    index = json.loads((tiny_repo / "samples/index.json").read_text())
    assert index["model"] == "vgan" and index["step"] == 6 and index["num_samples"] == 4
    gifs = sorted((tiny_repo / "samples").glob("vgan_step6_seed0_0*.gif"))
    mp4s = sorted((tiny_repo / "samples").glob("vgan_step6_seed0_0*.mp4"))
    assert len(gifs) == len(mp4s) == 4
    with Image.open(gifs[0]) as gif:
        assert gif.n_frames == 8
    from vgan.data.video import probe

    assert probe(mp4s[0]).num_frames == 8
    with Image.open(tiny_repo / "samples" / index["contact_sheet"]) as sheet:
        width, height = sheet.size
    assert width > height  # 8 frames across, 4 clips down


def test_evaluate_reports_metrics_and_baselines(tiny_repo):
    metrics = json.loads((tiny_repo / "metrics/evaluate.json").read_text())
    for key in ("evaluator_val_accuracy", "fd_evaluator", "fd_evaluator_ci_low", "fd_evaluator_ci_high",
                "kvd_evaluator", "is_evaluator", "fd_motion", "label_consistency", "baseline_static_fd_evaluator"):
        assert np.isfinite(metrics[key]), key
    manifest = json.loads((tiny_repo / "data/shards/manifest.json").read_text())
    assert metrics["num_clips"] == min(16, manifest["counts"]["val"], manifest["counts"]["train"])  # tiny: 16 asked
    table = json.loads((tiny_repo / "metrics/evaluate_baselines.json").read_text())
    assert set(table["scores"]) == {"model", "real_vs_real", "static", "shuffled", "noise"}
    assert table["scores"]["real_vs_real"]["fd_motion"] < table["scores"]["shuffled"]["fd_motion"]
    report = (tiny_repo / "reports/evaluation.md").read_text()
    assert "| real_vs_real |" in report and "contact_sheet" in report and table["standing"] in report
    shown = run_cli("dvc", "metrics", "show", "--json", cwd=tiny_repo).stdout
    assert "fd_evaluator_ci_high" in shown and "evaluate_baselines" not in shown  # the table stays out of the way
    assert list(json.loads(shown)[""]["data"]) == ["metrics/evaluate.json"]  # the headline only


def test_registry_applies_the_quality_gate_to_the_evaluated_numbers(tiny_repo):
    metrics = json.loads((tiny_repo / "metrics/evaluate.json").read_text())
    register = json.loads((tiny_repo / "metrics/register.json").read_text())
    passes = metrics["fd_evaluator"] < metrics["baseline_static_fd_evaluator"]
    assert register["gate"] == ("passed" if passes else "failed") and register["gate_baselines"] == ["static"]
    # champion only through the gate; a 6-step generator usually fails it, and the pipeline still completed
    assert register["champion_version"] == (register["version"] if passes else None)
    assert register["reason"].startswith("no champion yet" if passes else "fails the quality gate: fd_evaluator")


def test_registered_version_loads_in_another_process(tiny_repo):
    register = json.loads((tiny_repo / "metrics/register.json").read_text())
    script = (
        "import mlflow, sys\n"
        f"mlflow.set_tracking_uri('sqlite:///{tiny_repo}/mlflow.db')\n"
        f"model = mlflow.pyfunc.load_model('models:/{register['name']}@challenger')\n"
        "videos = model.predict({'seed': [0, 1]})\n"
        "print(videos.shape, videos.dtype)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tiny_repo, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "(2, 8, 16, 16, 3) uint8"


def test_second_repro_is_a_noop(tiny_repo):
    started = time.monotonic()
    result = run_cli("dvc", "repro", cwd=tiny_repo, env={"MLFLOW_TRACKING_URI": f"sqlite:///{tiny_repo}/mlflow.db"})
    assert "Data and pipelines are up to date" in result.stdout, result.stdout
    assert time.monotonic() - started < 60  # generous: the ≤ 3 s figure is measured, not asserted


def test_dvc_push_then_pull_restores_the_data(tiny_repo):
    run_cli("dvc", "push", cwd=tiny_repo)
    manifest = tiny_repo / "data/shards/manifest.json"
    original = manifest.read_text()
    subprocess.run(["rm", "-rf", str(tiny_repo / "data/shards")], check=True)
    run_cli("dvc", "pull", "data/shards", cwd=tiny_repo)
    assert manifest.read_text() == original


def test_experiment_with_more_steps_shows_in_exp_show(tiny_repo):
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tiny_repo}/mlflow.db"}
    subprocess.run(["git", "add", "-A"], cwd=tiny_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "pipeline ran"], cwd=tiny_repo, check=True)
    run_cli("dvc", "exp", "run", "--set-param", "train.steps=8", "-n", "longer", cwd=tiny_repo, env=env)
    shown = run_cli("dvc", "exp", "show", "--json", cwd=tiny_repo).stdout
    assert "longer" in shown and '"steps": 8' in shown.replace(": 8,", ": 8")
    # `make exps`: the headline metrics and the settings that differ, with the baseline commit's results (it
    # carries dvc.lock and the metrics, so its row has values, not `!`)
    columns = next(line.split(":=", 1)[1].strip().replace("$$", "$")
                   for line in (REPO / "Makefile").read_text().splitlines() if line.startswith("EXP_COLUMNS"))
    table = run_cli("dvc", "exp", "show", "--no-pager", "--only-changed", "--keep", columns, "--md",
                    cwd=tiny_repo).stdout
    header, _, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.strip().splitlines()]
    assert header[:3] == ["Experiment", "Created", "fd_evaluator"] and "train.steps" in header
    assert len(header) <= 20 and "model.width" not in header, header  # `dvc exp show`: about 150
    assert not any(cell == "!" for row in rows for cell in row), table


def test_training_plots_are_three_charts_with_labelled_axes(tiny_repo):
    shown = run_cli("dvc", "plots", "show", "--json", cwd=tiny_repo).stdout
    assert sorted(json.loads(shown)["data"]) == ["Discriminator margin (real - fake logits)", "Throughput (videos/s)",
                                                 "Training losses"]  # no fourth, default chart of the CSV
    for label in ("loss (train.loss)", "mean real logit - mean fake logit", "videos/s"):
        assert f'"title": "{label}"' in shown


def test_mlflow_nests_the_stage_runs_and_links_dataset_model_and_media(tiny_repo):
    import hashlib

    import mlflow

    store = f"sqlite:///{tiny_repo}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)  # not a global another test set
    experiment = client.get_experiment_by_name("vgan-moving-digits").experiment_id
    # the fixture's `dvc repro` (other tests run experiments later, each its own pipeline run)
    first_train = client.search_runs([experiment], "tags.`vgan.stage` = 'train'", max_results=1,
                                     order_by=["attributes.start_time ASC"])[0]
    runs = client.search_runs([experiment], f"tags.`vgan.pipeline_id` = '{first_train.data.tags['vgan.pipeline_id']}'")
    by_stage = {run.data.tags["vgan.stage"]: run for run in runs}
    assert sorted(run.data.tags["vgan.stage"] for run in runs) == ["evaluate", "pipeline", "register", "train"]
    parent = by_stage.pop("pipeline")
    assert {run.data.tags["mlflow.parentRunId"] for run in by_stage.values()} == {parent.info.run_id}
    assert parent.info.status == "FINISHED" and parent.data.params["model.name"] == "vgan"
    assert by_stage["evaluate"].data.params["evaluate.num_samples"] == "16"  # the evaluate run shows what it measured with

    train = by_stage["train"]
    manifest = json.loads((tiny_repo / "data/shards/manifest.json").read_text())
    [dataset_input] = train.inputs.dataset_inputs
    assert dataset_input.dataset.name == "moving_digits-shards"
    assert dataset_input.dataset.digest == hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    assert json.loads(dataset_input.dataset.profile)["clips"] == manifest["counts"]
    assert any(key.startswith("system/cpu_utilization") for key in train.data.metrics)  # system metrics
    register = json.loads((tiny_repo / "metrics/register.json").read_text())
    version = client.get_model_version(register["name"], by_stage["register"].data.tags["vgan.registered_version"])
    [linked] = [output.model_id for output in train.outputs.model_outputs]
    assert client.get_logged_model(linked).source_run_id == by_stage["register"].info.run_id  # what was registered
    assert version.source.endswith(linked) or version.run_id == by_stage["register"].info.run_id

    # the version carries the decision, the reason and the primary metric with its baselines, nothing more
    metric_tags = sorted(key for key in version.tags if key.startswith("metric."))
    assert metric_tags == sorted(["metric.fd_evaluator", *(f"metric.baseline_{name}_fd_evaluator"
                                                           for name in ("real_vs_real", "static", "shuffled", "noise"))])
    assert {"vgan.decision", "vgan.reason", "vgan.gate"} <= set(version.tags) and len(version.tags) <= 13
    assert version.description == f"{version.tags['vgan.decision']}: {version.tags['vgan.reason']}"
    top = [item.path for item in client.list_artifacts(by_stage["register"].info.run_id)]
    assert any(path.endswith("contact_sheet.png") for path in top) and any(path.endswith(".gif") for path in top)
    assert client.list_artifacts(by_stage["register"].info.run_id, "images")  # the run page's image panel
