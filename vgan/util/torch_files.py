"""Reading the project's torch files (generators, checkpoints, the evaluator) with one-line errors."""

from __future__ import annotations

from pathlib import Path

from vgan.util.errors import VganError


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
