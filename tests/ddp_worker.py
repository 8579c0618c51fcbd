"""Entry point for the DDP equivalence test: ``torchrun ... tests/ddp_worker.py OUT PARAMS [--set k=v ...]``.

Rank r of N trains on the r-th slice of the same global batches a single process (N = 1) sees, so the
two runs must end with the same weights (within float rounding).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vgan.params import load_params  # noqa: E402
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


def train(out_root: Path, params_file: Path, overrides: list[str]) -> dict:
    params = load_params(params_file, overrides)
    rank, world_size = distributed.setup("cpu")
    try:
        trainer = Trainer(params, sliced_batches(rank, world_size), out_root=out_root, rank=rank,
                          world_size=world_size)
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
