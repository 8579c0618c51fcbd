"""Exponential moving average of the generator's weights, and its own batch-norm statistics."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def ema_decay_at(decay: float, step: int, lr_factor: float = 1.0) -> float:
    """The decay at ``step``: ramps up from 0.1 so early averages are not dominated by the random init.

    ``lr_factor`` (``train.ema_follows_rate``) is the learning rate's multiplier at this step (the schedule's): a step
    counts in the average as much as it moves the generator, so the average spans the same stretch of the generator's
    path as the rate decays. With a per-step decay it spans ever less of it, and where the rate reaches 0 the average
    becomes the last generator (docs/training.md, "EMA")."""
    return min(decay, (1.0 + step) / (10.0 + step)) ** lr_factor


@torch.no_grad()
def update_ema(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    """Average the weights; batch-norm statistics are the EMA model's own (see ``standing_statistics``)."""
    torch._foreach_lerp_(list(ema_model.parameters()), list(model.parameters()), 1.0 - decay)


@torch.no_grad()
def standing_statistics(generator: nn.Module, inputs: Callable[[int], tuple], batches: int) -> None:
    """Recompute batch-norm running statistics from the generator's own activations (BigGAN's standing stats).

    The averaged weights make activations that the raw generator's statistics do not describe; sampling
    in eval mode with those gives washed-out clips. ``inputs(i)`` returns the arguments of
    ``generator.views`` for batch ``i``. Norms held in eval mode by the model (a frozen stage) keep theirs.
    """
    generator.train()
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    if norms:
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the batches below
        for index in range(batches):
            generator.views(*inputs(index))
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
    generator.eval()
