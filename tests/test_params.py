"""Params: params.yaml is the one source of defaults; validation messages name the key, the value and what was
expected; the CLI exits 2 and writes nothing."""

from __future__ import annotations

import typing

import pytest

import yaml
from pydantic import BaseModel

from conftest import REPO, run_cli
from vgan import params as params_module
from vgan.util.errors import ParamsError
from vgan.params import Params, default_params, dotted, load_params, params_from

PARAMS = REPO / "params.yaml"


def schema_models(kind=Params, found=None) -> list[type[BaseModel]]:
    """Every pydantic model the schema reaches from Params: its groups, their options, list items (UrlSource)."""
    found = [] if found is None else found
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        if kind in found:
            return found
        found.append(kind)
        for field in kind.model_fields.values():
            schema_models(field.annotation, found)
    for inner in typing.get_args(kind):
        schema_models(inner, found)
    return found


def schema_keys(model=Params, prefix: str = "") -> list[str]:
    """The dotted key of every field: a group's fields one by one, any other field (a list too) as one key."""
    keys = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += schema_keys(field.annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_the_schema_holds_no_default_params_yaml_holds():
    models = schema_models()
    assert {model.__name__ for model in models} >= {"Params", "DataParams", "ModelParams", "MocoganOptions",
                                                    "AnomalyParams", "UrlSource"}
    defaults = {f"{model.__name__}.{name}": field.get_default() for model in models
                for name, field in model.model_fields.items() if not field.is_required()}
    # the one default left: the optional filename of a data.urls entry; params.yaml lists no entry to hold one
    assert defaults == {"UrlSource.filename": None}, "a default in the schema: it belongs in params.yaml"


def test_params_yaml_lists_every_key_the_code_reads_and_validates_alone():
    tree = yaml.safe_load(PARAMS.read_text())
    listed, declared = dotted(tree), schema_keys()
    assert sorted(set(declared) - set(listed)) == [], "keys the code reads that params.yaml does not list"
    assert sorted(set(listed) - set(declared)) == [], "keys params.yaml lists that the code does not read"
    params = Params.model_validate(tree)  # no defaults filled in: params.yaml is complete on its own
    assert dotted(params.model_dump(mode="json")) == listed, "validation changed a value of params.yaml"


def test_the_defaults_are_the_repositorys_params_yaml_and_a_file_may_hold_only_what_it_changes(tmp_path):
    assert params_module.DEFAULTS_FILE == PARAMS
    assert default_params() == load_params(PARAMS)
    partial = tmp_path / "params.yaml"
    partial.write_text("train:\n  steps: 7\nmodel:\n  motionshape:\n    image_frames: 2\n")
    expected = load_params(PARAMS, ["train.steps=7", "model.motionshape.image_frames=2"])
    assert load_params(partial) == expected
    assert default_params(train={"steps": 7}, model={"motionshape": {"image_frames": 2}}) == expected


def test_params_saved_before_a_key_existed_read_back_with_params_yaml_value():
    saved = default_params(train={"steps": 9}).model_dump(mode="json")  # as a generator file or checkpoint holds
    del saved["model"]["motionshape"]["d_input_gain"]
    assert params_from(saved) == default_params(train={"steps": 9})


def test_an_edited_params_yaml_is_the_default_and_without_one_a_missing_key_is_named(tmp_path, monkeypatch):
    edited = tmp_path / "defaults.yaml"
    edited.write_text(PARAMS.read_text().replace("  steps: 4000 ", "  steps: 1234 "))
    partial = tmp_path / "params.yaml"
    partial.write_text("train:\n  batch_size: 8\n")
    monkeypatch.setattr(params_module, "DEFAULTS_FILE", edited)
    assert load_params(partial).train.steps == 1234 and default_params().train.steps == 1234
    # vgan run without its checkout: no defaults; a complete file still loads, a key left out is named
    monkeypatch.setattr(params_module, "DEFAULTS_FILE", tmp_path / "absent.yaml")
    assert load_params(PARAMS) == load_params(edited, ["train.steps=4000"])
    with pytest.raises(ParamsError, match=r"^parameter data is missing \(params.yaml lists every key"):
        load_params(partial)
    with pytest.raises(ParamsError, match="no defaults: .*absent.yaml' does not exist"):
        default_params()


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
