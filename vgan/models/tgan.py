"""TGAN (Saito et al. 2017): a temporal generator feeds an image generator; a 3D-conv video discriminator.

The temporal generator turns the clip latent into one latent per frame with 1D transposed convolutions
over time. Here each frame's input to the image generator is the clip latent plus that frame's latent minus the
first frame's (a residual in the image generator's own input space, as MoCoGAN-HD moves a pretrained generator's
latent), where the paper concatenates (clip latent, frame latent): the first frame is painted from the clip latent
alone, so image pretraining (``train.image_pretrain_steps``) trains exactly the generator the video phase then moves,
and the temporal generator's last layer starts at zero (the video phase starts from still clips). The original trains a
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
        last = nn.Conv1d(widths[-1], out_dim, 1)
        nn.init.zeros_(last.weight)  # no motion at the start: every frame is the clip latent's image
        nn.init.zeros_(last.bias)
        body += [last, nn.Tanh()]
        self.body = nn.Sequential(*body)

    def forward(self, h):
        return self.body(h[:, :, None])


class TganGenerator(FrameByFrameGenerator):
    """Temporal generator -> per-frame latents -> image generator, frame by frame."""

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=64, width=32):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.cond = ConditionalInput(z_dim, num_classes)
        self.temporal = TemporalGenerator(self.cond.out_dim, self.cond.out_dim, frames, width * 2)
        self.image = ImageGenerator(self.cond.out_dim, channels, resolution, width)

    def frame_latents(self, z, y=None, num_frames=None):
        self.check_num_frames(num_frames)
        clip_latent = self.cond(z, y)
        steps = self.temporal(clip_latent).transpose(1, 2)  # (B, T, D)
        moved = clip_latent[:, None] + (steps - steps[:, :1])
        # at the clip latent's length: the image generator learned latents of that length (a step off the sphere it
        # learned on would leave the inputs it was trained for)
        return moved * (clip_latent.norm(dim=1)[:, None, None] / moved.norm(dim=2, keepdim=True).clamp_min(1e-6))

    def random_frames(self, z, y=None, count=1):
        """Image pretraining: each clip's first frame, painted from its clip latent alone, shown ``count`` times
        (B, C, count, H, W); the temporal generator learns after."""
        frame = self.image(self.cond(z, y))
        return frame[:, :, None].expand(-1, -1, count, -1, -1)


def build(params):
    G = TganGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution, params.width)
    D = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.width,
                            params.spectral_norm, minibatch_std_group=params.minibatch_std,
                            downsample=params.video_downsample, input_gain=params.d_input_gain)
    return G, {"video": D}
