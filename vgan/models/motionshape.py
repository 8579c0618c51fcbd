"""Motion/shape generator: a colourless motion field warps a generated appearance; spectral-norm discriminator.

The motion generator (3D transposed convolutions) predicts, for every frame, a 2D displacement field
(no colour) relative to the appearance; the shape generator (2D transposed convolutions) paints one
appearance image; each frame is that appearance warped by its field (bilinear sampling), so the motion
stream alone decides how content moves. The discriminators always use spectral normalisation;
pair them with ``--set train.loss=hinge``.

Options (``model.motionshape.*``): the field is made at ``flow_resolution`` and upsampled (1 = one rigid
displacement per frame); ``image_frames`` > 0 adds an image discriminator on that many random frames per
clip; ``video_downsample`` pools the video discriminator's input in space. The appearance has ``model.channels``
channels (one for grey data such as the moving digits: no colour noise to learn away).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vgan.models.base import VideoGenerator
from vgan.models.layers import ConditionalInput
from vgan.models.nets import Conv3dDiscriminator, Deconv3dTrunk, ImageDiscriminator, ImageGenerator
from vgan.models.presets import PAPER_OBJECTIVES

# spectral norm is built into the discriminators; hinge with SNGAN's Adam settings
RECOMMENDED_OVERRIDES = PAPER_OBJECTIVES["motionshape"]  # the paper's objective (vgan.models.presets)


class MotionShapeGenerator(VideoGenerator):
    """Appearance image warped frame by frame by a generated displacement field."""

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=64, width=32, max_displacement=0.5,
                 flow_resolution=8, warp="bilinear", shape_width=None):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.max_displacement = max_displacement
        self.warp = warp
        self.cond = ConditionalInput(z_dim, num_classes)
        self.flow_resolution = min(flow_resolution, resolution)
        self.motion = Deconv3dTrunk(self.cond.out_dim, frames, max(self.flow_resolution, 8), width)
        self.to_flow = self.motion.head(2)
        self.shape = ImageGenerator(self.cond.out_dim, channels, resolution, shape_width or width)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, resolution), torch.linspace(-1, 1, resolution), indexing="ij")
        self.register_buffer("identity_grid", torch.stack([xs, ys], dim=-1), persistent=False)  # (H, W, 2) as x, y

    def motion_field(self, h: torch.Tensor) -> torch.Tensor:
        """Displacements (B, 2, T, H, W) in grid units, bounded by ``max_displacement``.

        Made at ``flow_resolution`` and upsampled bilinearly: motion is smooth in space, and a coarse field
        costs a fraction of a full-resolution one (the generator's most expensive part otherwise).
        """
        if not self.max_displacement:  # no motion: the appearance generator alone (a plain image GAN)
            return h.new_zeros(h.shape[0], 2, self.frames, self.resolution, self.resolution)
        flow = self.max_displacement * torch.tanh(self.to_flow(self.motion(h)))
        if self.flow_resolution == 1:  # one displacement per frame: the appearance moves rigidly
            return flow.mean(dim=(3, 4), keepdim=True).expand(-1, -1, -1, self.resolution, self.resolution)
        if flow.shape[-1] == self.resolution:
            return flow
        size = (flow.shape[2], self.resolution, self.resolution)
        return F.interpolate(flow, size=size, mode="trilinear", align_corners=True)

    def forward(self, z, y=None, context=None, num_frames=None):
        self.check_num_frames(num_frames)
        h = self.cond(z, y)
        flow = self.motion_field(h)
        batch, _, frames = flow.shape[:3]
        appearance = self.shape(h)  # (B, C, H, W)
        grid = self.identity_grid + flow.permute(0, 2, 3, 4, 1)  # (B, T, H, W, 2)
        source = appearance[:, None].expand(-1, frames, -1, -1, -1).flatten(0, 1)
        warped = F.grid_sample(source, grid.flatten(0, 1), mode=self.warp, padding_mode="border", align_corners=True)
        return warped.unflatten(0, (batch, frames)).transpose(1, 2)


def build(params):
    G = MotionShapeGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                             params.width, params.motionshape.max_displacement,
                             params.motionshape.flow_resolution, params.motionshape.warp,
                             params.motionshape.shape_width)
    D = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.discriminator_width,
                            use_spectral_norm=True, minibatch_std_group=params.minibatch_std,
                            downsample=params.motionshape.video_downsample,
                            input_gain=params.motionshape.d_input_gain)
    discriminators = {"video": D}
    if params.motionshape.image_frames:
        discriminators["image"] = ImageDiscriminator(params.num_classes, params.channels, params.resolution,
                                                     params.discriminator_width, True, params.motionshape.image_frames,
                                                     input_gain=params.motionshape.d_input_gain)
    return G, discriminators
