"""Local weights files for external feature networks: sha256 pinning, clear refusal, never a download."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from vgan.util.errors import MissingWeightsError
from vgan.util.io import sha256_file


@dataclass(frozen=True)
class WeightsFile:
    """A verified weights file: its path, sha256 and kind ("torchscript" or "state_dict")."""

    path: Path
    sha256: str
    kind: str


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    return sha256_file(path).hexdigest()


def _is_torchscript(path: Path) -> bool:
    # TorchScript archives carry their compiled code; torch.save archives hold only data.pkl + tensors.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/")[1:2] == ["code"] for name in archive.namelist())


def verify_weights(path: str | None, sha256: str | None, param: str, description: str) -> WeightsFile:
    """Check that the user-supplied weights file exists and matches its pinned sha256."""
    param_group, _, param_name = param.rpartition(".")
    sha_param = f"{param_group}.{param_name.replace('_weights', '_sha256')}"
    if not path:
        raise MissingWeightsError(f"this metric needs {description}: put the file on disk and set {param}=PATH "
                                  f"(with {sha_param}=<its sha256>); it is never downloaded")
    weights_path = Path(path).expanduser()
    if not weights_path.is_file():
        raise MissingWeightsError(f"{param}: {weights_path} does not exist; it should be {description}")
    actual = file_sha256(weights_path)
    if not sha256:
        raise MissingWeightsError(f"{param}: {weights_path} is not pinned; set {sha_param}={actual} if this is {description}")
    if actual.lower() != sha256.lower():
        raise MissingWeightsError(f"{param}: {weights_path} has sha256 {actual}, but {sha_param} pins {sha256}; "
                                  "wrong or corrupt file")
    return WeightsFile(weights_path, actual, "torchscript" if _is_torchscript(weights_path) else "state_dict")


def load_state_dict(weights: WeightsFile, param: str) -> dict[str, torch.Tensor]:
    """Tensors of a state-dict file (unwrapping {"state_dict": ...} and DataParallel's "module." prefix)."""
    try:
        loaded = torch.load(weights.path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with code, a truncated file: the user must supply another file
        raise MissingWeightsError(f"{param}: cannot read {weights.path} as a state dict ({exc.__class__.__name__})") from None
    while isinstance(loaded, dict) and len(loaded) == 1 and isinstance(next(iter(loaded.values())), dict):
        loaded = next(iter(loaded.values()))
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise MissingWeightsError(f"{param}: {weights.path} does not hold a state dict of tensors")
    return {key.removeprefix("module."): value for key, value in loaded.items()}


def load_into(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], param: str, path: Path) -> torch.nn.Module:
    """Load a state dict strictly, turning key or shape mismatches into one actionable line."""
    expected = model.state_dict()
    # BatchNorm step counters are absent from older exports and unused in eval mode.
    missing = sorted(k for k in set(expected) - set(state_dict) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state_dict) if expected[k].shape != state_dict[k].shape)
    if missing or unexpected or wrong_shape:
        problems = [f"{len(keys)} {what} (e.g. {keys[0]})" for keys, what in
                    ((missing, "missing keys"), (unexpected, "unexpected keys"), (wrong_shape, "wrong shapes")) if keys]
        raise MissingWeightsError(f"{param}: {path} does not fit {type(model).__name__}: {', '.join(problems)}")
    model.load_state_dict(state_dict, strict=False)
    return model.eval().requires_grad_(False)


def load_torchscript(weights: WeightsFile, param: str, needs: str) -> torch.jit.ScriptModule:
    """The TorchScript network in a verified weights file, in eval mode, on the CPU.

    needs: what the metric requires, named in the refusal when the file is a state dict instead.
    """
    if weights.kind != "torchscript":
        raise MissingWeightsError(f"{param}: {weights.path} is a state dict; {needs}")
    try:
        return torch.jit.load(str(weights.path), map_location="cpu").eval()
    except RuntimeError as exc:
        raise MissingWeightsError(f"{param}: cannot load TorchScript {weights.path}: {str(exc).splitlines()[0]}") from None


def network_device(network: torch.nn.Module) -> torch.device:
    """Where a feature network's weights live (CPU for a network without parameters)."""
    return next(iter(network.parameters()), torch.empty(0)).device
