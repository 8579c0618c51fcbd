"""Params a careless user can type (issue 29): infinities, booleans for numbers, a frame rate of 1e-300, a path
no file system can hold, and stage outputs outside the project; each is one line, exit 2, nothing written."""

from __future__ import annotations

import shutil

import pytest

from conftest import REPO
from vgan.cli import main
from vgan.util.errors import ParamsError
from vgan.params import Params, default_tree, load_params


@pytest.mark.parametrize("stage, override, message", [
    ("train", "train.lr_g=.inf", "parameter train.lr_g = inf: input should be a finite number"),
    ("train", "train.lr_d=.nan", "parameter train.lr_d = nan: input should be a finite number"),
    ("train", "train.lr_g=1e999", "parameter train.lr_g = '1e999': input should be a finite number"),
    ("train", "train.steps=true", "parameter train.steps = True: expected a number, not a boolean"),
    ("train", "train.max_minutes=false", "parameter train.max_minutes = False: expected a number, not a boolean"),
    ("train", "model.z_dim=true", "parameter model.z_dim = True: expected a number, not a boolean"),
    ("train", "model.motionshape.max_displacement=.inf", "parameter model.motionshape.max_displacement = inf"),
    ("rate", "rate.fps=1e-300", "parameter rate.fps = '1e-300': input should be greater than or equal to 1"),
    ("rate", "rate.fps=1e300", "parameter rate.fps = '1e300': input should be less than or equal to 50"),
    ("fetch", "data.ucf101_split=true", "parameter data.ucf101_split = True: expected a number, not a boolean"),
])
def test_numbers_reject_non_finite_values_and_booleans(tmp_path, monkeypatch, capsys, stage, override, message):
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    assert main([stage, "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vgan {stage}: error: {message}") and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_a_boolean_param_still_takes_a_boolean_and_a_number_a_number():
    params = load_params(REPO / "params.yaml", ["train.compile=true", "train.lr_g=2e-4", "train.steps=7"])
    assert params.train.compile is True and params.train.lr_g == 2e-4 and params.train.steps == 7
    tree = default_tree()
    tree["train"]["lr_g"] = float("inf")
    with pytest.raises(Exception, match="finite"):
        Params.model_validate(tree)  # the schema itself, not only the loader


@pytest.mark.parametrize("override, message", [
    ("sample.out_dir=" + "a" * 10_000, "a path of 10000 bytes is longer than the 4096 a path can have"),
    ("sample.out_dir=x/" + "b" * 300, "a path part of 300 bytes is longer than the 255"),
    ("evaluate.i3d_weights=" + "c" * 5000, "longer than the 4096"),
])
def test_a_path_no_file_system_can_hold_is_one_short_line(tmp_path, monkeypatch, capsys, override, message):
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    assert main(["sample", "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and len(err) < 300 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.parametrize("stage, override", [
    ("sample", "sample.out_dir=../../x"),
    ("shards", "shards.out_dir=../elsewhere/shards"),
    ("fetch", "data.raw_dir=../raw"),
    ("fetch", "data.download_dir=sub/../../downloads"),
    ("train", "train.checkpoint_dir=../ckpt"),
    ("evaluator", "evaluate.evaluator_path=../evaluator.pt"),
    ("rate", "rate.out_dir=../ratings"),
    ("anomaly", "anomaly.out_dir=../anomaly"),
])
def test_an_output_climbing_out_of_the_project_is_refused_unless_allowed(tmp_path, monkeypatch, capsys, stage,
                                                                        override):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    shutil.copy(REPO / "params.yaml", project / "params.yaml")
    assert main([stage, "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    key = override.split("=")[0]
    assert f"vgan {stage}: error: {key} = " in err and "climbs out of the project" in err and "--allow-outside" in err
    assert len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]
    assert sorted(p.name for p in project.iterdir()) == ["params.yaml"]

    # allowed: announced, then the stage goes on (and stops at once here: it has no inputs)
    quick = ["--set", "data.source=folder", "--set", "data.folder=nowhere"] if stage == "fetch" else []
    assert main([stage, "--allow-outside", "--set", override, *quick]) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    landing = tmp_path.parent if override.split("=")[1].startswith("../../") else tmp_path
    assert lines[0].startswith(f"vgan {stage}: note: {key} writes outside the project, to {landing}/"), lines
    assert not any("climbs out" in line for line in lines)


def test_an_absolute_output_outside_the_project_is_announced(tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    shutil.copy(REPO / "params.yaml", project / "params.yaml")
    assert main(["train", "--set", f"train.checkpoint_dir={tmp_path / 'scratch'}"]) == 1  # no shards: stops
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"vgan train: note: train.checkpoint_dir writes outside the project, to {tmp_path / 'scratch'}",
                     lines[1]] and "run `vgan shards` first" in lines[1]


def test_outputs_inside_the_project_pass_without_a_word(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    assert main(["sample", "--set", f"sample.out_dir={tmp_path / 'deep/samples'}"]) == 1  # absolute, but inside
    err = capsys.readouterr().err.strip()
    assert "run `vgan train` to write it" in err and "outside" not in err and len(err.splitlines()) == 1


def test_the_check_itself_raises_a_params_error():
    from vgan.cli import check_outputs

    params = load_params(REPO / "params.yaml", ["sample.out_dir=../../x"])
    with pytest.raises(ParamsError, match="sample.out_dir = '../../x' climbs out of the project"):
        check_outputs("sample", params, allowed=False)
    check_outputs("register", params, allowed=False)  # a stage that does not write sample.out_dir
