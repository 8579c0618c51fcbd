"""Anomaly scores of clips and how well they rank: prediction error, frame difference, ROC AUC.

Scores are per frame, float (N, T), NaN where a rule cannot score a frame; a clip's score is the maximum
of its frame scores (an anomaly shows up wherever it happens in the clip). Pixels are on [0, 1].

- prediction error (``prediction_errors``): for every frame ``j >= c`` (``c`` = the predictor's context
  frames), the predictor sees the real frames ``j-c .. j-1`` (latent z = 0, the prior's mode) and predicts
  the frames that follow; frame ``j``'s error is the mean absolute difference between the first predicted
  frame and the real frame ``j``. Frames ``0 .. c-1`` have no score.
- relative prediction error (``relative_errors``), the predictor's score: frame ``j``'s error divided by the
  motion of the context it was shown (the mean frame difference of frames ``j-c+1 .. j-1``) plus a floor. An
  error means little on its own: a large, bold or fast digit is harder to predict to the pixel than a small
  slow one, and the spread of that between normal clips hides a digit that stops or turns back. In units of
  the motion it saw, a predictor that has learned the motion scores well below 1 on normal frames and about
  1 or more where the clip stops doing what its context showed; a predictor that has learned nothing (a copy
  of the last frame) scores about 1 everywhere.
- frame difference (``frame_differences``), the baseline: frame ``j >= 1``'s score is the mean absolute
  difference between frames ``j`` and ``j-1``; frame 0 has no score.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score


def _unit(clips: torch.Tensor) -> torch.Tensor:
    """Float (N, C, T, H, W) in [-1, 1] -> [0, 1]."""
    return (clips.float() + 1.0) / 2.0


@torch.no_grad()
def frame_differences(clips: torch.Tensor) -> np.ndarray:
    """(N, T): mean |frame j - frame j-1| per frame, NaN for frame 0; clips float (N, C, T, H, W) in [-1, 1]."""
    unit = _unit(clips)
    scores = np.full(unit.shape[:1] + unit.shape[2:3], np.nan)
    scores[:, 1:] = (unit[:, :, 1:] - unit[:, :, :-1]).abs().mean(dim=(1, 3, 4)).double().cpu().numpy()
    return scores


@torch.no_grad()
def prediction_errors(generator, clips: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 64,
                      device="cpu") -> np.ndarray:
    """(N, T): mean |predicted frame j - real frame j| from the ``c`` real frames before it, NaN for j < c.

    ``generator`` is a prediction model (``context_frames`` = c > 0); every window of c real frames is one
    prediction, so a clip of T frames costs T - c predictions. ``labels`` (N,) only for class-conditional
    generators."""
    context = generator.context_frames
    num_clips, _, num_frames = clips.shape[:3]
    scores = np.full((num_clips, num_frames), np.nan)
    # every (clip, target frame) pair, flattened so that batches mix windows of several clips
    pairs = [(clip, frame) for clip in range(num_clips) for frame in range(context, num_frames)]
    for start in range(0, len(pairs), batch_size):
        part = pairs[start:start + batch_size]
        windows = torch.stack([clips[clip, :, frame - context:frame] for clip, frame in part]).to(device)
        targets = torch.stack([clips[clip, :, frame] for clip, frame in part]).to(device)
        z = torch.zeros(len(part), generator.latent_dim, device=device)
        classes = labels[[clip for clip, _ in part]].to(device) if generator.num_classes else None
        predicted = generator(z, classes, windows, num_frames=1)[:, :, 0]
        errors = (_unit(predicted) - _unit(targets)).abs().mean(dim=(1, 2, 3)).double().cpu().numpy()
        for (clip, frame), error in zip(part, errors):
            scores[clip, frame] = error
    return scores


@torch.no_grad()
def discriminator_scores(discriminator, clips: torch.Tensor, labels: torch.Tensor | None = None,
                         batch_size: int = 64, device="cpu") -> np.ndarray:
    """(N,) minus the discriminator's logit of each whole clip: high where it judges the clip fake. ``labels``
    only for a class-conditional discriminator."""
    scores = []
    for start in range(0, len(clips), batch_size):
        batch_labels = None if labels is None else labels[start:start + batch_size].to(device)
        logits = discriminator(clips[start:start + batch_size].to(device), batch_labels).float()
        scores.append(-logits.reshape(len(logits), -1).mean(dim=1).cpu())
    return torch.cat(scores).numpy().astype(np.float64)


def relative_errors(errors: np.ndarray, differences: np.ndarray, context_frames: int, floor: float) -> np.ndarray:
    """(N, T): ``errors`` (``prediction_errors``) / (mean of ``differences`` (``frame_differences``) of frames
    ``j-c+1 .. j-1`` + ``floor``); NaN where ``errors`` is. ``floor`` > 0 (mean |difference| on [0, 1] pixels)
    keeps still context from turning tiny errors into large scores."""
    if floor <= 0:
        raise ValueError(f"the motion floor must be > 0, got {floor}")
    scores = np.full(errors.shape, np.nan)
    for frame in range(context_frames, errors.shape[1]):
        motion = differences[:, frame - context_frames + 1:frame].mean(axis=1) if context_frames > 1 else 0.0
        scores[:, frame] = errors[:, frame] / (motion + floor)
    return scores


def clip_scores(frame_scores: np.ndarray) -> np.ndarray:
    """(N,): each clip's highest frame score (frames without a score are skipped)."""
    return np.nanmax(frame_scores, axis=1)


def roc_auc(scores, positive) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``): the chance that a random positive scores
    higher than a random negative, ties counting one half. NaN without both classes, or where a score is NaN
    (a rule that could not score, e.g. no discriminator)."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    if scores.shape != positive.shape:
        raise ValueError(f"scores {scores.shape} and labels {positive.shape} differ in shape")
    if positive.all() or not positive.any() or np.isnan(scores).any():
        return float("nan")
    return float(roc_auc_score(positive.ravel(), scores.ravel()))
