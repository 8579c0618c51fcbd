"""What the restoration models (super-resolution, frame interpolation) are given and compared with.

Deterministic maps of real clips (B, C, T, H, W) in [-1, 1]: area downscaling, bicubic and nearest
upscaling, keyframe selection, linear blending and repetition of keyframes; and the small residual 3D-conv
network both models add on top of their baseline (its last layer starts near zero, so an untrained model is
the baseline to within a few grey levels and training only has to improve on it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vgan.models.layers import ConditionalInput

OUTPUT_INIT_SCALE = 0.01  # the refiner's last layer: default initialisation times this


# -- super-resolution ------------------------------------------------------------------------------
def downscale(clips: torch.Tensor, scale: int) -> torch.Tensor:
    """Area (box) downscaling of every frame by ``scale``: each low-res pixel is the mean of a scale x scale block."""
    return F.avg_pool3d(clips, (1, scale, scale))


def upscale(clips: torch.Tensor, scale: int, mode: str) -> torch.Tensor:
    """Every frame upscaled by ``scale`` ("bicubic" or "nearest"), clamped to [-1, 1] (bicubic overshoots)."""
    batch, channels, frames, height, width = clips.shape
    flat = clips.transpose(1, 2).reshape(batch * frames, channels, height, width)
    options = {"align_corners": False} if mode == "bicubic" else {}
    big = F.interpolate(flat, scale_factor=scale, mode=mode, **options).clamp(-1, 1)
    return big.reshape(batch, frames, channels, height * scale, width * scale).transpose(1, 2)


def pixel_shuffle(features: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, C*s*s, T, h, w) -> (B, C, T, h*s, w*s), frame by frame."""
    batch, channels, frames, height, width = features.shape
    out = channels // (scale * scale)
    grid = features.reshape(batch, out, scale, scale, frames, height, width).permute(0, 1, 4, 5, 2, 6, 3)
    return grid.reshape(batch, out, frames, height * scale, width * scale)


def pixel_unshuffle(clips: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C*s*s, T, H/s, W/s), the inverse of ``pixel_shuffle``."""
    batch, channels, frames, height, width = clips.shape
    grid = clips.reshape(batch, channels, frames, height // scale, scale, width // scale, scale)
    return grid.permute(0, 1, 4, 6, 2, 3, 5).reshape(batch, channels * scale * scale, frames, height // scale,
                                                        width // scale)


# -- frame interpolation ---------------------------------------------------------------------------
def keyframe_indices(frames: int, every: int) -> list[int]:
    """Every ``every``-th frame from the first, and always the last: 16 frames, every 4 -> 0, 4, 8, 12, 15."""
    indices = list(range(0, frames, every))
    return indices if indices[-1] == frames - 1 else indices + [frames - 1]


def blend_weights(frames: int, keys: list[int]) -> torch.Tensor:
    """(T, K): frame t as the linear blend of its two surrounding keyframes (a keyframe is itself)."""
    weights = torch.zeros(frames, len(keys))
    for position, (start, end) in enumerate(zip(keys, keys[1:])):
        for t in range(start, end + 1):
            share = (t - start) / (end - start)
            weights[t] = 0
            weights[t, position], weights[t, position + 1] = 1 - share, share
    return weights


def hold_weights(frames: int, keys: list[int]) -> torch.Tensor:
    """(T, K): frame t repeats the latest keyframe at or before it (frame repetition)."""
    weights = torch.zeros(frames, len(keys))
    for t in range(frames):
        weights[t, max(position for position, key in enumerate(keys) if key <= t)] = 1
    return weights


def next_weights(frames: int, keys: list[int]) -> torch.Tensor:
    """(T, K): frame t takes the earliest keyframe at or after it (the keyframe an in-between frame moves to)."""
    weights = torch.zeros(frames, len(keys))
    for t in range(frames):
        weights[t, min(position for position, key in enumerate(keys) if key >= t)] = 1
    return weights


def mix_keyframes(keyframes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, C, K, H, W) keyframes and (T, K) weights -> (B, C, T, H, W) clips."""
    return torch.einsum("bckhw,tk->bcthw", keyframes, weights.to(keyframes.dtype))


# -- the residual network --------------------------------------------------------------------------
class ResidualRefiner(nn.Module):
    """Clip features in -> residual out, by 3x3x3 convolutions with skip connections.

    The noise (+ label) enters as a per-channel bias after the first layer; the output layer starts near zero.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int, blocks: int, z_dim: int, num_classes: int):
        super().__init__()
        self.cond = ConditionalInput(z_dim, num_classes)
        self.to_bias = nn.Linear(self.cond.out_dim, width)
        self.conv_in = nn.Conv3d(in_channels, width, 3, 1, 1)
        self.blocks = nn.ModuleList(nn.Conv3d(width, width, 3, 1, 1) for _ in range(blocks))
        self.conv_out = nn.Conv3d(width, out_channels, 3, 1, 1)
        with torch.no_grad():  # near zero, not zero: every layer gets a gradient from the first step
            self.conv_out.weight.mul_(OUTPUT_INIT_SCALE)
            self.conv_out.bias.zero_()

    def forward(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        bias = self.to_bias(self.cond(z, y))[:, :, None, None, None]
        h = F.leaky_relu(self.conv_in(x) + bias, 0.2)
        for block in self.blocks:
            h = h + F.leaky_relu(block(h), 0.2)
        return self.conv_out(h)
