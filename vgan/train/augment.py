"""Differentiable augmentation of clips for the discriminators (DiffAugment, Zhao et al. 2020).

Every discriminator sees real and generated clips through the same random transforms, drawn afresh
for each call, so on small data it cannot memorise the training clips and the generator still gets
gradients through the transform. One draw per clip: every frame of a clip moves (or is cut) alike,
so augmentation never adds motion that is not in the clip.
"""

from __future__ import annotations

import torch

from vgan.models.layers import shift_pixels

POLICIES = ("color", "translation", "cutout")


def _per_clip(video: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) draws shaped (B, 1, 1, 1, 1) to broadcast over a clip."""
    return torch.rand(video.shape[0], 1, 1, 1, 1, device=video.device, dtype=video.dtype)


def color(video: torch.Tensor) -> torch.Tensor:
    """Random brightness, saturation and contrast per clip."""
    video = video + (_per_clip(video) - 0.5)
    mean = video.mean(dim=1, keepdim=True)
    video = (video - mean) * (_per_clip(video) * 2) + mean
    mean = video.mean(dim=(1, 2, 3, 4), keepdim=True)
    return (video - mean) * (_per_clip(video) + 0.5) + mean


def translation(video: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each clip by up to ``ratio`` of its side, filling with zeros."""
    batch, _, _, height, width = video.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-shift_y, shift_y + 1, (batch, 1, 1), device=video.device)
    dx = torch.randint(-shift_x, shift_x + 1, (batch, 1, 1), device=video.device)
    return shift_pixels(video, dy, dx, shift_y, shift_x)


def cutout(video: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` times the side at a random place in each clip (the same in every frame)."""
    batch, _, _, height, width = video.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height + 1 - size_y % 2, (batch, 1, 1), device=video.device) - size_y // 2
    left = torch.randint(0, width + 1 - size_x % 2, (batch, 1, 1), device=video.device) - size_x // 2
    rows = torch.arange(height, device=video.device)[None, :, None]
    cols = torch.arange(width, device=video.device)[None, None, :]
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)
    return video * (~inside)[:, None, None].to(video.dtype)


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def augment(video: torch.Tensor, policy: list[str] | tuple[str, ...]) -> torch.Tensor:
    """Apply the named transforms in order to a batch of clips (B, C, T, H, W); an empty policy is identity."""
    for name in policy:
        video = TRANSFORMS[name](video)
    return video
