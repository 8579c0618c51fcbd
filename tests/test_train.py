"""The trainer: exact resume after SIGKILL, corrupt-checkpoint fallback, NaN guard, incompatible resume."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import BIN, workspace_on, write_tiny_params
from vgan.util.errors import TrainingError
from vgan.params import load_params
from vgan.train import checkpoint as ckpt
from vgan.train.loop import Trainer


def synthetic_batches(nan_batches=()):
    """A deterministic batch source; batches whose index is in ``nan_batches`` contain NaN."""
    def batches(epoch, seed):
        generator = torch.Generator().manual_seed(seed)
        for index in range(4):
            video = torch.rand(4, 3, 8, 16, 16, generator=generator) * 2 - 1
            if epoch * 4 + index in nan_batches:
                video[0, 0, 0, 0, 0] = float("nan")
            yield video, torch.randint(0, 10, (4,), generator=generator)
    return batches


def tiny(tmp_path, *overrides):
    # colour synthetic batches: the channels a train stage would resolve from the shards are given here
    return load_params(write_tiny_params(tmp_path / "params.yaml"), ["model.channels=3", *overrides])


def test_non_finite_steps_are_skipped_and_counted(tmp_path):
    params = tiny(tmp_path, "train.steps=6", "train.max_bad_steps=3")
    trainer = Trainer(params, synthetic_batches(nan_batches={1, 3}), out_root=tmp_path)
    summary = trainer.run(progress=False)
    assert summary["steps"] == 6 and summary["skipped_steps"] == 2
    assert all(torch.isfinite(p).all() for p in trainer.G.parameters())


def test_too_many_consecutive_bad_steps_stop_with_the_last_good_checkpoint_kept(tmp_path):
    params = tiny(tmp_path, "train.steps=20", "train.max_bad_steps=3", "train.checkpoint_every=2")
    trainer = Trainer(params, synthetic_batches(nan_batches=set(range(4, 100))), out_root=tmp_path)
    with pytest.raises(TrainingError, match="3 consecutive non-finite losses at step 7"):
        trainer.run(progress=False)
    kept = ckpt.list_checkpoints(trainer.checkpoint_dir)
    assert kept[-1].name == "step-00000004.pt"
    state = ckpt.load_checkpoint(kept[-1])
    assert all(torch.isfinite(t).all() for t in state["G"].values() if t.is_floating_point())


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path):
    params = tiny(tmp_path, "train.steps=4", "train.checkpoint_every=2")
    first = Trainer(params, synthetic_batches(), out_root=tmp_path)
    first.run(progress=False)
    latest = ckpt.list_checkpoints(first.checkpoint_dir)[-1]
    latest.write_bytes(latest.read_bytes()[:1000])  # a torn write from another tool
    second = Trainer(params, synthetic_batches(), out_root=tmp_path)
    with pytest.warns(UserWarning, match="step-00000004.pt is corrupt"):
        assert second.resume()
    assert second.state.step == 2


def test_resume_from_a_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    params = tiny(tmp_path, "train.steps=2", "train.checkpoint_every=2")
    Trainer(params, synthetic_batches(), out_root=tmp_path).run(progress=False)
    saved = ckpt.list_checkpoints(Trainer(params, synthetic_batches(), out_root=tmp_path).checkpoint_dir)[-1]
    wider = tiny(tmp_path, "model.width=16", f"train.resume_from={saved}")
    with pytest.raises(TrainingError, match="different model params"):
        Trainer(wider, synthetic_batches(), out_root=tmp_path).resume()


def _train_command(root: Path) -> list[str]:
    return [str(BIN / "vgan"), "train", "--no-progress", "--set", "train.steps=40", "--set", "train.checkpoint_every=5",
            "--set", "train.deterministic=true", "--set", "train.keep_checkpoints=2"]


@pytest.mark.slow
def test_sigkilled_run_resumes_to_bit_identical_weights(tiny_shards, tmp_path):
    env_db = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    import os

    env = {**os.environ, **env_db}
    runs = {}
    for name in ("uninterrupted", "killed"):
        root = workspace_on(tiny_shards, tmp_path / name)
        if name == "killed":
            process = subprocess.Popen(_train_command(root), cwd=root, env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 300
            while not list(root.glob("checkpoints/*/step-00000010.pt")) and time.monotonic() < deadline:
                assert process.poll() is None, "training ended before it could be killed"
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            process.wait()
            assert not (root / "models/generator.pt").exists()
        result = subprocess.run(_train_command(root), cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        if name == "killed":
            assert "resumed from" in result.stdout
        runs[name] = torch.load(root / "models/generator.pt", weights_only=True)
    for weights in ("G", "G_ema"):
        for key, tensor in runs["uninterrupted"][weights].items():
            assert torch.equal(tensor, runs["killed"][weights][key]), f"{weights}.{key} differs after resume"
