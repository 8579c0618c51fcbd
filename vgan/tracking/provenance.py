"""Provenance: which repository, commit, data and params made a run (the tags every MLflow run carries)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import yaml


def repo_root() -> Path:
    """The nearest folder upwards holding dvc.yaml, .dvc or .git; else the working directory."""
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if any((folder / marker).exists() for marker in ("dvc.yaml", ".dvc", ".git")):
            return folder
    return cwd


def git_commit(root: Path | None = None) -> str:
    """HEAD's commit, with ``-dirty`` when tracked files changed; ``unknown`` outside git."""
    root = root or repo_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def data_hash(root: Path | None = None) -> str:
    """Hash of the dataset outputs recorded in dvc.lock (shards, else fetch); ``none`` before any."""
    lock = (root or repo_root()) / "dvc.lock"
    if not lock.exists():
        return "none"
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    except yaml.YAMLError:
        return "none"
    for stage in ("shards", "fetch"):
        outs = (stages.get(stage) or {}).get("outs") or []
        if outs:
            digest = sorted((out.get("path", ""), out.get("md5", "")) for out in outs)
            return hashlib.sha256(json.dumps(digest).encode()).hexdigest()[:16]
    return "none"


def pipeline_id(params, data: str | None = None) -> str:
    """Shared by the stage runs of one pipeline: ``VGAN_PIPELINE_ID``, else data hash + params hash."""
    explicit = os.environ.get("VGAN_PIPELINE_ID")
    if explicit:
        return explicit
    blob = f"{data or data_hash()}:{params.group_hash()}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_tags(params, stage: str) -> dict[str, str]:
    data = data_hash()
    commit = git_commit()
    return {
        "vgan.stage": stage,
        "vgan.pipeline_id": pipeline_id(params, data),
        "vgan.git_commit": commit,
        "vgan.data_hash": data,
        "vgan.params_hash": params.group_hash(),
        "vgan.dataset": params.data.source,
        "vgan.model": params.model.name,
        "mlflow.source.git.commit": commit.removesuffix("-dirty"),
        "mlflow.source.name": f"vgan {stage}",  # the UI's "Source" column
        "mlflow.source.type": "LOCAL",
    }
