"""Building blocks shared by the architectures."""

from __future__ import annotations

import math

import torch
from torch import nn


def spectral(module: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


def num_doublings(start: int, end: int) -> int:
    """How many 2x upsamplings take ``start`` to ``end`` (both powers-of-two multiples)."""
    return int(round(math.log2(end / start)))


def temporal_schedule(frames: int, num_layers: int) -> tuple[int, list[int]]:
    """Start length and per-layer temporal strides so ``num_layers`` layers reach ``frames``."""
    twos = 0
    while frames % (2 ** (twos + 1)) == 0 and twos < num_layers:
        twos += 1
    start = frames >> twos
    strides = [2] * twos + [1] * (num_layers - twos)
    return start, strides


class ProjectionHead(nn.Module):
    """Logit from pooled features, plus a class projection term when conditional (Miyato & Koyama)."""

    def __init__(self, features: int, num_classes: int, use_spectral_norm: bool = False):
        super().__init__()
        self.linear = spectral(nn.Linear(features, 1), use_spectral_norm)
        self.embed = spectral(nn.Embedding(num_classes, features), use_spectral_norm) if num_classes else None

    def forward(self, h: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("this discriminator is class-conditional: pass labels y")
            out = out + (self.embed(y) * h).sum(dim=1)
        return out


class ConditionalInput(nn.Module):
    """Concatenates a learned label embedding to the latent when the model is conditional."""

    def __init__(self, z_dim: int, num_classes: int, embed_dim: int | None = None):
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim or z_dim) if num_classes else None
        self.out_dim = z_dim + (self.embed.embedding_dim if self.embed is not None else 0)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.embed is None:
            return z
        if y is None:
            raise ValueError("this generator is class-conditional: pass labels y")
        return torch.cat([z, self.embed(y)], dim=1)
