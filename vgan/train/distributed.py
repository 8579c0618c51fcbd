"""Data-parallel training under torchrun: process group set-up and gradient averaging."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def setup(device_type: str) -> tuple[int, int]:
    """(rank, world_size); initialises the process group when launched by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def average_gradients(parameters, world_size: int) -> None:
    """Mean of every gradient across ranks, one flat all-reduce per call."""
    if world_size <= 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()


def teardown(world_size: int) -> None:
    if world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
