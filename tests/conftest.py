"""Shared fixtures: a tiny, fast configuration and a temporary git + DVC repository running it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from configobj import ConfigObj

from vgan import QUIET_ENV

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

for _key, _value in {**QUIET_ENV, "PYTHONDONTWRITEBYTECODE": "1"}.items():
    os.environ.setdefault(_key, _value)

# Small enough for seconds on 2 CPU cores, large enough that every stage does real work.
TINY_PARAMS = {
    "data": {"num_videos": 24, "frames": 16, "frame_size": 32, "digit_size": 14, "fps": 8},
    "shards": {"clip_frames": 8, "clips_per_video": 2, "size": 16, "val_fraction": 0.25, "workers": 2},
    "model": {"name": "vgan", "resolution": 16, "frames": 8, "width": 8, "z_dim": 16},
    "train": {"steps": 6, "batch_size": 4, "checkpoint_every": 3, "log_every": 2, "sample_every": 3,
              "num_workers": 0, "shuffle_buffer": 16},
    "sample": {"num_samples": 4},
    "evaluate": {"num_samples": 16, "batch_size": 8, "evaluator_steps": 15, "evaluator_batch_size": 8,
                 "evaluator_width": 4, "evaluator_num_workers": 0, "evaluator_shuffle_buffer": 16,
                 "min_evaluator_accuracy": 0.0},
    "registry": {"metric": "fd_evaluator", "direction": "minimize"},
}


def write_tiny_params(path: Path, **overrides) -> Path:
    """The repository's params.yaml with the tiny values; overrides as group__key=value."""
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    for group, values in TINY_PARAMS.items():
        tree[group].update(values)
    for key, value in overrides.items():
        group, name = key.split("__", 1)
        tree.setdefault(group, {})[name] = value
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def run_cli(*args, cwd: Path, check: bool = True, timeout: float = 600, env: dict | None = None):
    """Run a command from the virtual environment's bin folder; returns the CompletedProcess."""
    command = [str(BIN / args[0]), *args[1:]]
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout[-3000:]}\n"
                             f"stderr:\n{result.stderr[-3000:]}")
    return result


def make_repo(root: Path) -> Path:
    """A git + DVC repository with this project's pipeline and code (DVC hashes the code deps)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for folder in ("vgan", "flows"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    write_tiny_params(root / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "config", "user.email", "tests@vgan"], cwd=root, check=True)
    subprocess.run(["git", "config", "user.name", "vgan tests"], cwd=root, check=True)
    run_cli("dvc", "init", "-q", cwd=root)
    run_cli("dvc", "remote", "add", "-d", "local", str(root / ".dvc-remote"), cwd=root)
    # The project's plots settings, as a clone has them: its offline page template (under vgan/, copied above).
    for key, value in ConfigObj(str(REPO / ".dvc" / "config")).get("plots", {}).items():
        run_cli("dvc", "config", f"plots.{key}", value, cwd=root)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "tiny pipeline"], cwd=root, check=True)
    return root


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """A temp git + DVC repo on the tiny config, after one full `dvc repro` (shared by the session)."""
    root = make_repo(tmp_path_factory.mktemp("pipeline") / "repo")
    run_cli("dvc", "repro", cwd=root, env={"MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"})
    return root


@pytest.fixture
def tiny_params_file(tmp_path) -> Path:
    return write_tiny_params(tmp_path / "params.yaml")


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    """`vgan fetch` + `vgan shards` once per session on the tiny config (36 train clips of 8x16x16)."""
    root = tmp_path_factory.mktemp("tiny_shards")
    write_tiny_params(root / "params.yaml")
    run_cli("vgan", "fetch", cwd=root)
    run_cli("vgan", "shards", cwd=root)
    return root


def workspace_on(shards_root: Path, folder: Path) -> Path:
    """A fresh working folder that reads the shared tiny params and data (symlinked, never copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for item in ("params.yaml", "data"):
        (folder / item).symlink_to(shards_root / item)
    return folder
