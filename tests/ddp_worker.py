"""Entry point for the DDP tests: ``torchrun ... tests/ddp_worker.py OUT PARAMS [--set k=v ...]``.

Rank r of N trains on the r-th slice of the same global batches a single process (N = 1) sees, so the
two runs must end with the same weights (within float rounding).

With ``VGAN_TEST_KILL_RANK=r`` set, rank r SIGKILLs itself right after the first checkpoint is on disk,
on torchrun's first attempt only (``TORCHELASTIC_RESTART_COUNT=0``): the elastic-restart test's crash.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vgan.params import load_params  # noqa: E402
from vgan.train import checkpoint as ckpt  # noqa: E402
from vgan.train import distributed  # noqa: E402
from vgan.train.loop import Trainer  # noqa: E402

GLOBAL_BATCH = 8
BATCHES_PER_EPOCH = 3


def sliced_batches(rank: int, world_size: int, shape=(3, 8, 16, 16)):
    """``batches(epoch, seed)``: deterministic global batches; this rank keeps its contiguous slice."""
    local = GLOBAL_BATCH // world_size

    def batches(epoch: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        for _ in range(BATCHES_PER_EPOCH):
            video = torch.rand(GLOBAL_BATCH, *shape, generator=generator) * 2 - 1
            labels = torch.randint(0, 10, (GLOBAL_BATCH,), generator=generator)
            yield video[rank * local:(rank + 1) * local], labels[rank * local:(rank + 1) * local]

    return batches


KILL_RANK_VARIABLE = "VGAN_TEST_KILL_RANK"
CHECKPOINT_WAIT_S = 120


class TrainerKilledAfterFirstCheckpoint(Trainer):
    """A Trainer whose rank ``victim`` dies by SIGKILL once the first checkpoint is on disk."""

    def __init__(self, *args, victim: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.victim = victim

    def save_checkpoint(self):
        path = super().save_checkpoint()
        if self.rank == self.victim:
            # rank 0 writes after gathering every rank's state, so wait until the file is there (the rename
            # makes it whole): a crash before it exists would test a fresh start, not a resume. Waiting on the
            # file, not a barrier, keeps the collectives the same on every rank, whatever its attempt number.
            written = ckpt.checkpoint_path(self.checkpoint_dir, self.state.step)
            deadline = time.monotonic() + CHECKPOINT_WAIT_S
            while not written.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{written} did not appear within {CHECKPOINT_WAIT_S} s")
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)
        return path


def train(out_root: Path, params_file: Path, overrides: list[str]) -> dict:
    params = load_params(params_file, overrides)
    rank, world_size = distributed.setup("cpu")
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is not None:  # the elastic test reads these lines to see that the agent restarted the ranks
        print(f"attempt {attempt} rank {rank} of {world_size} starts", flush=True)
    try:
        batches = sliced_batches(rank, world_size)
        if os.environ.get(KILL_RANK_VARIABLE) is not None and attempt == "0":
            trainer = TrainerKilledAfterFirstCheckpoint(params, batches, out_root=out_root, rank=rank,
                                                        world_size=world_size,
                                                        victim=int(os.environ[KILL_RANK_VARIABLE]))
        else:
            trainer = Trainer(params, batches, out_root=out_root, rank=rank, world_size=world_size)
        return trainer.run(progress=False)
    finally:
        distributed.teardown(world_size)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out_root", type=Path)
    parser.add_argument("params_file", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    train(args.out_root, args.params_file, args.overrides)
