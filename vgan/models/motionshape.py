"""Motion/shape generator: a colourless motion field warps a generated appearance; spectral-norm discriminator.

The motion generator (3D transposed convolutions) predicts, for every frame, a 2D displacement field
(no colour) relative to the appearance; the shape generator (2D transposed convolutions) paints one
appearance image; each frame is that appearance warped by its field (bilinear sampling), so the motion
stream alone decides how content moves. The discriminator always uses spectral normalisation;
pair it with ``--set train.loss=hinge``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vgan.models.base import VideoGenerator
from vgan.models.layers import ConditionalInput
from vgan.models.nets import Conv3dDiscriminator, Deconv3dTrunk, ImageGenerator

RECOMMENDED_OVERRIDES = ("train.loss=hinge",)  # spectral norm is built into the discriminator


class MotionShapeGenerator(VideoGenerator):
    """Appearance image warped frame by frame by a generated displacement field."""

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=64, width=32, max_displacement=0.5):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.max_displacement = max_displacement
        self.cond = ConditionalInput(z_dim, num_classes)
        self.motion = Deconv3dTrunk(self.cond.out_dim, frames, resolution, width)
        self.to_flow = self.motion.head(2)
        self.shape = ImageGenerator(self.cond.out_dim, channels, resolution, width)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, resolution), torch.linspace(-1, 1, resolution), indexing="ij")
        self.register_buffer("identity_grid", torch.stack([xs, ys], dim=-1), persistent=False)  # (H, W, 2) as x, y

    def motion_field(self, h: torch.Tensor) -> torch.Tensor:
        """Displacements (B, 2, T, H, W) in grid units, bounded by ``max_displacement``."""
        return self.max_displacement * torch.tanh(self.to_flow(self.motion(h)))

    def forward(self, z, y=None, context=None, num_frames=None):
        self.check_num_frames(num_frames)
        h = self.cond(z, y)
        flow = self.motion_field(h)
        batch, _, frames = flow.shape[:3]
        appearance = self.shape(h)  # (B, C, H, W)
        grid = self.identity_grid + flow.permute(0, 2, 3, 4, 1)  # (B, T, H, W, 2)
        source = appearance[:, None].expand(-1, frames, -1, -1, -1).flatten(0, 1)
        warped = F.grid_sample(source, grid.flatten(0, 1), mode="bilinear", padding_mode="border", align_corners=True)
        return warped.unflatten(0, (batch, frames)).transpose(1, 2)


def build(params):
    G = MotionShapeGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                             params.width, params.motionshape.max_displacement)
    D = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.width,
                            use_spectral_norm=True)
    return G, {"video": D}
