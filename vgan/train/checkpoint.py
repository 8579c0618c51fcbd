"""Checkpoints: one atomic file per save, full training state, loaded with ``weights_only=True``."""

from __future__ import annotations

import contextlib
import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from vgan.util.errors import TrainingError
from vgan.util.torch_files import load_torch_file

CHECKPOINT_FORMAT = "vgan-checkpoint-1"
_NAME = re.compile(r"^step-(\d{8})\.pt$")


def rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng():
    """Run a block without moving the python, numpy and torch random streams."""
    state = rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


def checkpoint_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.pt"


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """One training checkpoint; TrainingError when it is missing, unreadable or not a checkpoint."""
    path = Path(path)
    state = load_torch_file(path, "checkpoint", "pass another file or delete it to start afresh", TrainingError,
                            map_location)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path} is not a vgan training checkpoint")
    return state


def load_latest_checkpoint(folder: str | Path, map_location="cpu") -> tuple[dict, Path] | None:
    """The newest checkpoint that loads; a corrupt one is reported and skipped."""
    for path in reversed(list_checkpoints(folder)):
        try:
            return load_checkpoint(path, map_location), path
        except TrainingError as exc:
            warnings.warn(f"{exc}; falling back to the previous checkpoint")
    return None
