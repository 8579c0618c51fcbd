"""The trainer's resumable state and its round trip through checkpoint files (exact resume, also across ranks).

``Resumable`` is a part of ``vgan.train.loop.Trainer`` (it reads the trainer's models, optimisers, ``state``,
``latent_rng``, ``params``, rank and world size); the file format, atomic writes and RNG snapshots are in
``vgan.train.checkpoint``. The random streams of a run are derived from ``train.seed`` by the fixed rules below.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vgan.train import checkpoint as ckpt
from vgan.train import distributed
from vgan.util.errors import TrainingError
from vgan.util.torch_files import atomic_save

# Random streams of one run, each derived from train.seed by a fixed rule so no two coincide: the preview
# latents and labels, the training latents (shared by every rank), each rank's draws inside the models, and
# each epoch's data order.
PREVIEW_LATENTS, PREVIEW_LABELS, TRAINING_LATENTS = 1, 2, 3  # seed + this
RANK_STRIDE = 1_000_003  # rank r's global streams: seed + RANK_STRIDE * r (+ the step, after a world-size change)
EPOCH_STRIDE = 100_003  # epoch e's data order: seed * EPOCH_STRIDE + e


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    consecutive_bad_steps: int = 0
    skipped_steps: int = 0
    history: list = field(default_factory=list)


class Resumable:
    """Checkpoint writing and resuming for the ``Trainer``."""

    def state_dict(self) -> dict:
        s = self.state
        return {
            "format": ckpt.CHECKPOINT_FORMAT, "params": self.params.model_dump(mode="json"),
            "model_hash": self.model_hash, "step": s.step,
            "G": self.G.state_dict(), "G_ema": self.G_ema.state_dict(), "D": self.Ds.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "data": {"epoch": s.epoch, "batches_in_epoch": s.batches_in_epoch},
            "guard": {"consecutive_bad_steps": s.consecutive_bad_steps, "skipped_steps": s.skipped_steps},
            "history": s.history, "rng": ckpt.rng_state(), "latent_rng": self.latent_rng.get_state(),
        }

    def _rank_state(self) -> dict:
        """What differs between ranks: data position and the global RNG streams."""
        return {"epoch": self.state.epoch, "batches_in_epoch": self.state.batches_in_epoch, "rng": ckpt.rng_state()}

    def resume(self) -> bool:
        """Continue from this run's newest readable checkpoint, else from ``train.resume_from``."""
        # load to CPU: RNG states must be CPU tensors; load_state_dict moves weights and optimiser state
        found = ckpt.load_latest_checkpoint(self.checkpoint_dir, map_location="cpu")
        if found is None and self.cfg.resume_from:
            found = ckpt.load_checkpoint(self.cfg.resume_from, map_location="cpu"), Path(self.cfg.resume_from)
        self._check_ranks_resume_alike(found)
        if found is None:
            return False
        state, path = found
        if state["model_hash"] != self.model_hash:
            raise TrainingError(
                f"checkpoint {path} was trained with different model params (hash {state['model_hash']} != "
                f"{self.model_hash}); restore the model params or move {self.checkpoint_dir} away to start afresh")
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.Ds.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        own = {"epoch": state["data"]["epoch"], "batches_in_epoch": state["data"]["batches_in_epoch"],
               "rng": state["rng"]}
        ranks = state.get("ranks")
        if self.world_size > 1 or ranks:
            if ranks and len(ranks) == self.world_size:
                own = ranks[self.rank]
            else:  # another world size: shards split differently, so restart the epoch with fresh streams
                if self.rank == 0:
                    warnings.warn(f"{path} was written by {len(ranks) if ranks else 1} rank(s), this run has "
                                  f"{self.world_size}: the data epoch restarts and per-rank random streams are "
                                  f"re-seeded (the weights and optimiser state resume exactly)")
                seed_everything(self.cfg.seed + RANK_STRIDE * self.rank + state["step"])
                own = {"epoch": own["epoch"] + 1, "batches_in_epoch": 0, "rng": None}
        self.state = TrainState(step=state["step"], epoch=own["epoch"], batches_in_epoch=own["batches_in_epoch"],
                                consecutive_bad_steps=state["guard"]["consecutive_bad_steps"],
                                skipped_steps=state["guard"]["skipped_steps"], history=list(state["history"]))
        if own["rng"] is not None:
            ckpt.restore_rng_state(own["rng"])
        self.latent_rng.set_state(state["latent_rng"])
        self._last_saved = self.state.step
        if self.rank == 0:
            print(f"resumed from {path} at step {self.state.step}")
        return True

    def _check_ranks_resume_alike(self, found: tuple[dict, Path] | None) -> None:
        """Raise on every rank unless every rank found a checkpoint of the same step (or none found one)."""
        if self.world_size <= 1:
            return
        # each rank reads the checkpoint folder itself, and rank 0 alone writes it: on nodes that do not share
        # the folder, rank 0 would resume while the others start afresh, and their lockstep collectives would
        # mix two trainings. Every rank takes the same decision here, so none is left waiting for the others.
        steps = distributed.gather_objects(None if found is None else int(found[0]["step"]), self.world_size)
        if len(set(steps)) > 1:
            seen = ", ".join(f"rank {rank}: {'none' if step is None else f'step {step}'}"
                             for rank, step in enumerate(steps))
            raise TrainingError(f"the ranks found different checkpoints to resume from in {self.checkpoint_dir} "
                                f"({seen}); rank 0 alone writes checkpoints, so put train.checkpoint_dir on a "
                                f"filesystem every node shares")

    def save_checkpoint(self) -> Path | None:
        """Rank 0 writes; every rank must call it (their data positions and RNG states are gathered)."""
        ranks = distributed.gather_objects(self._rank_state(), self.world_size) if self.world_size > 1 else None
        self._last_saved = self.state.step
        if self.rank != 0:
            return None
        path = ckpt.checkpoint_path(self.checkpoint_dir, self.state.step)
        state = self.state_dict()
        if ranks is not None:
            state["ranks"] = ranks
        atomic_save(state, path)
        ckpt.prune_checkpoints(self.checkpoint_dir, self.cfg.keep_checkpoints)
        self.write_plots()
        return path
