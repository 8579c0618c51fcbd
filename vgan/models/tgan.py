"""TGAN (Saito et al. 2017): a temporal generator feeds an image generator; a 3D-conv video discriminator.

The temporal generator turns the clip latent into one latent per frame with 1D transposed convolutions
over time; the image generator turns (clip latent, frame latent) into each frame. The original trains a
WGAN whose critic is kept Lipschitz by singular value clipping: ``--set train.loss=wgan train.svc_every=5``;
WGAN-GP (``train.loss=wgan-gp``) works as well.
"""

from __future__ import annotations

import torch
from torch import nn

from vgan.models.base import FrameByFrameGenerator
from vgan.models.layers import ConditionalInput, TimeConvTranspose1d, temporal_schedule
from vgan.models.nets import Conv3dDiscriminator, ImageGenerator
from vgan.models.presets import PAPER_OBJECTIVES

# the paper: WGAN whose critic is kept Lipschitz by SVC (instead of weight clipping), with DCGAN's Adam settings
RECOMMENDED_OVERRIDES = PAPER_OBJECTIVES["tgan"]  # the paper's objective (vgan.models.presets)


class TemporalGenerator(nn.Module):
    """Clip latent (B, D) -> one latent per frame (B, out_dim, T) by 1D transposed convolutions."""

    def __init__(self, in_dim: int, out_dim: int, frames: int, width: int, layers: int = 4):
        super().__init__()
        start, strides = temporal_schedule(frames, layers)
        widths = [width * 2 ** i for i in reversed(range(layers))]
        # no batch norm on the stem: its output is often one step long, a single value per channel at batch 1
        body = [nn.ConvTranspose1d(in_dim, widths[0], start), nn.ReLU(True)]
        for i, stride in enumerate(strides):
            out_ch = widths[i + 1] if i + 1 < layers else widths[-1]
            if stride == 2:
                conv = TimeConvTranspose1d(widths[i], out_ch, 4, 2, 1)
            else:
                conv = nn.Conv1d(widths[i], out_ch, 3, 1, 1, padding_mode="replicate")
            body += [conv, nn.BatchNorm1d(out_ch), nn.ReLU(True)]
        body += [nn.Conv1d(widths[-1], out_dim, 1), nn.Tanh()]
        self.body = nn.Sequential(*body)

    def forward(self, h):
        return self.body(h[:, :, None])


class TganGenerator(FrameByFrameGenerator):
    """Temporal generator -> per-frame latents -> image generator, frame by frame."""

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=64, width=32):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.cond = ConditionalInput(z_dim, num_classes)
        self.temporal = TemporalGenerator(self.cond.out_dim, z_dim, frames, width * 2)
        self.image = ImageGenerator(self.cond.out_dim + z_dim, channels, resolution, width, subpixel=True)

    def frame_latents(self, z, y=None, num_frames=None):
        self.check_num_frames(num_frames)
        clip_latent = self.cond(z, y)
        frame_latents = self.temporal(clip_latent).transpose(1, 2)  # (B, T, z_dim)
        per_frame = clip_latent[:, None].expand(-1, frame_latents.shape[1], -1)
        return torch.cat([per_frame, frame_latents], dim=-1)


def build(params):
    G = TganGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution, params.width)
    D = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.width,
                            params.spectral_norm, minibatch_std_group=params.minibatch_std,
                            downsample=params.video_downsample, input_gain=params.d_input_gain)
    return G, {"video": D}
