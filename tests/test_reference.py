"""A reference run anyone can check: the generator file and checkpoints are the same bytes for the same state,
`make check-reference` (scripts/check_reference.py) names the first stage that differs, and the tiny
configuration's outputs are pinned by hash so a change that alters them is noticed."""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, run_cli, write_tiny_params
from test_trainer_features import clip_batches, tiny

from vgan.models.zoo import build_model
from vgan.params import Params, load_params
from vgan.train import checkpoint as ckpt
from vgan.train.generator_file import load_generator, save_generator
from vgan.train.loop import Trainer
from vgan.util.cpu import ISA_VARIABLE, PORTABLE_ISA, describe, pin_holds
from vgan.util.torch_files import atomic_save

_spec = importlib.util.spec_from_file_location("check_reference", REPO / "scripts" / "check_reference.py")
check_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_reference)
SCRIPT = REPO / "scripts" / "check_reference.py"
SMALL_MODEL = ["model.resolution=16", "model.frames=8", "model.width=4", "model.z_dim=8", "model.channels=3"]


def rebuilt(params: Params) -> Params:
    """Equal params built another way (from JSON text, as a resumed or reloaded run has them)."""
    return Params.model_validate(json.loads(json.dumps(params.model_dump(mode="json"))))


# -- the same state, the same bytes ---------------------------------------------------------------
def test_generator_file_is_the_same_bytes_under_any_name_in_any_folder(tmp_path):
    params = load_params(REPO / "params.yaml", SMALL_MODEL)
    torch.manual_seed(0)
    G, _ = build_model(params.model)
    first = save_generator(tmp_path / "run" / "models" / "generator.pt", params, params.group_hash("model"), 6, G, G)
    second = save_generator(tmp_path / "elsewhere" / "copy-7.pt", rebuilt(params), params.group_hash("model"), 6, G, G)
    blob = first.read_bytes()
    assert blob == second.read_bytes()
    # torch.save names the zip's records after the file it is given a path to (here: a temp name with the pid)
    records = zipfile.ZipFile(first).infolist()
    assert {record.filename.split("/")[0] for record in records} == {"archive"}
    assert {record.date_time for record in records} == {(1980, 0, 0, 0, 0, 0)}  # no timestamps
    for text in (str(tmp_path), "copy-7", f"tmp-{os.getpid()}"):
        assert text.encode() not in blob
    loaded, loaded_params = load_generator(second)
    assert loaded_params == params and loaded.trained_steps == 6
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), G.state_dict().values()))


def test_params_built_two_ways_pickle_differently_and_save_the_same(tmp_path):
    """Why atomic_save rebuilds containers: pickle writes a string once per object, so equal params built two ways
    (parsed YAML, a JSON round trip) pickle to different bytes; the saved files are equal."""
    dump = load_params(REPO / "params.yaml").model_dump(mode="json")
    twins = [copy.deepcopy(dump), json.loads(json.dumps(dump))]
    assert twins[0] == twins[1]
    plain = []
    for twin in twins:
        buffer = io.BytesIO()
        torch.save({"params": twin}, buffer)
        plain.append(buffer.getvalue())
    assert plain[0] != plain[1], "pickle no longer depends on object identity: this test's premise is gone"
    for number, twin in enumerate(twins):
        atomic_save({"params": twin}, tmp_path / f"{number}" / "state.pt")
    assert (tmp_path / "0" / "state.pt").read_bytes() == (tmp_path / "1" / "state.pt").read_bytes()


def test_the_default_params_hold_no_absolute_path():
    """The params dump goes into every generator file and checkpoint: with params.yaml's values, no machine path."""
    def strings(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    absolute = [text for text in strings(load_params(REPO / "params.yaml").model_dump(mode="json"))
                if text.startswith(("/", "~")) or text[1:3] == ":\\"]
    assert absolute == []


def test_training_checkpoint_is_the_same_bytes_in_another_run_folder(tmp_path):
    states = []
    for run in ("one", "two"):
        (tmp_path / run).mkdir()
        torch.manual_seed(0)
        trainer = Trainer(tiny(tmp_path / run, *SMALL_MODEL), clip_batches(), out_root=tmp_path / run)
        path = ckpt.checkpoint_path(tmp_path / run / "checkpoints", 0)
        atomic_save(trainer.state_dict(), path)
        states.append(path)
    assert states[0].read_bytes() == states[1].read_bytes()
    assert str(tmp_path).encode() not in states[0].read_bytes()
    assert ckpt.load_checkpoint(states[1])["format"] == ckpt.CHECKPOINT_FORMAT


# -- check_reference: hashing and comparing --------------------------------------------------------
def test_folder_hash_is_the_one_dvc_records(tmp_path):
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    folder = tmp_path / "samples"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.gif").write_bytes(b"GIF89a-b")
    (folder / "sub" / "a.json").write_text('{"a": 1}\n')
    (folder / "sub" / "__pycache__").mkdir()
    (folder / "sub" / "__pycache__" / "x.pyc").write_bytes(b"\0")  # .dvcignore'd
    (tmp_path / ".dvcignore").write_text("__pycache__/\n*.pyc\n")
    tree = Tree()
    for relpath in ("b.gif", "sub/a.json"):
        tree.add(tuple(relpath.split("/")), Meta(), HashInfo("md5", check_reference.file_md5(folder / relpath)))
    tree.digest()
    ignore = check_reference._ignored(tmp_path)
    assert check_reference.output_hash(folder, ignore) == (tree.hash_info.value, 2)
    assert check_reference.output_hash(tmp_path / "missing", ignore) is None


def fake_run(root: Path) -> dict:
    """A run's outputs in ``root`` and a reference lock that records exactly them."""
    files = {"data/raw/clip.mp4": b"mp4", "models/generator.pt": b"G", "samples/clip.gif": b"gif",
             "metrics/train.json": b'{"videos_per_s": 9}', "metrics/evaluate.json": b'{"fd_evaluator": 1.5}',
             "code.py": b"print(1)\n"}
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)

    def out(path):
        md5, files_in = check_reference.output_hash(root / path)
        return {"path": path, "md5": md5, **({"nfiles": files_in} if md5.endswith(".dir") else {})}

    code = {"path": "code.py", "md5": check_reference.file_md5(root / "code.py")}
    return {"schema": "2.0", "stages": {
        "fetch": {"deps": [code], "outs": [out("data/raw")]},
        "train": {"deps": [out("data/raw"), code], "outs": [out("metrics/train.json"), out("models/generator.pt")]},
        "sample": {"deps": [out("models/generator.pt")], "outs": [out("samples")]},
        "evaluate": {"deps": [out("models/generator.pt")], "outs": [out("metrics/evaluate.json")]},
    }}


def test_compare_says_same_for_every_stage_of_an_equal_run(tmp_path):
    reference = fake_run(tmp_path)
    (tmp_path / "metrics/train.json").write_text('{"videos_per_s": 11}')  # a timing: not compared
    lines, first = check_reference.compare(tmp_path, reference, {"fd_evaluator": 1.5})
    assert first == ""
    assert [line.split()[1:3] for line in lines[:4]] == [["fetch", "same"], ["train", "same"], ["sample", "same"],
                                                         ["evaluate", "same"]]
    assert "metrics/train.json (throughput, a timing)" in lines[4]
    assert check_reference.verdict(tmp_path, reference, first).startswith("check-reference: reproduced")


def test_compare_names_the_first_stage_that_differs_and_the_values(tmp_path):
    reference = fake_run(tmp_path)
    (tmp_path / "samples/clip.gif").write_bytes(b"gif, other frames")
    (tmp_path / "metrics/evaluate.json").write_text('{"fd_evaluator": 3.0}')
    lines, first = check_reference.compare(tmp_path, reference, {"fd_evaluator": 1.5})
    assert first == "sample"
    assert lines[1].split()[2] == "same" and lines[2].split()[1:3] == ["sample", "DIFFERS"]
    assert "samples md5" in lines[2] and "(reference " in lines[2]
    assert lines[3].split()[1:3] == ["evaluate", "differs"]
    assert "1 of 1 values differ: fd_evaluator 3 (reference 1.5, +100.0%)" in lines[3]
    assert "with the reference's code, params and inputs" in check_reference.verdict(tmp_path, reference, first)
    # within a stated tolerance the values pass; the file still differs
    lines, _ = check_reference.compare(tmp_path, reference, {"fd_evaluator": 2.9}, rtol=0.05)
    assert "every value within rtol 0.05" in lines[3]


def test_a_stage_whose_code_changed_since_the_reference_is_flagged(tmp_path):
    reference = fake_run(tmp_path)
    (tmp_path / "code.py").write_text("print(2)\n")
    (tmp_path / "models/generator.pt").write_bytes(b"G2")
    (tmp_path / "data/raw/clip.mp4").unlink()
    lines, first = check_reference.compare(tmp_path, reference, None)
    assert lines[0].split()[1:3] == ["fetch", "DIFFERS"] and "data/raw md5" in lines[0]
    assert lines[0].endswith("[changed since the reference: code.py]")
    assert first == "fetch" and "refresh the reference" in check_reference.verdict(tmp_path, reference, first)
    (tmp_path / "models").joinpath("generator.pt").unlink()
    lines, _ = check_reference.compare(tmp_path, reference, None)
    assert "models/generator.pt missing" in lines[1]


def script(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


def test_without_a_committed_reference_the_script_says_so_in_one_line(tmp_path):
    fake_run(tmp_path)
    result = script(cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("check-reference: error: no committed reference: HEAD:dvc.lock cannot be read")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    result = script("--lock", str(tmp_path / "nope.lock"), cwd=tmp_path)
    assert result.returncode == 2 and "reference lock" in result.stderr and "does not exist" in result.stderr


def test_the_script_reads_the_reference_from_a_commit(tmp_path):
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(fake_run(tmp_path), sort_keys=False))
    for command in (["init", "-q"], ["config", "user.email", "t@vgan"], ["config", "user.name", "t"],
                    ["add", "dvc.lock", "metrics/evaluate.json"], ["commit", "-qm", "reference"]):
        subprocess.run(["git", *command], cwd=tmp_path, check=True)
    result = script(cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("check-reference: reproduced")
    (tmp_path / "metrics/evaluate.json").write_text('{"fd_evaluator": 1.25}')  # as a new run would rewrite it
    result = script(cwd=tmp_path)
    assert result.returncode == 1
    assert "evaluate   DIFFERS" in result.stdout and "fd_evaluator 1.25 (reference 1.5, -16.7%)" in result.stdout


# -- the tiny configuration's outputs, pinned ------------------------------------------------------
# What `vgan fetch … evaluate` writes on the tiny configuration (tests/conftest.py) with one thread, in pipeline
# order. The tiny run pins the CPU kernels' code paths to AVX2 (VGAN_CPU_ISA=avx2, vgan/util/cpu.py; README, "Reproducing
# the reference run"), so its float hashes hold on any Intel x86-64 CPU with AVX2 and FMA and are checked there (not
# on an AMD EPYC: its pinned weights differ, cpu.PIN_VENDORS); the data stages' everywhere.
# A change that alters an output fails here: refresh this table (the failure prints the new one) and the committed
# reference run (`make run`, then commit dvc.lock and metrics/evaluate.json) in the same commit.
TINY_DATA_OUTPUTS = ("data/raw", "data/shards")
TINY_REFERENCE = {
    "data/raw": "26e58d6e01924c19e6b2f36f245c5690.dir",
    "data/shards": "1c58f064fe45536db64c0510e9c7d3b9.dir",
    "models/generator.pt": "e452064a957e502a404217325efdc14f",
    "plots/training_samples": "24020c4a74ce6a3035311f39767276e0.dir",
    "samples": "41ad6253cb4a141b952f506e77b717b3.dir",
    "metrics/evaluator.json": "e60b4188cfa06ffe441755d7c0a1fb67",
    "models/evaluator.pt": "8f72cad7323c184f6dd01b81d216f1d4",
    "metrics/evaluate.json": "3894f5ac3635fd9fcb1bdb057c156a4f",
    "metrics/evaluate_baselines.json": "efac08700ea04bcf30e13ff8302e8536",
    "reports/evaluation.md": "2efe2c43da2f38dfa9fdaee25139724c",
}
TINY_STAGES = ("fetch", "shards", "train", "sample", "evaluator", "evaluate")


def pipeline_outputs() -> dict[str, list[str]]:
    """dvc.yaml's outputs per stage (outs, metrics and plots, sorted as dvc.lock lists them) that check-reference
    compares, in pipeline order."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    outputs = {}
    for name in TINY_STAGES:
        entries = [out for kind in ("outs", "metrics", "plots") for out in stages[name].get(kind, [])]
        paths = sorted(out if isinstance(out, str) else next(iter(out)) for out in entries)
        outputs[name] = [path for path in paths if path not in check_reference.NOT_COMPARED]
    return outputs


def run_tiny(root: Path, **env: str) -> Path:
    """The tiny configuration's stages, fetch to evaluate, in ``root`` with one thread and the portable CPU pin (the same bits on any Intel AVX2 CPU)."""
    root.mkdir(parents=True, exist_ok=True)
    write_tiny_params(root / "params.yaml")
    env = {"OMP_NUM_THREADS": "1", ISA_VARIABLE: PORTABLE_ISA, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
           **env}
    for stage in TINY_STAGES:
        run_cli("vgan", stage, *(["--no-progress"] if stage in ("train", "evaluator") else []), cwd=root, env=env)
    return root


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny configuration's stages, run once."""
    return run_tiny(tmp_path_factory.mktemp("tiny_reference"))


def pinned_here() -> bool:
    """Whether the tiny run's float stages got the reference's code paths (vgan/util/cpu.py's pin holds here)."""
    return pin_holds({ISA_VARIABLE: PORTABLE_ISA})


def test_tiny_configuration_outputs_have_the_recorded_hashes(tiny_run):
    compared = [path for paths in pipeline_outputs().values() for path in paths]
    assert list(TINY_REFERENCE) == compared, "TINY_REFERENCE must list every output check-reference compares"
    found = {path: check_reference.output_hash(tiny_run / path)[0] for path in compared}
    table = "TINY_REFERENCE = {\n" + "".join(f'    "{path}": "{md5}",\n' for path, md5 in found.items()) + "}"
    changed = [path for path in compared if found[path] != TINY_REFERENCE[path]]
    message = (f"the tiny configuration's outputs changed, first {changed[:1]} ({len(changed)} in all); if that is "
               f"intended, paste this into tests/test_reference.py and refresh the reference run:\n{table}")
    assert not [path for path in changed if path in TINY_DATA_OUTPUTS], message
    if not pinned_here():
        pytest.skip(f"float outputs were recorded with the AVX2 pin, which this CPU cannot take "
                    f"({describe({ISA_VARIABLE: PORTABLE_ISA})})")
    assert not changed, message


def reference_of(run: Path, folder: Path) -> tuple[dict, Path, dict, Path]:
    """A reference lock (stages as dvc.lock lists them) and metrics file that record exactly ``run``'s outputs."""
    stages = {}
    for name, paths in pipeline_outputs().items():
        outs = []
        for path in paths:
            md5, files = check_reference.output_hash(run / path)
            outs.append({"path": path, "md5": md5, **({"nfiles": files} if md5.endswith(".dir") else {})})
        if name == "train":
            outs.append({"path": "metrics/train.json", "md5": "0" * 32})  # a timing: listed, never compared
        stages[name] = {"outs": outs}
    lock = folder / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}, sort_keys=False))
    metrics = folder / "evaluate.json"
    values = json.loads((run / "metrics/evaluate.json").read_text())
    metrics.write_text(json.dumps(values))
    return stages, lock, values, metrics


def test_check_reference_on_the_tiny_run(tiny_run, tmp_path):
    stages, lock, values, metrics = reference_of(tiny_run, tmp_path)
    result = script("--root", str(tiny_run), "--lock", str(lock), "--metrics", str(metrics), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[1:3] for line in result.stdout.splitlines()[:6]] == [[name, "same"] for name in TINY_STAGES]
    assert result.stdout.splitlines()[-1].startswith("check-reference: reproduced")

    stages["sample"]["outs"][0]["md5"] = "1" * 32 + ".dir"  # a reference whose samples were other clips
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}, sort_keys=False))
    metrics.write_text(json.dumps({**values, "fd_evaluator": values["fd_evaluator"] * 2}))
    result = script("--root", str(tiny_run), "--lock", str(lock), "--metrics", str(metrics), cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert [line.split()[2] for line in lines[:6]] == ["same", "same", "same", "DIFFERS", "same", "differs"]
    assert "fd_evaluator" in lines[5] and "-50.0%" in lines[5]
    assert "first difference at stage sample" in lines[-1]


AVX512_CAPS = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_CBWR": "AVX512", "ATEN_CPU_CAPABILITY": "avx512"}


@pytest.mark.skipif(not pinned_here(),
                    reason=f"the AVX2 pin cannot hold on this CPU ({describe({ISA_VARIABLE: PORTABLE_ISA})})")
def test_check_reference_says_reproduced_under_another_isa_cap(tiny_run, tmp_path):
    """A second run whose environment caps the CPU libraries at AVX-512 (how they run unpinned on this project's
    machine): the float stages' pin replaces those caps, so check-reference finds the first run's outputs."""
    second = run_tiny(tmp_path / "second", **AVX512_CAPS)
    _, lock, _, metrics = reference_of(tiny_run, tmp_path)
    result = script("--root", str(second), "--lock", str(lock), "--metrics", str(metrics), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("check-reference: reproduced")
