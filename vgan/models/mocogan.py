"""MoCoGAN (Tulyakov et al. 2018): content fixed per clip, motion from a GRU; image and video discriminators.

The latent is [content (z_dim) | initial motion state (motion_dim) | one motion noise per frame
(motion_dim each)]; ``G.sample_z(b, num_frames=n)`` draws it for ``n`` frames, so the GRU rolls past the
training length: ``G(G.sample_z(b, num_frames=64), y)`` is a 64-frame clip. The image discriminator
judges ``model.mocogan.image_frames`` random frames per clip; the video discriminator the whole clip.
With ``model.mocogan.motion_step`` the motion codes are residual, as MoCoGAN-HD's: each frame's code is the previous
one plus the GRU's state (in (-1, 1)) times the step, so consecutive frames' codes differ by at most the step.
"""

from __future__ import annotations

import torch
from torch import nn

from vgan.models.base import FrameByFrameGenerator
from vgan.models.layers import ConditionalInput
from vgan.models.nets import Conv3dDiscriminator, ImageDiscriminator, ImageGenerator
from vgan.models.presets import PAPER_OBJECTIVES

RECOMMENDED_OVERRIDES = PAPER_OBJECTIVES["mocogan"]  # the paper's objective (vgan.models.presets)


class MocoganGenerator(FrameByFrameGenerator):
    """Content latent + GRU motion trajectory -> image generator, one frame per motion step."""

    variable_length = True

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=64, width=32, motion_dim=10,
                 motion_step=None):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.motion_dim = motion_dim
        self.motion_step = motion_step
        self.cond = ConditionalInput(z_dim, num_classes)
        self.motion = nn.GRUCell(motion_dim, motion_dim)
        self.image = ImageGenerator(self.cond.out_dim + motion_dim, channels, resolution, width, subpixel=True)

    @property
    def latent_dim(self) -> int:
        return self.z_dim + self.motion_dim * (1 + self.frames)

    def sample_z(self, batch_size, device=None, generator=None, num_frames=None):
        steps = num_frames or self.frames
        return torch.randn(batch_size, self.z_dim + self.motion_dim * (1 + steps), device=device, generator=generator)

    def motion_codes(self, z, num_frames=None) -> torch.Tensor:
        """The motion code of each frame (B, T, motion_dim) from the latent's motion part."""
        encoded = (z.shape[1] - self.z_dim) // self.motion_dim - 1
        if z.shape[1] != self.z_dim + self.motion_dim * (1 + encoded) or encoded < 1:
            raise ValueError(f"mocogan latents have width z_dim + motion_dim * (1 + frames); got {z.shape[1]}: "
                             f"draw them with G.sample_z(batch, num_frames=...)")
        steps = num_frames or encoded
        if steps > encoded:
            raise ValueError(f"the latent holds motion noise for {encoded} frames, not {steps}: "
                             f"draw it with G.sample_z(batch, num_frames={steps})")
        # the GRU's states live in (-1, 1); an unbounded Gaussian start would make the first frames unlike the rest
        state = torch.tanh(z[:, self.z_dim: self.z_dim + self.motion_dim])
        noise = z[:, self.z_dim + self.motion_dim:].reshape(z.shape[0], encoded, self.motion_dim)
        codes, code = [], state
        for t in range(steps):
            state = self.motion(noise[:, t], state)
            # the paper: the state is the code; residual (MoCoGAN-HD): the code moves by a bounded step per frame
            code = state if self.motion_step is None else code + self.motion_step * state
            codes.append(code)
        return torch.stack(codes, dim=1)

    def frame_latents(self, z, y=None, num_frames=None):
        motion = self.motion_codes(z, num_frames)
        content = self.cond(z[:, : self.z_dim], y)
        return torch.cat([content[:, None].expand(-1, motion.shape[1], -1), motion], dim=-1)


def build(params):
    options = params.mocogan
    G = MocoganGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                         params.width, options.motion_dim, options.motion_step)
    image_d = ImageDiscriminator(params.num_classes, params.channels, params.resolution, params.width,
                                 params.spectral_norm, options.image_frames, input_gain=params.d_input_gain)
    video_d = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.width,
                                  params.spectral_norm, minibatch_std_group=params.minibatch_std,
                                  downsample=params.video_downsample, input_gain=params.d_input_gain)
    return G, {"image": image_d, "video": video_d}
