"""The contract every architecture follows, so one trainer serves them all.

- ``G(z, y=None, context=None) -> video``: float (B, C, T, H, W) in [-1, 1].
  ``context`` is real context frames (B, C, Tc, H, W) for prediction models (``G.context_frames`` > 0),
  which return only the T - Tc frames that follow; else None.
- ``G.views(z, y, context) -> dict[str, Tensor]``: what the discriminators judge; ``"video"`` is the
  full clip (for prediction models: context followed by the predicted future). Extra views (e.g. a
  low-resolution stage of a progressive model) are judged by discriminators whose ``view`` names them.
- ``G.real_views(real) -> dict[str, Tensor]``: the matching views of a real clip.
- ``G.reconstruction(views, real) -> (fake, target) | None``: the pair a reconstruction loss compares.
- every discriminator ``D(x, y=None) -> logits`` (B,) or (B, K); ``D.view`` names the view it judges.
- Longer clips than trained: where ``G.variable_length`` is true,
  ``G(G.sample_z(b, num_frames=n), y, context, num_frames=n)`` returns ``n`` frames (``n`` future frames
  for prediction models); elsewhere a ``num_frames`` other than ``G.frames`` is a ValueError.
  Always draw latents with ``G.sample_z``: some are wider than ``z_dim`` (MoCoGAN's motion noise);
  ``G.latent_dim`` is their width at the training length.
- Other frame rates: where ``G.continuous_time`` is true (StyleGAN-V), frames are rendered at real times
  and ``G(G.sample_z(b, num_frames=n, time_step=s), y, num_frames=n, time_step=s)`` returns ``n`` frames
  ``s`` training frames apart (``s = 0.5``: twice the training frame rate, the same motion); ``vgan sample``
  writes such clips for ``sample.frame_rate_factors``.
"""

from __future__ import annotations

import torch
from torch import nn

# DCGAN's objective and Adam settings (non-saturating BCE, lr 2e-4, betas (0.5, 0.999)), which most papers of
# the zoo train with. params.yaml's defaults are tuned for the default architecture, so the others name theirs.
DCGAN_OBJECTIVE = ("train.loss=bce", "train.lr_g=2e-4", "train.lr_d=2e-4", "train.betas=[0.5,0.999]")


class VideoGenerator(nn.Module):
    """Base class of generators; subclasses implement ``forward``."""

    def __init__(self, z_dim: int, num_classes: int, channels: int, frames: int, resolution: int):
        super().__init__()
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.channels = channels
        self.frames = frames
        self.resolution = resolution
        self.context_frames = 0  # > 0 for prediction models

    variable_length = False  # True where the model can generate more frames than it was trained on
    continuous_time = False  # True where forward and sample_z take ``time_step`` (frames at any frame rate)

    @property
    def latent_dim(self) -> int:
        """Width of ``sample_z``'s latent at the training length (``z_dim`` unless the model adds noise)."""
        return self.z_dim

    def sample_z(self, batch_size: int, device=None, generator: torch.Generator | None = None,
                 num_frames: int | None = None) -> torch.Tensor:
        self.check_num_frames(num_frames)
        return torch.randn(batch_size, self.z_dim, device=device, generator=generator)

    def check_num_frames(self, num_frames: int | None) -> None:
        if num_frames is not None and num_frames != self.frames - self.context_frames and not self.variable_length:
            raise ValueError(f"{type(self).__name__} generates exactly {self.frames - self.context_frames} frames; "
                             f"got num_frames={num_frames}")

    def sample_labels(self, batch_size: int, device=None, generator: torch.Generator | None = None):
        if not self.num_classes:
            return None
        return torch.randint(0, self.num_classes, (batch_size,), device=device, generator=generator)

    def views(self, z, y=None, context=None) -> dict[str, torch.Tensor]:
        video = self(z, y, context)
        if context is not None:
            video = torch.cat([context, video], dim=2)
        return {"video": video}

    def real_views(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"video": real}

    def reconstruction(self, views: dict[str, torch.Tensor], real: torch.Tensor):
        """Pair compared by the reconstruction loss: the whole clip (prediction models override)."""
        return views["video"], real


class VideoDiscriminator(nn.Module):
    """Base class of discriminators; ``view`` names the generator view it judges."""

    view = "video"
