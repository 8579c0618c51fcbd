"""DDP: 2 CPU processes (gloo) with the global batch split between them train what 1 process trains."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import write_tiny_params
from ddp_worker import train
from vgan.train import checkpoint as ckpt

HERE = Path(__file__).resolve().parent
# batch norm in G (VGAN) and several optimiser steps with EMA: the parts where ranks could drift apart
OVERRIDES = ["train.steps=4", "train.checkpoint_every=2", "train.log_every=1", "train.sample_every=100",
             "train.batch_size=8", "train.device=cpu", "train.ema_decay=0.5"]


def _torchrun(out_root: Path, params_file: Path, overrides: list[str], nproc: int = 2):
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
               str(HERE / "ddp_worker.py"), str(out_root), str(params_file)]
    for item in overrides:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def _max_difference(first: dict, second: dict, keys=None) -> float:
    assert first.keys() == second.keys()
    keys = first.keys() if keys is None else keys
    return max((first[k].double() - second[k].double()).abs().max().item() for k in keys
               if first[k].is_floating_point())


def _biases_before_batch_norm(params) -> set[str]:
    """Biases a batch norm cancels: their true gradient is 0, so Adam turns rounding noise into +-lr steps."""
    from vgan.models.registry import build_model

    G, _ = build_model(params.model)
    cancelled = set()
    for prefix, module in G.named_modules():
        if isinstance(module, torch.nn.Sequential):
            children = list(module.named_children())
            for (name, layer), (_, following) in zip(children, children[1:]):
                if isinstance(following, torch.nn.modules.batchnorm._BatchNorm) and getattr(layer, "bias", None) is not None:
                    cancelled.add(f"{prefix}.{name}.bias".lstrip("."))
    return cancelled


def _with_running_means(cancelled: set[str], keys) -> set[str]:
    """The cancelled biases plus the running means that track them (the next batch norm's)."""
    out = set(cancelled)
    for key in keys:
        if key.endswith(".running_mean"):
            prefix, index = key[:-len(".running_mean")].rsplit(".", 1)
            if f"{prefix}.{int(index) - 1}.bias" in cancelled:
                out.add(key)
    return out


@pytest.mark.slow
def test_two_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    params_file = write_tiny_params(tmp_path / "params.yaml")
    single_root, ddp_root = tmp_path / "single", tmp_path / "ddp"
    torch.set_num_threads(1)  # the same reduction order as the workers (OMP_NUM_THREADS=1)
    try:
        single = train(single_root, params_file, OVERRIDES)
    finally:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    result = _torchrun(ddp_root, params_file, OVERRIDES)
    assert result.returncode == 0, result.stderr[-3000:]

    one = torch.load(single_root / "models/generator.pt", weights_only=True)
    two = torch.load(ddp_root / "models/generator.pt", weights_only=True)
    assert one["step"] == two["step"] == single["steps"] == 4
    from vgan.models.registry import build_model
    from vgan.params import load_params

    params = load_params(params_file, OVERRIDES)
    cancelled = _biases_before_batch_norm(params)
    assert len(cancelled) == 4  # VGAN at 16x16: 2 foreground + 2 background (de)convolutions before a batch norm
    drifting = _with_running_means(cancelled, one["G"])
    assert len(drifting) == 8
    for weights in ("G", "G_ema"):  # G_ema includes the batch-norm running statistics (buffers)
        compared = [k for k in one[weights] if k not in drifting]
        assert _max_difference(one[weights], two[weights], compared) < 1e-5, weights
        # gradient-free biases: bounded by Adam's step size (lr per step, 4 steps) ...
        assert _max_difference(one[weights], two[weights], cancelled) <= 2 * 4 * params.train.lr_g
    # ... and invisible in what the user gets: the EMA generator's samples (eval mode, running stats)
    samples = []
    for state in (one, two):
        G, _ = build_model(params.model)
        G.load_state_dict(state["G_ema"])
        samples.append(G.eval()(G.sample_z(8, generator=torch.Generator().manual_seed(5))))
    assert torch.allclose(samples[0], samples[1], atol=1e-4)
    # the run really moved: weights differ from their initial values by far more than the tolerance
    first_ckpt = ckpt.load_checkpoint(ckpt.list_checkpoints(next((single_root / "checkpoints").iterdir()))[0])
    assert _max_difference(first_ckpt["G"], one["G"]) > 1e-3

    # rank 0 alone writes: one checkpoint folder with the steps of one run, one generator, one loss history
    folders = list((ddp_root / "checkpoints").iterdir())
    assert len(folders) == 1
    assert [p.name for p in ckpt.list_checkpoints(folders[0])] == ["step-00000002.pt", "step-00000004.pt"]
    saved = ckpt.load_checkpoint(ckpt.list_checkpoints(folders[0])[-1])
    assert len(saved["ranks"]) == 2  # each rank's data position and RNG state, for an exact DDP resume
    history = (ddp_root / "plots/train_losses.csv").read_text().splitlines()
    assert len(history) == 1 + 4
    # the logged losses are global-batch means: the same numbers one process logs
    single_rows = (single_root / "plots/train_losses.csv").read_text().splitlines()
    header = history[0].split(",")
    for column in ("loss_d", "loss_g"):
        index = header.index(column)
        for row_two, row_one in zip(history[1:], single_rows[1:]):
            assert float(row_two.split(",")[index]) == pytest.approx(float(row_one.split(",")[index]), abs=1e-4)


def test_global_batch_norm_matches_batch_norm_on_one_process():
    """Without a process group the replacement is plain batch norm, and its state dict is interchangeable."""
    from torch import nn

    from vgan.train.distributed import GlobalBatchNorm, convert_batchnorm

    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv3d(3, 4, 3), nn.BatchNorm3d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6 * 6, 2),
                          nn.BatchNorm1d(2))
    converted = convert_batchnorm(nn.Sequential(*[m for m in __import__("copy").deepcopy(plain)]), "cpu")
    assert sum(isinstance(m, GlobalBatchNorm) for m in converted.modules()) == 2
    assert converted.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(5, 3, 8, 8, 8)
    assert torch.allclose(plain(x), converted(x), atol=1e-6)
    plain.eval(), converted.eval()
    assert torch.allclose(plain(x), converted(x), atol=1e-6)
