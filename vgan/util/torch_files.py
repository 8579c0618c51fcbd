"""The project's torch files (generators, checkpoints, the evaluator): written atomically with bytes that depend on
the values alone, read with tensors only and one-line errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from vgan.util.errors import VganError
from vgan.util.io import atomic_path


def load_torch_file(path: str | Path, what: str, remedy: str, error: type[VganError] = VganError,
                    map_location="cpu"):
    """``torch.load`` with tensors only; a missing, truncated or foreign file is one line naming ``what`` and
    the ``remedy``, never torch's multi-line message (which suggests ``weights_only=False``, unsafe)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist; {remedy}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, bad pickle, code in the pickle, ...
        raise error(f"{what} {path} is corrupt or not a vgan file ({exc.__class__.__name__}); {remedy}") from None


def atomic_save(obj, path: str | Path) -> None:
    """torch.save to a temp name in the same folder, fsync, then rename: never a half file.

    The bytes depend on ``obj``'s values alone, so the same state saves to the same file anywhere: torch.save
    writes to an open handle, so the zip's records are named ``archive/…`` (given a path, torch names them after
    the file, here the temp name with its process id) and carry no dates; and the plain containers are rebuilt
    with interned strings (``_canonical``), because pickle writes an equal string once or twice depending on
    whether it is one object or two, i.e. on how the params were built, not on their values."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(_canonical(obj), handle)
        handle.flush()
        os.fsync(handle.fileno())


def _canonical(obj):
    """``obj`` with its plain dicts, lists and tuples rebuilt and every str in them interned; anything else
    (tensors, state-dict OrderedDicts with their metadata) is kept as it is."""
    kind = type(obj)
    if kind is str:
        return sys.intern(obj)
    if kind is dict:
        return {_canonical(key): _canonical(value) for key, value in obj.items()}
    if kind in (list, tuple):
        return kind(_canonical(item) for item in obj)
    return obj
