"""DVD-GAN (Clark et al. 2019): a recurrent generator and dual discriminators.

The spatial discriminator judges ``model.dvdgan.k_frames`` random full-resolution frames per clip; the
temporal discriminator judges the whole clip after spatial average pooling by
``model.dvdgan.temporal_downsample``. The recurrent generator unrolls ConvGRUs over time at the 4x4 and
8x8 levels, then upsamples each frame with 2D convolutions, so it can generate any number of frames:
``G(z, y, num_frames=64)``. ``model.dvdgan.generator=3d`` swaps in 3D transposed convolutions instead.
The paper's objective: hinge loss, spectral norm in both discriminators, Adam (0, 0.999), lr 5e-5 / 2e-4
(``RECOMMENDED_OVERRIDES``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vgan.models.base import VideoGenerator
from vgan.models.layers import ConditionalInput, ConvGRUCell, channel_widths, frames_to_video, num_doublings
from vgan.models.nets import Conv3dDiscriminator, Deconv3dGenerator, ImageDiscriminator
from vgan.models.presets import PAPER_OBJECTIVES

# the paper: hinge loss with spectral norm in both discriminators
RECOMMENDED_OVERRIDES = PAPER_OBJECTIVES["dvdgan"]  # the paper's objective (vgan.models.presets)

RECURRENT_LEVELS = 2  # ConvGRUs at 4x4 and 8x8: where the clip's motion is laid out, cheaply


class UpBlock(nn.Module):
    """Per-frame 2x upsampling: BN, ReLU, nearest upsample, 3x3 conv, with an upsampled 1x1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_ch)
        self.conv = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x):
        up = F.interpolate(F.relu(self.norm(x)), scale_factor=2.0, mode="nearest")
        return self.conv(up) + self.shortcut(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DvdganGenerator(VideoGenerator):
    """Latent -> 4x4 map; ConvGRUs unroll it over time; per-frame residual upsampling to full resolution."""

    variable_length = True

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=64, width=32):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        levels = num_doublings(4, resolution)
        widths = channel_widths(width, levels + 1)
        self.start_channels = widths[0]
        self.cond = ConditionalInput(z_dim, num_classes)
        self.fc = nn.Linear(self.cond.out_dim, widths[0] * 16)
        self.recurrent_levels = min(RECURRENT_LEVELS, levels)
        self.grus = nn.ModuleList(ConvGRUCell(widths[i], widths[i]) for i in range(self.recurrent_levels))
        self.ups = nn.ModuleList(UpBlock(widths[i], widths[i + 1]) for i in range(levels))
        self.to_rgb = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU(True), nn.Conv2d(widths[-1], channels, 3, 1, 1),
                                    nn.Tanh())

    def forward(self, z, y=None, context=None, num_frames=None):
        steps = num_frames or self.frames
        batch = z.shape[0]
        x = self.fc(self.cond(z, y)).view(batch, self.start_channels, 4, 4)
        sequence = x[:, None].expand(-1, steps, -1, -1, -1)  # same input each step: the GRU state carries motion
        for level, up in enumerate(self.ups):
            if level < self.recurrent_levels:
                sequence = unroll(self.grus[level], sequence)
            sequence = up(sequence.flatten(0, 1)).unflatten(0, (batch, steps))
        return frames_to_video(self.to_rgb(sequence.flatten(0, 1)), batch)


def unroll(cell: ConvGRUCell, sequence: torch.Tensor) -> torch.Tensor:
    """Runs a ConvGRU over (B, T, C, H, W); returns every step's state.

    It starts from the cell's candidate for the first input, not from zeros: a zero state makes the first
    frames fade in (dimmer than the rest of the clip) while the state grows.
    """
    state, states = cell.initial_state(sequence[:, 0]), []
    for t in range(sequence.shape[1]):
        state = cell(sequence[:, t], state)
        states.append(state)
    return torch.stack(states, dim=1)


def build(params):
    options = params.dvdgan
    if options.generator == "recurrent":
        G = DvdganGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                            params.width)
    else:
        G = Deconv3dGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                              params.width, coarse_frames=params.coarse_frames)
    spatial = ImageDiscriminator(params.num_classes, params.channels, params.resolution, params.discriminator_width,
                                 params.spectral_norm, options.k_frames, input_gain=params.d_input_gain)
    temporal = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution,
                                   params.discriminator_width, params.spectral_norm,
                                   minibatch_std_group=params.minibatch_std,
                                   downsample=options.temporal_downsample, input_gain=params.d_input_gain)
    return G, {"spatial": spatial, "temporal": temporal}
