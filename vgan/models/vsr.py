"""Video super-resolution: a clip area-downscaled by ``model.vsr.scale`` -> the clip at full resolution.

The condition is the real clip downscaled (box filter, deterministic); the generator upscales it bicubically
and adds a residual that a small 3D-conv network computes at the low resolution and pixel-shuffles up (its
last layer starts near zero, so training starts at the bicubic baseline). A temporal discriminator (strided 3D
convolutions) judges the high-resolution clip; the reconstruction loss compares it with the real one.
Objective: ``--set train.recon_loss=l1 train.recon_weight=1 train.adv_weight=0.02``.
Baselines: bicubic and nearest upscaling of the same low-resolution clip.
"""

from __future__ import annotations

from vgan.models.base import VideoGenerator
from vgan.models.conditioning import ResidualRefiner, downscale, pixel_shuffle, upscale
from vgan.models.nets import Conv3dDiscriminator

RECOMMENDED_OVERRIDES = ("train.recon_loss=l1", "train.recon_weight=1", "train.adv_weight=0.02")


class SuperResolutionGenerator(VideoGenerator):
    """Low-resolution clip (+ noise, label) -> bicubic upscale + learned residual."""

    task = "super_resolution"
    input_baseline = "nearest"

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=32, width=32, scale=2, blocks=3):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.scale = scale
        self.refiner = ResidualRefiner(channels, channels * scale * scale, width, blocks, z_dim, num_classes)

    def condition(self, real):
        return downscale(real, self.scale)

    def baselines(self, context):
        return {"bicubic": upscale(context, self.scale, "bicubic"), "nearest": upscale(context, self.scale, "nearest")}

    def forward(self, z, y=None, context=None, num_frames=None):
        self.check_num_frames(num_frames)
        low = self.resolution // self.scale
        if context is None or tuple(context.shape[2:]) != (self.frames, low, low):
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"super-resolution needs low-resolution clips (B, C, {self.frames}, {low}, {low}); "
                             f"got {got}")
        residual = pixel_shuffle(self.refiner(context, z, y), self.scale)
        return (upscale(context, self.scale, "bicubic") + residual).clamp(-1, 1)


def build(params):
    G = SuperResolutionGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                                 params.width, params.vsr.scale, params.vsr.blocks)
    D = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.discriminator_width,
                            params.spectral_norm)
    return G, {"video": D}
