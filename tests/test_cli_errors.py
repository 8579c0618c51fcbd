"""Every stage a user runs out of order, or with a bad argument, ends in one error line and writes nothing."""

from __future__ import annotations

import shutil

import pytest

from conftest import REPO
from vgan.cli import foreign_overrides, main


@pytest.mark.parametrize("argv, message", [
    (["fetch", "--set", "data.source=folder", "--set", "data.folder=/nonexistent"], "is not a directory"),
    (["shards"], "run `vgan fetch` first"),
    (["train"], "run `vgan shards` first"),
    (["evaluator"], "run `vgan shards` first"),
    (["sample"], "run `vgan train` to write it"),
    (["evaluate"], "run `vgan evaluator` to train it"),
    (["register"], "run `vgan evaluate` first"),
    (["promote"], "run `vgan register` first"),
    (["models", "--set", "model.name=nope"], "unknown architecture"),
    (["train", "--set", "train.steps=-1"], "greater than or equal to 1"),
    (["train", "--set", "train.nope=1"], "unknown parameter"),
    (["train", "--set", "model.channels=2"], "model.channels = 2: value error, expected auto (the shards' channels), "
                                             "1 (grey) or 3 (colour)"),
    (["models", "--set", "model.channels=rgb"], "model.channels = 'rgb': value error, expected auto"),
])
def test_each_stage_out_of_order_or_misused_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, argv,
                                                                           message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vgan {argv[0]}: error: ") and message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_debug_adds_the_traceback_after_the_one_line_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    quiet_code, quiet = main(["train"]), capsys.readouterr().err
    loud_code, loud = main(["--debug", "train"]), capsys.readouterr().err
    monkeypatch.setenv("VGAN_DEBUG", "1")
    env_code, from_env = main(["train"]), capsys.readouterr().err
    assert quiet_code == loud_code == env_code != 0
    assert len(quiet.strip().splitlines()) == 1 and "Traceback" not in quiet
    for text in (loud, from_env):
        assert text.startswith(quiet.strip()) and "Traceback (most recent call last)" in text


def test_stage_param_groups_are_the_ones_dvc_yaml_lists():
    import yaml

    from vgan.cli import STAGE_PARAM_GROUPS, STAGE_PARAM_KEYS

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    entries = {name: [p if isinstance(p, str) else next(iter(p)) for p in stage.get("params", [])]
               for name, stage in stages.items()}
    # an entry is a whole group or one key; a key of another stage's group is one this stage also reads
    keys = {name: tuple(sorted(p for p in listed if "." in p and p.split(".")[0] not in STAGE_PARAM_GROUPS[name]))
            for name, listed in entries.items()}
    groups = {name: tuple(sorted({p.split(".")[0] for p in listed if p not in keys[name]}))
              for name, listed in entries.items()}
    assert {name: tuple(sorted(groups)) for name, groups in STAGE_PARAM_GROUPS.items()} == groups
    assert {name: keys[name] for name in keys if keys[name]} == STAGE_PARAM_KEYS
    # the key a stage reads from another group gets no "not read here" note
    assert foreign_overrides("shards", ["model.preset=paper"]) == []
    assert foreign_overrides("shards", ["model.width=8"]) != []


def test_a_parameter_of_another_stage_gets_a_one_line_note(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    # shards reads data/raw, which `vgan fetch` wrote: data.num_videos changes nothing here
    assert main(["shards", "--set", "data.num_videos=5", "--set", "shards.size=16",
                 "--set", "data.raw_dir=elsewhere"]) != 0  # nothing fetched into elsewhere/
    lines = capsys.readouterr().err.strip().splitlines()
    notes = [line for line in lines if ": note: " in line]
    assert notes == ["vgan shards: note: --set data.num_videos is a parameter of `vgan fetch`, which this stage does "
                     "not read (it reads shards); run `vgan fetch` with it, or `dvc repro` after setting it in "
                     "params.yaml"]  # its own group and a location pass without a note
    assert "Traceback" not in "\n".join(lines)


@pytest.mark.parametrize("module, argv, message", [
    ("flows.pipeline", ["--repo", "/nonexistent"], "/nonexistent has no dvc.yaml; pass --repo"),
    ("flows.pipeline", ["--repo", str(REPO), "--stage", "nope"], "no stage nope in "),
    ("flows.retrain", ["run", "--repo", "/nonexistent"], "/nonexistent has no dvc.yaml; pass --repo"),
    ("flows.deployments", ["serve", "--repo", "/nonexistent"], "/nonexistent has no dvc.yaml"),
])
def test_flow_entry_points_refuse_a_wrong_repo_or_stage_in_one_line(module, argv, message):
    # a process of its own, as a user runs it (and Prefect's log handlers never bind to a test's captured stderr)
    import os
    import subprocess
    import sys

    from vgan import QUIET_ENV

    done = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **QUIET_ENV}, timeout=120)
    err = done.stderr.strip()
    assert done.returncode == 2 and message in err and len(err.splitlines()) == 1, err


def test_a_corrupt_generator_and_a_yaml_error_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "generator.pt").write_bytes(b"not a checkpoint")
    assert main(["sample"]) != 0
    err = capsys.readouterr().err.strip()
    assert err == ("vgan sample: error: generator file models/generator.pt is corrupt or not a vgan file "
                   "(UnpicklingError); run `vgan train` to write it"), err
    (tmp_path / "bad.yaml").write_text("train:\n  steps: [1\n")
    assert main(["train", "--params", "bad.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.yaml: not valid YAML: line 3, column 1" in err and len(err.splitlines()) == 1, err
