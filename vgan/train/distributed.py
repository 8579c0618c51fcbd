"""Data-parallel training under torchrun: process group, gradient averaging, global-batch batch norm.

The design aims at one thing: N ranks with a per-rank batch of B/N train the same model as one process
with batch B (within float rounding). So gradients are averaged (each rank's loss is a mean over its
slice), latents are sliced from one global draw (see ``Trainer._latents``), and batch-norm statistics are
taken over the global batch (``convert_batchnorm``).
"""

from __future__ import annotations

import os
import warnings

import torch
import torch.distributed as dist
from torch import nn


def setup(device_type: str) -> tuple[int, int]:
    """(rank, world_size); initialises the process group when launched by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        store = _attempt_store()
        if store is None:
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(backend=backend, store=store, rank=int(os.environ["RANK"]),
                                    world_size=world_size)
    return dist.get_rank(), dist.get_world_size()


def _attempt_store() -> dist.Store | None:
    """This restart attempt's own namespace in torchrun's shared store, or None for torch's default store.

    torchrun's c10d agent keeps one store for every attempt (torch 2.13), and the process group publishes
    each rank's address under fixed keys there; after ``--max-restarts`` restarts the worker group, the
    new ranks read the dead ranks' addresses and fail with "Connection refused" (pytorch/pytorch#135712).
    A prefix per attempt hides the stale keys. ``TORCHELASTIC_RESTART_COUNT`` names the attempt alike on
    every rank only under one agent (one node); agents on several nodes count restarts on their own, so
    there the documented remedy is the agents' ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` (a fresh store
    per attempt, hosted by rank 0), and this returns None.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    if int(os.environ.get("GROUP_WORLD_SIZE", "1")) > 1:
        if int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0 and os.environ.get("RANK") == "0":
            warnings.warn("torchrun restarts on several nodes need TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in every "
                          "agent's environment (with --rdzv-backend=c10d): with the agents' shared store a "
                          "restarted worker group cannot connect (pytorch/pytorch#135712)")
        return None
    store, _, _ = next(dist.rendezvous("env://"))
    return dist.PrefixStore(f"vgan/attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def average_gradients(parameters, world_size: int, loss: torch.Tensor | None = None) -> torch.Tensor | None:
    """Mean of every gradient (and of ``loss``) across ranks in one flat all-reduce; returns the mean loss.

    Reducing the loss with the gradients costs no extra collective and gives every rank the same value,
    so the NaN guard takes the same decision everywhere (a rank that skipped alone would deadlock).
    """
    if world_size <= 1:
        return loss
    grads = [p.grad for p in parameters if p.grad is not None]
    pieces = [g.reshape(-1) for g in grads]
    dtype = grads[0].dtype if grads else torch.float32
    if loss is not None:
        pieces.append(loss.detach().reshape(1).to(dtype))
    if not pieces:
        return loss
    flat = torch.cat(pieces)
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()
    return flat[-1].to(loss.dtype) if loss is not None else None


def any_rank(flag: bool, world_size: int, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (e.g. the time budget ran out on one)."""
    if world_size <= 1:
        return flag
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_objects(obj, world_size: int) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if world_size <= 1:
        return [obj]
    gathered = [None] * world_size
    dist.all_gather_object(gathered, obj)
    return gathered


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) with autograd: the gradient of a sum over ranks is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _SumOverRanks.apply(grad.contiguous())


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover the batch of every rank (any backend, gloo included).

    ``nn.SyncBatchNorm`` runs on CUDA only; this one all-reduces per-channel (count, sum, centred sum of
    squares) in float64 with an autograd-aware all-reduce, so the backward pass is exact too. Outside
    training, or without a process group, it is plain batch norm. Parameters and buffers have the usual
    names, so state dicts load into ``nn.BatchNorm*d``.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        count = x.numel() // x.shape[1]
        local_var, local_mean = torch.var_mean(x.double(), dim=dims, unbiased=False)
        # per rank: n*m and M2 + n*m^2 sum to the global n*mean and sum of x^2 without catastrophic
        # cancellation (M2 comes from a centred pass; float64 carries the rest)
        stats = torch.cat([count * local_mean, count * (local_var + local_mean ** 2),
                           local_mean.new_tensor([float(count)])])
        stats = _SumOverRanks.apply(stats)
        channels = x.shape[1]
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels:2 * channels] / total - mean ** 2).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                unbiased = var * (total / (total - 1).clamp_min(1))
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        shape = [1, channels] + [1] * (x.dim() - 2)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight.double()
        shift = -mean * scale
        if self.affine:
            shift = shift + self.bias.double()
        return x * scale.to(x.dtype).view(shape) + shift.to(x.dtype).view(shape)


def convert_batchnorm(module: nn.Module, device_type: str) -> nn.Module:
    """Replace every batch norm under ``module`` by a global-batch one (nn.SyncBatchNorm on CUDA).

    Call before optimisers are built; modules held frozen in eval mode keep their running statistics
    (both replacements behave as plain batch norm outside training).
    """
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, (GlobalBatchNorm,
                                                                                       nn.SyncBatchNorm)):
        replacement = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                      module.track_running_stats)
        with torch.no_grad():
            if module.affine:
                replacement.weight = module.weight
                replacement.bias = module.bias
            if module.track_running_stats:
                replacement.running_mean = module.running_mean
                replacement.running_var = module.running_var
                replacement.num_batches_tracked = module.num_batches_tracked
        replacement.train(module.training)
        return replacement
    for name, child in module.named_children():
        converted = convert_batchnorm(child, device_type)
        if converted is not child:
            setattr(module, name, converted)
    return module


def barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()


def teardown(world_size: int) -> None:
    if world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
