"""Inception score from class posteriors: exp E[KL(p(y|x) || p(y))], mean and std over splits."""

from __future__ import annotations

import numpy as np
import torch

from vgan.util.errors import VganError


def inception_score(probs, num_splits: int = 10) -> tuple[float, float]:
    """(mean, std) of the inception score over `num_splits` consecutive splits of (N, classes) posteriors."""
    # Split boundaries i*N//splits, as the reference implementations cut them.
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().cpu().numpy()
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or not np.isfinite(probs).all() or (probs < 0).any():
        raise VganError(f"inception score needs finite non-negative (N, classes) posteriors, got shape {probs.shape}")
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise VganError("inception score needs probabilities (rows summing to 1); apply softmax to the logits first")
    if len(probs) < num_splits:
        raise VganError(f"inception score with {num_splits} splits needs at least {num_splits} clips, got {len(probs)}")
    scores = []
    bounds = [index * len(probs) // num_splits for index in range(num_splits + 1)]
    for split in (probs[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])):
        marginal = split.mean(axis=0, keepdims=True)
        # 0·log 0 = 0: classes a clip gives no mass contribute nothing to its KL divergence.
        log_ratio = np.log(np.where(split > 0, split, 1.0)) - np.log(np.where(split > 0, marginal, 1.0))
        scores.append(np.exp((split * log_ratio).sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
