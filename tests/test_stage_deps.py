"""DVC sees every code change that alters a result: each stage depends on exactly the code it can import."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO, make_repo, run_cli

_spec = importlib.util.spec_from_file_location("stage_deps", REPO / "scripts" / "stage_deps.py")
stage_deps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stage_deps)


def test_dvc_yaml_lists_exactly_the_code_each_stage_imports():
    assert stage_deps.drift() == [], "dvc.yaml's code deps drifted: run `python scripts/stage_deps.py --write`"


def test_the_closure_follows_lazy_and_by_name_imports_and_stops_there():
    fetch, train, register = (set(stage_deps.closure(stage)) for stage in ("fetch", "train", "register"))
    assert {"vgan/cli.py", "vgan/params.py", "vgan/data/fetch.py", "vgan/data/digits.py"} <= fetch  # lazy imports
    assert {"vgan/models/motionshape.py", "vgan/models/mocogan.py"} <= train  # the registry imports them by name
    assert "vgan/tracking/pyfunc_model.py" in register  # MLflow runs it by path
    assert not any(path.startswith(("vgan/models/motionshape", "vgan/train/", "vgan/tracking/runs")) for path in fetch)


def test_no_module_imports_itself_through_others():
    assert stage_deps.cycles(stage_deps.import_graph()) == []


def test_cycles_are_found():
    assert stage_deps.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _fake_outputs(root: Path) -> None:
    """A placeholder for every output in dvc.yaml, so `dvc commit` can record a lock without running stages."""
    for stage in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].values():
        for entry in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            path = root / (entry if isinstance(entry, str) else next(iter(entry)))
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "placeholder").write_text("x\n")


def _changed_stages(root: Path) -> set[str]:
    return set(json.loads(run_cli("dvc", "status", "--json", cwd=root).stdout or "{}"))


@pytest.mark.slow
def test_dvc_status_reports_exactly_the_stages_that_import_a_changed_file(tmp_path):
    root = make_repo(tmp_path / "repo")
    _fake_outputs(root)
    run_cli("dvc", "commit", "-f", "-q", cwd=root)
    assert _changed_stages(root) == set()
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for changed in ("vgan/data/shards.py", "vgan/models/motionshape.py", "vgan/metrics/frechet.py", "vgan/util/io.py"):
        path = root / changed
        original = path.read_text()
        path.write_text(original + "\n# changed\n")
        expected = {name for name, stage in stages.items() if changed in stage["deps"]}
        assert expected and _changed_stages(root) == expected, changed
        path.write_text(original)
    assert "fetch" not in {name for name, stage in stages.items() if "vgan/models/motionshape.py" in stage["deps"]}
    (root / "vgan" / "unused_helper.py").write_text("VALUE = 1\n")  # imported by no stage
    assert _changed_stages(root) == set()
