"""Frame interpolation: the keyframes of a clip (every ``model.interp.every``-th frame and the last) -> every frame.

The condition is the real keyframes. For each in-between frame the generator warps its two surrounding keyframes
by flows it predicts (backward warping, bilinear), mixes the two warped keyframes with a weight it predicts, and
adds a residual: a digit that moves between two keyframes is moved, not cross-faded, so the in-between frames stay
as sharp as the keyframes (Super SloMo's idea, Jiang et al. 2018). A small 3D-conv network computes flows, weight
and residual from the keyframes held before and after each frame, their linear blend, the frame's position between
them and a keyframe mask (at half resolution, pixel-unshuffled, then shuffled back; its last layer starts near
zero: no flow, the linear blend's weight, no residual, so training starts at the linear blend). The keyframes pass
through unchanged. A temporal discriminator (strided 3D convolutions) judges the whole clip; the reconstruction
loss and the metrics compare the in-between frames.
Objective: ``--set train.recon_loss=l2 train.recon_weight=1 train.adv_weight=0.01``: the in-between frames are
uncertain (where exactly did the digit go?), and L2 targets PSNR directly.
Baselines: linear blending and repetition of the keyframes.
"""

from __future__ import annotations

import torch

from vgan.models.base import VideoGenerator
from vgan.models.conditioning import (ResidualRefiner, blend_weights, hold_weights, keyframe_indices, mix_keyframes,
                                      next_weights, pixel_shuffle, pixel_unshuffle)
from vgan.models.layers import warp
from vgan.models.nets import Conv3dDiscriminator

RECOMMENDED_OVERRIDES = ("train.recon_loss=l2", "train.recon_weight=1", "train.adv_weight=0.01")
SHUFFLE = 2  # the network works at half resolution on pixel-unshuffled frames: 4x cheaper, wider reach
FLOW_LIMIT = 8.0  # pixels: each flow is FLOW_LIMIT * tanh(output / FLOW_LIMIT), in pixels and bounded
FLOWS = 5  # output channels before the residual: flow from the keyframe before (x, y), after (x, y), mix logit


class InterpolationGenerator(VideoGenerator):
    """Keyframes (+ noise, label) -> the two surrounding keyframes warped, mixed and corrected, per in-between frame."""

    task = "interpolation"
    input_baseline = "repeat"

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=32, width=32, every=4, blocks=3):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.keyframes = keyframe_indices(frames, every)
        blend = blend_weights(frames, self.keyframes)
        self.register_buffer("blend", blend, persistent=False)
        self.register_buffer("hold", hold_weights(frames, self.keyframes), persistent=False)
        self.register_buffer("next", next_weights(frames, self.keyframes), persistent=False)
        # how far each frame is from its keyframe before to the one after (0 at a keyframe)
        share = (blend * self.next).sum(dim=1) * (blend * self.hold).sum(dim=1).lt(1).float()
        self.register_buffer("share", share.view(1, 1, frames, 1, 1), persistent=False)
        is_key = torch.zeros(1, 1, frames, 1, 1, dtype=torch.bool)
        is_key[:, :, self.keyframes] = True
        self.register_buffer("is_key", is_key, persistent=False)
        self.inbetween = [t for t in range(frames) if t not in self.keyframes]
        self.refiner = ResidualRefiner((3 * channels + 2) * SHUFFLE ** 2, (FLOWS + channels) * SHUFFLE ** 2, width,
                                       blocks, z_dim, num_classes)
        with torch.no_grad():  # no flow and the blend's weight at first (they learn from the residual's features)
            self.refiner.conv_out.weight[:FLOWS * SHUFFLE ** 2].zero_()

    @property
    def given_frames(self):
        return list(self.keyframes)

    def condition(self, real):
        return real[:, :, self.keyframes]

    def baselines(self, context):
        return {"linear_blend": mix_keyframes(context, self.blend), "repeat": mix_keyframes(context, self.hold)}

    def forward(self, z, y=None, context=None, num_frames=None):
        self.check_num_frames(num_frames)
        if context is None or context.shape[2] != len(self.keyframes):
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"frame interpolation needs the keyframes (B, C, {len(self.keyframes)}, H, W); got {got}")
        base, before, after = (mix_keyframes(context, weights) for weights in (self.blend, self.hold, self.next))
        extra = torch.cat([self.share.expand_as(base[:, :1]), self.is_key.to(base.dtype).expand_as(base[:, :1])], 1)
        inputs = pixel_unshuffle(torch.cat([before, after, base, extra], 1), SHUFFLE)
        out = pixel_shuffle(self.refiner(inputs, z, y), SHUFFLE)  # (B, FLOWS + C, T, H, W)
        flows = FLOW_LIMIT * torch.tanh(out[:, :4] / FLOW_LIMIT)  # pixels, unit gain near zero
        share = self.share.clamp(1e-3, 1 - 1e-3)
        mix = torch.sigmoid(out[:, 4:5] + torch.log((1 - share) / share))  # starts at the linear blend's weight

        def warped(frames, flow):  # (B, C, T, H, W) frames moved by (B, 2, T, H, W) flows, frame by frame
            flat = lambda x: x.transpose(1, 2).flatten(0, 1)  # noqa: E731
            return warp(flat(frames), flat(flow)).unflatten(0, frames.shape[0:1] + frames.shape[2:3]).transpose(1, 2)

        frames = mix * warped(before, flows[:, :2]) + (1 - mix) * warped(after, flows[:, 2:]) + out[:, FLOWS:]
        return torch.where(self.is_key, base, frames.clamp(-1, 1))

    def reconstruction(self, views, real):
        return views["video"][:, :, self.inbetween], real[:, :, self.inbetween]


def build(params):
    G = InterpolationGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                               params.width, params.interp.every, params.interp.blocks)
    D = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.discriminator_width,
                            params.spectral_norm)
    return G, {"video": D}
