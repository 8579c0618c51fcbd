"""The EMA generator: what is exported samples with its own batch-norm statistics."""

from __future__ import annotations

import shutil

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
