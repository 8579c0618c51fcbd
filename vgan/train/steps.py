"""The two halves of a GAN step, as functions of (modules and optimisers, train params, tensors).

The ``Trainer`` (``loop.py``) calls them once per step; ``bench/bench_train.py`` calls them directly. Nothing here
reads from the host inside a step: losses and gradient norms stay tensors until the loop logs them.
What keeps a step cheap:
- the generator runs once per step when ``train.n_critic`` is 1: its clips train the discriminators (detached)
  and then the generator itself (``GanModules.fake_views`` with grad);
- on CUDA, a discriminator with no layer that mixes clips of a batch judges real and fake clips in one forward on
  their concatenation (``couples_batch`` says which ones cannot: batch norm, minibatch-stddev). On the CPU two
  forwards are faster (no launch overhead to save, and the concatenation is a copy): the default's step took
  112 ms concatenated and 108 ms separate in one run (the closing note of issue 27 has the probe);
- R1 is lazy (StyleGAN2): every ``train.r1_every`` steps, its weight multiplied by that interval;
- the EMA update and WGAN's weight clipping are single ``torch._foreach_*`` calls.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from vgan.models.layers import MinibatchStd
from vgan.train import distributed
from vgan.train.augment import augment
from vgan.train.ema import ema_decay_at, update_ema
from vgan.train.losses import (clip_singular_values, clip_weights, discriminator_loss, generator_loss,
                               gradient_penalty, r1_penalty, reconstruction_loss)


@dataclass
class GanModules:
    """What a step reads and updates: the networks, their optimisers, the world size and the autocast context."""

    G: nn.Module
    G_ema: nn.Module
    Ds: nn.ModuleDict
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    world_size: int = 1
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    concatenate: bool = False  # real and fake in one discriminator forward where allowed (CUDA)
    _apart: dict = field(default_factory=dict)  # discriminator name -> judged in two forwards

    def judged_apart(self, name: str) -> bool:
        """Whether discriminator ``name`` judges real and fake clips in two forwards."""
        if name not in self._apart:
            self._apart[name] = not self.concatenate or couples_batch(self.Ds[name])
        return self._apart[name]


def couples_batch(module: nn.Module) -> bool:
    """Whether a clip's output depends on the other clips of its batch (then real and fake go separately)."""
    return any(isinstance(m, (nn.modules.batchnorm._BatchNorm, MinibatchStd)) for m in module.modules())


def at_times(D: nn.Module, views: dict) -> Callable:
    """``D`` as a function of (clips, labels), told the frame times of its view where the view has them
    (``views[D.view + "_times"]``: StyleGAN-V's sparse training renders only the frames its discriminator judges)."""
    times = views.get(f"{D.view}_times")
    return D if times is None else functools.partial(D, times=times)


def judge(gan: GanModules, name: str, real_views: dict, fake_views: dict, labels, policies) -> tuple:
    """(real logits, fake logits) of discriminator ``name`` on its view (fakes detached): one forward on both where
    its layers allow."""
    D = gan.Ds[name]
    real, fake = real_views[D.view], fake_views[D.view].detach()
    if gan.judged_apart(name) or real.shape[1:] != fake.shape[1:]:
        return (at_times(D, real_views)(augment(real, policies), labels),
                at_times(D, fake_views)(augment(fake, policies), labels))
    both_labels = None if labels is None else torch.cat([labels, labels])
    both = {D.view: torch.cat([real, fake.to(real.dtype)])}
    if f"{D.view}_times" in real_views:
        both[f"{D.view}_times"] = torch.cat([real_views[f"{D.view}_times"], fake_views[f"{D.view}_times"]])
    logits = at_times(D, both)(augment(both[D.view], policies), both_labels)
    return logits[:real.shape[0]], logits[real.shape[0]:]


def total_grad_norm(parameters, clip: float) -> torch.Tensor:
    """Total gradient norm before clipping (a tensor); clips to ``clip`` when that is > 0."""
    parameters = [p for p in parameters if p.grad is not None]
    if clip > 0:
        return torch.nn.utils.clip_grad_norm_(parameters, clip).detach()
    return torch.nn.utils.get_total_norm([p.grad for p in parameters]).detach()


def all_finite(*values: torch.Tensor) -> bool:
    """One host read for the NaN guard (after the all-reduce the values are equal on every rank)."""
    return bool(torch.isfinite(torch.stack([v.float() for v in values])).all())


def learning_rate_factor(schedule: str, step: int, total: int, decay_start: float = 0.0) -> float:
    """The learning rate's multiplier at ``step`` of ``total``: 1 until ``decay_start`` (a fraction of ``total``),
    then down to 0 at ``total`` along the schedule (``constant``: always 1)."""
    progress = min(max(step / max(total, 1) - decay_start, 0.0) / (1.0 - decay_start), 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def discriminator_step(gan: GanModules, cfg, real_views: dict, fake_views: dict, labels,
                       step: int) -> tuple[dict, bool]:
    """Update every discriminator on real and (detached) generated views; returns (losses as tensors, finite)."""
    losses, total = {}, 0.0
    lazy_r1 = cfg.r1_weight and step % cfg.r1_every == 0
    for name, D in gan.Ds.items():
        real, fake = real_views[D.view], fake_views[D.view]
        with gan.autocast():
            real_logits, fake_logits = judge(gan, name, real_views, fake_views, labels, cfg.augment)
        real_logits, fake_logits = real_logits.float(), fake_logits.float()
        loss = discriminator_loss(cfg.loss, real_logits, fake_logits)
        losses[f"loss_d_{name}"] = loss.detach()
        if cfg.loss == "wgan-gp" and cfg.gp_weight:
            # interpolates judged at the fake clips' frame times where the view has times
            penalty = gradient_penalty(at_times(D, fake_views), real.float(), fake.float(), labels)
            losses[f"gp_{name}"] = penalty.detach()
            loss = loss + cfg.gp_weight * penalty
        if lazy_r1:
            penalty = r1_penalty(at_times(D, real_views), real.float(), labels)
            losses[f"r1_{name}"] = penalty.detach()
            loss = loss + cfg.r1_weight * cfg.r1_every * penalty
        losses[f"margin_{name}"] = (real_logits.mean() - fake_logits.mean()).detach()
        total = total + loss
    gan.opt_d.zero_grad(set_to_none=True)
    total.backward()  # also when non-finite: every rank must join the all-reduce, then all decide alike
    losses["loss_d"] = distributed.average_gradients(gan.Ds.parameters(), gan.world_size, total.detach())
    losses["grad_norm_d"] = total_grad_norm(gan.Ds.parameters(), cfg.grad_clip)
    if not all_finite(losses["loss_d"], losses["grad_norm_d"]):
        return losses, False
    gan.opt_d.step()
    for D in gan.Ds.values():
        if cfg.loss == "wgan" and not cfg.svc_every:  # TGAN: SVC replaces weight clipping
            clip_weights(D, cfg.weight_clip)
        if cfg.svc_every and (step + 1) % cfg.svc_every == 0:
            clip_singular_values(D)
    return losses, True


def top_k_fraction(top_k: float, step: int, total: int) -> float:
    """The fraction of the batch the generator learns from at ``step`` (``train.top_k``): 1 at step 0, falling
    linearly to ``top_k`` at the last step."""
    return 1.0 - (1.0 - top_k) * min(step / max(total, 1), 1.0)


def top_rated(judged: list[torch.Tensor], fraction: float) -> list[torch.Tensor]:
    """Top-k training (Sinha et al. 2020): each discriminator's logits (batch first) of only the clips that the
    discriminators together rate most real (the sum of each one's mean logit per clip), ``fraction`` of the batch."""
    batch = judged[0].shape[0]
    keep = max(1, round(fraction * batch))
    if keep >= batch:
        return judged
    with torch.no_grad():
        rating = sum(logits.reshape(batch, -1).mean(dim=1) for logits in judged)
        chosen = rating.topk(keep).indices
    return [logits[chosen] for logits in judged]


def generator_step(gan: GanModules, cfg, views: dict, real: torch.Tensor, labels, step: int) -> tuple[dict, bool]:
    """Update G through the discriminators' judgement of ``views`` (generated with grad), then the EMA."""
    gan.Ds.requires_grad_(False)
    try:
        with gan.autocast():
            judged = [at_times(D, views)(augment(views[D.view], cfg.augment), labels).float() for D in gan.Ds.values()]
        judged = top_rated(judged, top_k_fraction(cfg.top_k, step, cfg.steps))
        adversarial = sum(generator_loss(cfg.loss, logits) for logits in judged)
        loss = cfg.adv_weight * adversarial
        losses = {"loss_g_adv": adversarial.detach()}
        if cfg.recon_weight:
            fake, target = gan.G.training_pair(views, real)
            recon = reconstruction_loss(cfg.recon_loss, fake.float(), target.float())
            losses["loss_g_recon"] = recon.detach()
            loss = loss + cfg.recon_weight * recon
        if cfg.mask_weight:  # VGAN's sparsity prior: the foreground mask shut where nothing moves
            mask = views["mask"].float().mean()
            losses["loss_g_mask"] = mask.detach()
            loss = loss + cfg.mask_weight * mask
    finally:
        gan.Ds.requires_grad_(True)
    gan.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    losses["loss_g"] = distributed.average_gradients(gan.G.parameters(), gan.world_size, loss.detach())
    losses["grad_norm_g"] = total_grad_norm(gan.G.parameters(), cfg.grad_clip)
    if not all_finite(losses["loss_g"], losses["grad_norm_g"]):
        return losses, False
    gan.opt_g.step()
    lr_factor = 1.0  # train.ema_follows_rate: the rate schedule's multiplier at this step
    if cfg.ema_follows_rate:
        lr_factor = learning_rate_factor(cfg.lr_schedule, step, cfg.steps, cfg.lr_decay_start)
    update_ema(gan.G_ema, gan.G, ema_decay_at(cfg.ema_decay, step, lr_factor))
    return losses, True
