"""What training leaves behind besides checkpoints: G_ema's standing statistics, preview GIFs, the loss plot's
CSV, the generator file and ``metrics/train.json``.

``TrainingOutputs`` is a part of ``vgan.train.loop.Trainer`` (it reads the trainer's models, ``state``, ``cfg``,
rank and logger); only rank 0 writes files.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from vgan.train.ema import standing_statistics
from vgan.train.generator_file import save_generator
from vgan.util.io import atomic_path, write_json

PLOT_FILE = "plots/train_losses.csv"
GENERATOR_FILE = "models/generator.pt"
EMA_STATISTICS_CLIPS = 256  # generated clips behind G_ema's standing batch-norm statistics
TRAIN_METRICS_FILE = "metrics/train.json"


class TrainingOutputs:
    """Outputs of the ``Trainer``."""


    def refresh_ema_statistics(self) -> None:
        """Standing batch-norm statistics for G_ema from its own clips; every rank calls it (DDP all-reduces).

        Seeded by the step, so a resumed run computes what an uninterrupted one did; each rank draws the
        global batch and keeps its slice, as in training.
        """
        if self._ema_statistics_step == self.state.step:
            return  # G_ema's weights have not changed since (the last step is often also a sample step)
        if self.G.conditional and self._preview_context is None:
            return  # no real context clips yet (a resume at the final step): keep the checkpoint's statistics
        rng = torch.Generator(device=self.device).manual_seed(self.cfg.seed + self.state.step)
        local = self.cfg.batch_size // self.world_size
        batches = max(4, EMA_STATISTICS_CLIPS // self.cfg.batch_size)

        def inputs(_):
            z = self.G.sample_z(self.cfg.batch_size, device=self.device, generator=rng)
            labels = self.G.sample_labels(self.cfg.batch_size, device=self.device, generator=rng)
            mine = slice(self.rank * local, (self.rank + 1) * local)
            context = None
            if self.G.conditional:
                picks = torch.arange(self.cfg.batch_size, device=self.device) % len(self._preview_context)
                context = self._preview_context[picks[mine]]
            return z[mine], None if labels is None else labels[mine], context

        with self._autocast():
            standing_statistics(self.G_ema, inputs, batches)
        self._ema_statistics_step = self.state.step

    @torch.no_grad()
    def fixed_samples(self) -> torch.Tensor:
        """Fixed-noise samples of the EMA generator (conditional models get the conditions of fixed real clips)."""
        context = self._preview_context if self.G.conditional else None
        count = 8 if context is None else len(context)
        labels = None if self.fixed_y is None else self.fixed_y[:count]
        return self.G_ema.views(self.fixed_z[:count], labels, context)["video"]

    def log_sample_grid(self) -> None:
        """A GIF grid of fixed-noise samples at this step (once per step, also after a resume)."""
        path = self.root / "plots" / "training_samples" / f"step-{self.state.step:08d}.gif"
        if self.rank != 0 or path.exists() or (self.G.conditional and self._preview_context is None):
            return
        from vgan.util.media import to_uint8, upscale, video_grid, write_gif

        videos = to_uint8(self.fixed_samples())
        write_gif(upscale(video_grid(videos), 2), path, fps=8)
        self.logger.log_artifact(path, "training_samples")

    def write_plots(self) -> None:
        if self.rank != 0:
            return
        path = self.root / PLOT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.state.history:
            return
        columns = sorted({key for row in self.state.history for key in row}, key=lambda k: (k != "step", k))
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.state.history)

    def export_generator(self) -> Path:
        return save_generator(self.root / GENERATOR_FILE, self.params, self.model_hash, self.state.step, self.G,
                              self.G_ema)

    def write_train_metrics(self, summary: dict) -> None:
        if self.rank != 0:
            return
        write_json(self.root / TRAIN_METRICS_FILE, summary)
