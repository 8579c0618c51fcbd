"""Which torch device a stage runs on: ``auto`` | ``cpu`` | ``cuda`` from its ``*.device`` param (train, anomaly).
torch is imported where used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vgan.util.errors import TrainingError

if TYPE_CHECKING:
    import torch


def select_device(name: str, setting: str = "train.device") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` (the value of the param ``setting``) as a device; cuda without one is an error."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"{setting} = 'cuda' but no CUDA device is available; use {setting}=auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)
