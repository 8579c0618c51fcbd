"""Params: validation messages name the key, the value and what was expected; the CLI exits 2 and writes nothing."""

from __future__ import annotations

import pytest

import yaml

from conftest import REPO, run_cli
from vgan.util.errors import ParamsError
from vgan.params import Params, dotted, load_params

PARAMS = REPO / "params.yaml"


def test_params_yaml_lists_every_key_the_code_reads_with_the_codes_default():
    listed = dotted(yaml.safe_load(PARAMS.read_text()))
    defaults = dotted(Params().model_dump(mode="json"))
    assert sorted(set(defaults) - set(listed)) == [], "keys the code reads that params.yaml does not list"
    assert sorted(set(listed) - set(defaults)) == [], "keys params.yaml lists that the code does not read"
    assert {key: value for key, value in listed.items() if value != defaults[key]} == {}, "params.yaml != defaults"


def test_a_missing_params_file_is_an_error_not_silent_defaults(tmp_path):
    with pytest.raises(ParamsError, match="params.yaml' does not exist"):
        load_params(tmp_path / "params.yaml")
    result = run_cli("vgan", "fetch", cwd=tmp_path, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_overrides_apply():
    params = load_params(PARAMS, ["train.steps=42", "train.betas=[0.0, 0.99]", "data.mnist_dir=null"])
    assert params.train.steps == 42
    assert params.train.betas == (0.0, 0.99)
    assert params.data.mnist_dir is None
    assert params.registry_model_name() == "vgan-moving-digits-motionshape"


@pytest.mark.parametrize("override, expected", [
    ("train.steps=abc", "parameter train.steps = 'abc': input should be a valid integer"),
    ("train.steps=0", "parameter train.steps = 0: input should be greater than or equal to 1"),
    ("model.resolution=48", "parameter model.resolution = 48: input should be 16, 32, 64, 128 or 256"),
    ("train.lossy=bce", "unknown parameter 'train.lossy'"),
    ("shards.resize_mode=stretch", "parameter shards.resize_mode = 'stretch'"),
    ("shards.executor=tcp://10.0.0.5:8786", "parameter shards.executor = 'tcp://10.0.0.5:8786': value error, "
                                            "expected 'local' or 'dask://host:port'"),
    ("steps", "--set 'steps': expected key.path=value"),
])
def test_bad_values_name_key_value_and_expectation(override, expected):
    with pytest.raises(ParamsError) as info:
        load_params(PARAMS, [override])
    assert expected in str(info.value)


def test_missing_explicit_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="does not exist"):
        load_params(tmp_path / "other.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("train:\n  steps: 5\n   lr_g: 3\n")  # a key indented deeper than its sibling
    with pytest.raises(ParamsError, match=r"not valid YAML: line 3, column \d+: mapping values are not allowed"):
        load_params(bad)


def test_run_identity_ignores_bookkeeping_but_not_the_model():
    base = load_params(PARAMS)
    longer = load_params(PARAMS, ["train.steps=5000", "train.log_every=1"])
    wider = load_params(PARAMS, ["model.width=64"])
    assert base.run_identity() == longer.run_identity()
    assert base.run_identity() != wider.run_identity()


@pytest.mark.parametrize("stage", ["fetch", "shards", "train", "sample", "evaluator", "evaluate", "register"])
def test_cli_bad_param_is_one_line_exit_2_and_writes_nothing(tmp_path, stage):
    (tmp_path / "params.yaml").write_text("train:\n  steps: 10\n")
    result = run_cli("vgan", stage, "--set", "train.batch_size=-3", cwd=tmp_path, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"vgan {stage}: error: parameter train.batch_size = -3: input should be greater than or equal to 1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_cli_help_lists_every_stage(tmp_path):
    result = run_cli("vgan", "--help", cwd=tmp_path)
    for stage in ("fetch", "shards", "train", "sample", "evaluator", "evaluate", "register", "promote", "models"):
        assert stage in result.stdout
