"""Video prediction: encode the first real frames of a clip, generate the frames that follow.

``model.predictor.context_frames`` real frames are given; the model predicts the remaining
``model.frames - context_frames``.

The encoder (strided 3D convolutions) summarises the context into a code; with the noise (+ label) it
drives a 3D transposed-convolution stream that paints a foreground and a mask over the last context
frame, so static content carries over and the network spends itself on what moves. The discriminator
judges context + future as one clip; the reconstruction loss compares the predicted future with the
real one. Objective: ``--set train.adv_weight=0.5 train.recon_weight=0.5 train.recon_loss=l1`` (or l2).
Longer horizons roll out autoregressively: ``G(z, y, context, num_frames=n)``.
"""

from __future__ import annotations

import torch
from torch import nn

from vgan.models.base import DCGAN_OBJECTIVE, VideoGenerator
from vgan.models.layers import ConditionalInput, num_doublings
from vgan.models.nets import Conv3dDiscriminator, Deconv3dTrunk

RECOMMENDED_OVERRIDES = (*DCGAN_OBJECTIVE, "train.adv_weight=0.5", "train.recon_weight=0.5", "train.recon_loss=l1")


class ContextEncoder(nn.Module):
    """Context frames (B, C, Tc, H, W) -> code (B, code_dim) by strided 3D convolutions and pooling."""

    def __init__(self, channels: int, resolution: int, width: int, code_dim: int):
        super().__init__()
        body, in_ch = [], channels
        for i in range(num_doublings(4, resolution)):
            out_ch = min(width * 2 ** i, 512)
            body += [nn.Conv3d(in_ch, out_ch, (3, 4, 4), (1, 2, 2), 1), nn.LeakyReLU(0.2, True)]
            in_ch = out_ch
        self.body = nn.Sequential(*body)
        self.to_code = nn.Linear(in_ch * 16, code_dim)

    def forward(self, context):
        h = self.body(context).mean(dim=2)  # average over time: the code has no fixed context length
        return self.to_code(h.flatten(1))


class PredictorGenerator(VideoGenerator):
    """Context code + noise -> foreground and mask over the last context frame, for each future frame."""

    variable_length = True
    task = "prediction"
    input_baseline = "copy_last_frame"

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=64, width=32, context_frames=4):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.context_frames = context_frames
        self.future_frames = frames - context_frames
        self.cond = ConditionalInput(z_dim, num_classes)
        self.encoder = ContextEncoder(channels, resolution, width, z_dim)
        self.trunk = Deconv3dTrunk(self.cond.out_dim + z_dim, self.future_frames, resolution, width)
        self.to_foreground = self.trunk.head(channels)
        self.to_mask = self.trunk.head(1)

    def predict(self, z, y, context):
        """The next ``future_frames`` frames after ``context``."""
        h = self.trunk(torch.cat([self.cond(z, y), self.encoder(context)], dim=1))
        foreground = torch.tanh(self.to_foreground(h))
        mask = torch.sigmoid(self.to_mask(h))
        return mask * foreground + (1 - mask) * context[:, :, -1:]

    def forward(self, z, y=None, context=None, num_frames=None):
        if context is None or context.shape[2] != self.context_frames:
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"the predictor needs context frames (B, C, {self.context_frames}, H, W); got {got}")
        steps = num_frames or self.future_frames
        chunks, done = [], 0
        while done < steps:
            future = self.predict(z, y, context)
            chunks.append(future)
            done += future.shape[2]
            context = torch.cat([context, future], dim=2)[:, :, -self.context_frames:]
        return torch.cat(chunks, dim=2)[:, :, :steps]

    @property
    def given_frames(self):
        return list(range(self.context_frames))

    def condition(self, real):
        return real[:, :, : self.context_frames]

    def full_clip(self, context, output):
        return torch.cat([context, output], dim=2)

    def baselines(self, context):
        """The last context frame held for the rest of the clip."""
        future = context[:, :, -1:].expand(-1, -1, self.future_frames, -1, -1)
        return {"copy_last_frame": torch.cat([context, future], dim=2)}

    def reconstruction(self, views, real):
        return views["video"][:, :, self.context_frames:], real[:, :, self.context_frames:]


def build(params):
    G = PredictorGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                           params.width, params.predictor.context_frames)
    D = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.width,
                            params.spectral_norm)
    return G, {"video": D}
