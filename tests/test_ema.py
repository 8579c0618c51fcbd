"""The EMA generator: what is exported samples with its own batch-norm statistics."""

from __future__ import annotations

import shutil

import pytest
import torch

from test_trainer_features import clip_batches, tiny
from vgan.train.generator_file import load_generator
from vgan.train.loop import Trainer


def test_the_exported_ema_generator_samples_with_its_own_batch_norm_statistics(tmp_path, monkeypatch):
    """In eval mode the averaged generator must make what it makes with batch statistics, not the raw G's."""
    def eval_vs_batch_statistics() -> float:
        torch.manual_seed(0)
        params = tiny(tmp_path, "train.steps=8", "train.ema_decay=0.9", "train.lr_g=0.01", "train.augment=[translation]")
        Trainer(params, clip_batches(), out_root=tmp_path).run(progress=False)
        G, _ = load_generator(tmp_path / "models/generator.pt")
        z = G.sample_z(256, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            in_eval = G(z)
            in_train = G.train()(z)
        return float((in_eval - in_train).abs().mean())

    assert eval_vs_batch_statistics() < 0.02
    shutil.rmtree(tmp_path / "checkpoints")
    monkeypatch.setattr(Trainer, "refresh_ema_statistics", lambda self: None)  # no standing statistics
    assert eval_vs_batch_statistics() > 0.02


def test_with_ema_follows_rate_each_step_counts_as_much_as_the_rate_schedule_moves_the_generator(tmp_path, monkeypatch):
    """Under a decaying rate a per-step average would become the last generator where the rate reaches 0."""
    from vgan.train import steps
    from vgan.train.ema import ema_decay_at

    decays = []
    monkeypatch.setattr(steps, "update_ema", lambda ema, model, decay: decays.append(decay))
    for follows in (True, False):
        decays.clear()
        (tmp_path / str(follows)).mkdir()
        params = tiny(tmp_path / str(follows), "train.steps=8", "train.ema_decay=0.9", "train.lr_schedule=linear",
                      "train.lr_decay_start=0.5", f"train.ema_follows_rate={str(follows).lower()}")
        Trainer(params, clip_batches(), out_root=tmp_path / str(follows)).run(progress=False)
        # held to step 4, then down to 0 at step 8; without ema_follows_rate every step counts alike
        factors = [1, 1, 1, 1, 1, 0.75, 0.5, 0.25] if follows else [1] * 8
        assert decays == pytest.approx([ema_decay_at(0.9, step) ** factor for step, factor in enumerate(factors)])
    assert ema_decay_at(0.99, 10_000, 0.0) == 1.0  # no rate: the average stays put
