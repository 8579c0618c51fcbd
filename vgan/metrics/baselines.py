"""Reference clips that give every metric a scale: real halves, static, temporally shuffled, noise."""

from __future__ import annotations

import numpy as np
import torch

from vgan.errors import VganError

BASELINE_NAMES = ("real_vs_real", "static", "shuffled", "noise")


def _time_axis(videos) -> int:
    # uint8 clips are in the on-disk layout (B, T, H, W, C); float clips in the code layout (B, C, T, H, W).
    if videos.ndim != 5:
        raise VganError(f"expected a batch of clips with 5 dimensions, got shape {tuple(videos.shape)}")
    return 1 if videos.dtype in (np.uint8, torch.uint8) else 2


def to_float_videos(videos, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Float (B, C, T, H, W) in [-1, 1] from uint8 (B, T, H, W, C) or float (B, C, T, H, W), numpy or torch.

    dtype: the result's dtype; None keeps a float input's own and gives float32 for uint8.
    """
    videos = torch.as_tensor(videos)
    if _time_axis(videos) == 1:
        return videos.permute(0, 4, 1, 2, 3).to(dtype or torch.float32) / 127.5 - 1.0
    return videos.to(dtype) if dtype is not None else videos.float() if not videos.is_floating_point() else videos


def static_clips(videos):
    """Each clip's first frame repeated over time: a generator that never moves."""
    axis = _time_axis(videos)
    first = videos[:, 0:1] if axis == 1 else videos[:, :, 0:1]
    repeats = [1] * 5
    repeats[axis] = videos.shape[axis]
    return first.repeat(*repeats) if isinstance(videos, torch.Tensor) else np.tile(first, repeats)


def shuffled_clips(videos, seed: int = 0):
    """Each clip's frames in a seeded random order (never the original order when T > 1)."""
    axis = _time_axis(videos)
    frames = videos.shape[axis]
    rng = np.random.default_rng(seed)
    out = videos.clone() if isinstance(videos, torch.Tensor) else videos.copy()
    for clip in range(len(videos)):
        order = rng.permutation(frames)
        if frames > 1 and (order == np.arange(frames)).all():
            order = np.roll(order, 1)
        index = torch.as_tensor(order) if isinstance(videos, torch.Tensor) else order
        if axis == 1:
            out[clip] = videos[clip][index]
        else:
            out[clip] = videos[clip][:, index]
    return out


def noise_clips(videos, seed: int = 0):
    """Uniform noise with the clips' shape and value range (0..255 uint8, or [-1, 1] float)."""
    rng = np.random.default_rng(seed)
    if _time_axis(videos) == 1:
        noise = rng.integers(0, 256, size=tuple(videos.shape), dtype=np.uint8)
    else:
        noise = rng.uniform(-1.0, 1.0, size=tuple(videos.shape)).astype(np.float32)
    return torch.from_numpy(noise).to(videos.device) if isinstance(videos, torch.Tensor) else noise


def real_halves(num_clips: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two disjoint, equal-size random halves of the real clips (the real-vs-real baseline)."""
    if num_clips < 4:
        raise VganError(f"the real-vs-real baseline needs at least 4 real clips, got {num_clips}")
    order = np.random.default_rng(seed).permutation(num_clips)
    half = num_clips // 2
    return np.sort(order[:half]), np.sort(order[half : 2 * half])


def baseline_clips(videos, seed: int = 0) -> dict:
    """Static, shuffled and noise versions of a batch of real clips, keyed by baseline name."""
    return {"static": static_clips(videos), "shuffled": shuffled_clips(videos, seed), "noise": noise_clips(videos, seed)}
