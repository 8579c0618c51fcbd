"""The contract every architecture follows, so one trainer serves them all.

- ``G(z, y=None, context=None) -> video``: float (B, C, T, H, W) in [-1, 1].
  ``context`` is ``G.condition(real)`` for conditional models (``G.conditional``: the model's input is made
  from a real clip) and None for the others. What the condition is depends on ``G.task``:
  "prediction" = the first ``G.context_frames`` real frames (the model returns only the frames that follow);
  "super_resolution" = the clip downscaled; "interpolation" = its keyframes; "generation" = no condition.
- ``G.full_clip(context, output) -> video``: the whole clip a conditional model's output stands for
  (prediction: context followed by the predicted future; super-resolution and interpolation: the output).
- ``G.baselines(context) -> {name: video}``: the trivial answers a conditional model must beat, as whole clips
  (copy the last context frame; bicubic and nearest upscaling; linear blending and repeating keyframes).
  ``G.input_baseline`` names the one that shows the input as it is (the first panel of the side-by-side samples);
  ``G.given_frames`` lists the frames of the whole clip that are real frames passed through.
- ``G.views(z, y, context) -> dict[str, Tensor]``: what the discriminators judge; ``"video"`` is the
  full clip (``G.full_clip``). Extra views (e.g. a low-resolution stage of a progressive model) are judged
  by discriminators whose ``view`` names them. A view may come with its frames' times (``"<view>_times"``, (B, K)),
  which its discriminator takes as ``D(x, y, times=...)``: StyleGAN-V's sparse training renders only the frames its
  discriminator judges (in train mode: ``"sparse"`` and ``"sparse_times"``, no ``"video"``).
  A two-stream generator (``G.has_mask``: VGAN) adds ``"mask"``, its foreground mask (B, 1, T, H, W) in [0, 1],
  which no discriminator judges and ``train.mask_weight`` keeps sparse.
- ``G.real_views(real) -> dict[str, Tensor]``: the matching views of a real clip.
- ``G.reconstruction(views, real) -> (fake, target)``: the pair a reconstruction loss compares, and the frames
  the task metrics (PSNR, SSIM) score: the future for prediction, the in-between frames for interpolation.
- ``G.training_pair(views, real) -> (fake, target)``: the pair the trainer's reconstruction loss compares;
  ``reconstruction`` unless a model trains on something else (the predictor: one-step predictions from real
  frames, teacher forcing).
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

from vgan.models.layers import frames_to_video, random_frame_indices


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
    has_mask = False  # True where views() adds "mask", a foreground mask (train.mask_weight keeps it sparse)
    continuous_time = False  # True where forward and sample_z take ``time_step`` (frames at any frame rate)
    task = "generation"  # "prediction" | "super_resolution" | "interpolation": what the metric groups score
    input_baseline: str | None = None  # the baseline that shows a conditional model's input as it is

    @property
    def conditional(self) -> bool:
        """True where the model's input is made from a real clip (``condition``), not from noise alone."""
        return self.task != "generation"

    def condition(self, real: torch.Tensor) -> torch.Tensor | None:
        """The model's input made from real clips (B, C, T, H, W); None for unconditional models."""
        return None

    def full_clip(self, context: torch.Tensor | None, output: torch.Tensor) -> torch.Tensor:
        """The whole clip that ``output`` (what ``forward`` returned for ``context``) stands for."""
        return output

    @property
    def given_frames(self) -> list[int]:
        """Frames of the whole clip that are real frames passed through (a predictor's context, keyframes)."""
        return []

    def baselines(self, context: torch.Tensor) -> dict[str, torch.Tensor]:
        """{name: whole clips} of the trivial answers for ``context``; none for unconditional models."""
        return {}

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
        return {"video": self.full_clip(context, self(z, y, context))}

    def real_views(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"video": real}

    def reconstruction(self, views: dict[str, torch.Tensor], real: torch.Tensor):
        """Pair compared by the reconstruction loss: the whole clip (prediction models override)."""
        return views["video"], real

    def training_pair(self, views: dict[str, torch.Tensor], real: torch.Tensor):
        """Pair compared by the trainer's reconstruction loss: ``reconstruction`` (the predictor overrides)."""
        return self.reconstruction(views, real)


class FrameByFrameGenerator(VideoGenerator):
    """A generator whose frames an image generator (``self.image``) paints one at a time from per-frame latents
    (TGAN, MoCoGAN). ``random_frames`` paints only a few frames of each clip: what ``train.image_pretrain_steps``
    trains the image generator on (a plain image GAN, as MoCoGAN-HD starts from a pretrained image generator)."""

    image: nn.Module
    hold_image_statistics = False  # train.freeze_image_generator: the image generator's batch norms keep theirs

    def train(self, mode: bool = True):
        super().train(mode)
        if self.hold_image_statistics:
            self.image.eval()  # frozen: each frame is painted from its own latent alone, as in pretraining
        return self

    def frame_latents(self, z: torch.Tensor, y=None, num_frames: int | None = None) -> torch.Tensor:
        """Each frame's input to the image generator: (B, T, D)."""
        raise NotImplementedError

    def forward(self, z, y=None, context=None, num_frames=None):
        latents = self.frame_latents(z, y, num_frames)
        return frames_to_video(self.image(latents.flatten(0, 1)), z.shape[0])

    def random_frames(self, z: torch.Tensor, y=None, count: int = 1) -> torch.Tensor:
        """``count`` distinct random frames of each clip (B, C, count, H, W), the others not painted."""
        latents = self.frame_latents(z, y)
        batch, frames = latents.shape[:2]
        index = random_frame_indices(batch, frames, count, latents.device)
        picked = latents[torch.arange(batch, device=latents.device)[:, None], index]
        return frames_to_video(self.image(picked.flatten(0, 1)), batch)


class VideoDiscriminator(nn.Module):
    """Base class of discriminators; ``view`` names the generator view it judges."""

    view = "video"
