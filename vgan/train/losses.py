"""Adversarial objectives and regularisers, selected by ``train.loss``.

Discriminator logits are raw scores; every function returns a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "bce":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if kind == "lsgan":
        return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * (fake_logits ** 2).mean()
    if kind in ("wgan", "wgan-gp"):
        return fake_logits.mean() - real_logits.mean()
    raise ValueError(f"unknown loss {kind!r}")


def generator_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "bce":  # non-saturating
        return F.softplus(-fake_logits).mean()
    if kind == "lsgan":
        return 0.5 * ((fake_logits - 1) ** 2).mean()
    if kind in ("hinge", "wgan", "wgan-gp"):
        return -fake_logits.mean()
    raise ValueError(f"unknown loss {kind!r}")


def gradient_penalty(discriminator, real: torch.Tensor, fake: torch.Tensor, y=None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al.): E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates."""
    alpha_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(alpha_shape, device=real.device, generator=generator, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = discriminator(mixed, y)
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def r1_penalty(discriminator, real: torch.Tensor, y=None) -> torch.Tensor:
    """R1 (Mescheder et al.): E[||grad D(x_real)||^2] / 2."""
    real = real.detach().requires_grad_(True)
    scores = discriminator(real, y)
    (grads,) = torch.autograd.grad(scores.sum(), real, create_graph=True)
    return 0.5 * grads.flatten(1).pow(2).sum(dim=1).mean()


def reconstruction_loss(kind: str, fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "l1":
        return F.l1_loss(fake, target)
    if kind == "l2":
        return F.mse_loss(fake, target)
    raise ValueError(f"unknown reconstruction loss {kind!r}; expected l1 or l2")


@torch.no_grad()
def clip_weights(module: torch.nn.Module, limit: float) -> None:
    """Original WGAN's Lipschitz constraint: clamp every weight to [-limit, limit] (one foreach call each way)."""
    weights = list(module.parameters())
    torch._foreach_clamp_min_(weights, -limit)
    torch._foreach_clamp_max_(weights, limit)


@torch.no_grad()
def clip_singular_values(module: torch.nn.Module, limit: float = 1.0) -> None:
    """TGAN's singular value clipping: clamp each weight matrix's singular values to <= limit."""
    for param in module.parameters():
        if param.dim() < 2:
            continue
        matrix = param.reshape(param.shape[0], -1)
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
        param.copy_(((u * s.clamp(max=limit)) @ vh).reshape_as(param))
