"""VGAN (Vondrick et al. 2016): two-stream generator, 3D-conv discriminator.

The foreground stream (3D transposed convolutions) produces a moving foreground and a sigmoid mask;
the background stream (2D transposed convolutions) produces one static image;
video = mask * foreground + (1 - mask) * background. ``train.mask_weight`` is the paper's sparsity prior on the
mask (an L1 penalty, here its mean over pixels), so that the background stream paints what does not move.
``model.skip_z`` gives the foreground's batch norms per-clip gains and biases from the latent (BigGAN's skip-z).
Class-conditional when ``model.num_classes`` > 0: a label embedding joins the latent of both streams
and the discriminator gets a projection head.
"""

from __future__ import annotations

import torch
from torch import nn

from vgan.models.base import VideoGenerator
from vgan.models.layers import (ConditionalInput, LatentBatchNorm, SelfAttention3d, TimeConvTranspose3d,
                                num_doublings, temporal_schedule)
from vgan.models.nets import Conv3dDiscriminator
from vgan.models.presets import PAPER_OBJECTIVES


class VganGenerator(VideoGenerator):
    """Two-stream generator: 3D foreground with mask over a 2D static background."""

    has_mask = True  # views() adds the mask, which train.mask_weight keeps sparse

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=64, width=32, coarse_frames=None,
                 skip_z=False, attention=False):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        layers = num_doublings(4, resolution)
        self.start_frames, t_strides = temporal_schedule(frames, layers, coarse_frames)
        widths = [width * 2 ** i for i in reversed(range(layers))]  # e.g. 256, 128, 64, 32
        self.cond = ConditionalInput(z_dim, num_classes)

        def norm(ch):  # model.skip_z: the clip's latent sets each norm's gain and bias
            return LatentBatchNorm(ch, self.cond.out_dim) if skip_z else nn.BatchNorm3d(ch)

        self.fg_stem = nn.Sequential(
            nn.ConvTranspose3d(self.cond.out_dim, widths[0], (self.start_frames, 4, 4)), norm(widths[0]), nn.ReLU(True))
        fg = []
        for i in range(layers - 1):
            ts = t_strides[i]
            fg += [TimeConvTranspose3d(widths[i], widths[i + 1], (ts + 2, 4, 4), (ts, 2, 2), 1), norm(widths[i + 1]),
                   nn.ReLU(True)]
            if attention and i == 0:  # model.attention: at the 8x8 features (4 frames for 16), as SAGAN's
                fg.append(SelfAttention3d(widths[i + 1]))
        self.fg_body = nn.Sequential(*fg)
        last_t = t_strides[layers - 1]
        self.fg_video = TimeConvTranspose3d(widths[-1], channels, (last_t + 2, 4, 4), (last_t, 2, 2), 1, subpixel=True)
        self.fg_mask = TimeConvTranspose3d(widths[-1], 1, (last_t + 2, 4, 4), (last_t, 2, 2), 1, subpixel=True)
        bg = [nn.ConvTranspose2d(self.cond.out_dim, widths[0], 4), nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for i in range(layers - 1):
            bg += [nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1), nn.BatchNorm2d(widths[i + 1]), nn.ReLU(True)]
        bg += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.background = nn.Sequential(*bg)

    def streams(self, z, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(video, mask): the clip and its foreground mask (B, 1, T, H, W) in [0, 1]."""
        h = self.cond(z, y)
        fg = h[:, :, None, None, None]
        for layer in (*self.fg_stem, *self.fg_body):
            fg = layer(fg, h) if isinstance(layer, LatentBatchNorm) else layer(fg)
        foreground = torch.tanh(self.fg_video(fg))
        mask = torch.sigmoid(self.fg_mask(fg))
        background = self.background(h[:, :, None, None]).unsqueeze(2)
        return mask * foreground + (1 - mask) * background, mask

    def forward(self, z, y=None, context=None, num_frames=None):
        self.check_num_frames(num_frames)
        return self.streams(z, y)[0]

    def views(self, z, y=None, context=None) -> dict[str, torch.Tensor]:
        video, mask = self.streams(z, y)
        return {"video": video, "mask": mask}


VganDiscriminator = Conv3dDiscriminator  # the 3D-conv discriminator of the paper


RECOMMENDED_OVERRIDES = PAPER_OBJECTIVES["vgan"]  # the paper's objective (vgan.models.presets)


def build(params):
    G = VganGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution, params.width,
                      params.coarse_frames, params.skip_z, params.attention)
    D = VganDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.width,
                          params.spectral_norm, minibatch_std_group=params.minibatch_std,
                          downsample=params.video_downsample, input_gain=params.d_input_gain)
    return G, {"video": D}
