"""Networks several architectures share: image and 3D generators, image and 3D discriminators."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vgan.models.base import VideoDiscriminator, VideoGenerator
from vgan.models.layers import (ConditionalInput, ConvTranspose2d, MinibatchStd, PixelNorm, ProjectionHead,
                                TimeConvTranspose3d, channel_widths, input_gain, num_doublings, sample_frames,
                                shift_pixels, spectral, temporal_schedule)


class ImageGenerator(nn.Module):
    """Latent vector -> image in [-1, 1]: a fully connected layer, then 2D transposed convolutions; ``subpixel`` for
    the output layer where the generator renders every frame of a clip with it (``layers.ConvTranspose2d``)."""

    def __init__(self, in_dim: int, channels: int, resolution: int, width: int, max_channels: int = 512,
                 subpixel: bool = False):
        super().__init__()
        layers = num_doublings(4, resolution)
        widths = channel_widths(width, layers, max_channels)
        self.start_channels = widths[0]
        self.fc = nn.Linear(in_dim, widths[0] * 16)
        body = [nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for i in range(layers - 1):
            body += [nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1), nn.BatchNorm2d(widths[i + 1]),
                     nn.ReLU(True)]
        body += [ConvTranspose2d(widths[-1], channels, 4, 2, 1, subpixel=subpixel), nn.Tanh()]
        self.body = nn.Sequential(*body)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.body(self.fc(h).view(-1, self.start_channels, 4, 4))


class Deconv3dTrunk(nn.Module):
    """Latent vector -> half-resolution clip features: a fully connected layer, then 3D transposed convolutions.

    ``head(out_channels)`` makes the last layer, which doubles space (and time where the schedule says); ``subpixel``
    for a generator's full-resolution output layer (``TimeConvTranspose3d``).
    """

    def __init__(self, in_dim: int, frames: int, resolution: int, width: int, pixel_norm: bool = False,
                 max_channels: int = 512, coarse_frames: int | None = None):
        super().__init__()
        layers = num_doublings(4, resolution)
        start_frames, t_strides = temporal_schedule(frames, layers, coarse_frames)
        widths = channel_widths(width, layers, max_channels)
        self.start_shape = (widths[0], start_frames, 4, 4)
        self.fc = nn.Linear(in_dim, widths[0] * start_frames * 16)

        def activation(ch):
            return [nn.BatchNorm3d(ch), nn.ReLU(True)] + ([PixelNorm()] if pixel_norm else [])

        body = activation(widths[0])
        for i in range(layers - 1):
            ts = t_strides[i]
            body.append(TimeConvTranspose3d(widths[i], widths[i + 1], (ts + 2, 4, 4), (ts, 2, 2), 1))
            body += activation(widths[i + 1])
        self.body = nn.Sequential(*body)
        self.out_channels = widths[-1]
        self.last_t_stride = t_strides[-1]

    def head(self, out_channels: int, subpixel: bool = False) -> nn.ConvTranspose3d:
        ts = self.last_t_stride
        return TimeConvTranspose3d(self.out_channels, out_channels, (ts + 2, 4, 4), (ts, 2, 2), 1, subpixel=subpixel)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.body(self.fc(h).view(-1, *self.start_shape))


class Deconv3dGenerator(VideoGenerator):
    """Latent (+ label) -> clip by a fully connected layer and 3D transposed convolutions."""

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=64, width=32, pixel_norm=False,
                 max_channels=512, coarse_frames=None):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.cond = ConditionalInput(z_dim, num_classes)
        self.trunk = Deconv3dTrunk(self.cond.out_dim, frames, resolution, width, pixel_norm, max_channels,
                                   coarse_frames)
        self.to_video = self.trunk.head(channels, subpixel=True)

    def forward(self, z, y=None, context=None, num_frames=None):
        self.check_num_frames(num_frames)
        return torch.tanh(self.to_video(self.trunk(self.cond(z, y))))


class Conv3dDiscriminator(VideoDiscriminator):
    """Strided 3D convolutions over the clip, summed features, projection head: logits (B,).

    Options cover the zoo: spectral norm, instance norm, a minibatch-std feature before the head,
    and spatial average pooling of the input (DVD-GAN's temporal discriminator).
    """

    def __init__(self, num_classes=0, channels=3, frames=16, resolution=64, width=32, use_spectral_norm=False,
                 instance_norm=False, minibatch_std_group=0, max_channels=512, downsample=1, view="video",
                 input_gain=1.0):
        super().__init__()
        self.view = view
        self.downsample = downsample
        self.input_gain = input_gain
        layers = num_doublings(4, resolution // downsample)
        _, t_strides = temporal_schedule(frames, layers)
        body, in_ch = [], channels
        for i, ts in enumerate(reversed(t_strides)):
            out_ch = min(width * 2 ** i, max_channels)
            body.append(spectral(nn.Conv3d(in_ch, out_ch, (ts + 2, 4, 4), (ts, 2, 2), 1), use_spectral_norm))
            if instance_norm and i > 0:  # not on the first layer: it would erase the input's colour statistics
                body.append(nn.InstanceNorm3d(out_ch, affine=True))
            body.append(nn.LeakyReLU(0.2, True))
            in_ch = out_ch
        self.body = nn.Sequential(*body)
        self.minibatch_std = None
        if minibatch_std_group:
            self.minibatch_std = nn.Sequential(
                MinibatchStd(minibatch_std_group),
                spectral(nn.Conv3d(in_ch + 1, in_ch, 3, 1, 1), use_spectral_norm), nn.LeakyReLU(0.2, True))
        self.head = ProjectionHead(in_ch, num_classes, use_spectral_norm)

    def forward(self, x, y=None):
        x = input_gain(x, self.input_gain)
        if self.downsample > 1:  # in space only: a 2D pool over (B, C*T, H, W) is the same and faster on CPU
            x = F.avg_pool2d(x.flatten(1, 2), self.downsample).unflatten(1, x.shape[1:3])
        h = self.body(x)
        if self.minibatch_std is not None:
            h = self.minibatch_std(h)
        return self.head(h.sum(dim=(2, 3, 4)), y)


def conv2d_downsampler(channels: int, resolution: int, width: int, use_spectral_norm: bool,
                       max_channels: int = 512) -> tuple[nn.Sequential, int]:
    """Strided 4x4 convolutions from ``resolution`` down to 4x4 (widths doubling from ``width``, capped), and the
    channels they end with: the frame body of the image discriminators."""
    body, in_ch = [], channels
    for i in range(num_doublings(4, resolution)):
        out_ch = min(width * 2 ** i, max_channels)
        body += [spectral(nn.Conv2d(in_ch, out_ch, 4, 2, 1), use_spectral_norm), nn.LeakyReLU(0.2, True)]
        in_ch = out_ch
    return nn.Sequential(*body), in_ch


class FrameDiscriminator(VideoDiscriminator):
    """2D convolutions over frames picked from each clip (``frames_of``), one logit per picked frame: (B, K)."""

    def __init__(self, num_classes=0, channels=3, resolution=64, width=32, use_spectral_norm=False,
                 frames_per_clip=1, max_channels=512, input_gain=1.0):
        super().__init__()
        self.frames_per_clip = frames_per_clip
        self.input_gain = input_gain
        self.body, in_ch = conv2d_downsampler(channels, resolution, width, use_spectral_norm, max_channels)
        self.head = ProjectionHead(in_ch, num_classes, use_spectral_norm)

    def frames_of(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B * K, C', H, W): what the 2D body judges."""
        raise NotImplementedError

    def forward(self, x, y=None):
        batch = x.shape[0]
        frames = self.frames_of(input_gain(x, self.input_gain))
        per_clip = frames.shape[0] // batch
        labels = None if y is None else y.repeat_interleave(per_clip)
        return self.head(self.body(frames).sum(dim=(2, 3)), labels).view(batch, per_clip)


class ImageDiscriminator(FrameDiscriminator):
    """Judges ``frames_per_clip`` random frames of each clip with 2D convolutions: logits (B, K); with ``downsample``
    > 1, the frames average-pooled by that factor in space (as the 3D discriminators' ``downsample``)."""

    def __init__(self, num_classes=0, channels=3, resolution=64, width=32, use_spectral_norm=False,
                 frames_per_clip=1, max_channels=512, input_gain=1.0, downsample=1):
        super().__init__(num_classes, channels, resolution // downsample, width, use_spectral_norm, frames_per_clip,
                         max_channels, input_gain)
        self.downsample = downsample

    def frames_of(self, x):
        frames = sample_frames(x, self.frames_per_clip)
        return F.avg_pool2d(frames, self.downsample) if self.downsample > 1 else frames


class PairDiscriminator(FrameDiscriminator):
    """Judges each clip's first frame beside ``frames_per_clip`` random later frames, stacked as channels, at full
    resolution: logits (B, K).

    It sees whether a later frame still shows what the first one did (the same digit, moved), which an image
    discriminator (one frame at a time) cannot see and a 3D one on pooled clips sees poorly. As MoCoGAN-HD's and
    DIGAN's discriminators, which judge frames in pairs.
    """

    def __init__(self, num_classes=0, channels=3, resolution=64, width=32, use_spectral_norm=False,
                 frames_per_clip=1, max_channels=512, input_gain=1.0, centred=False):
        super().__init__(num_classes, 2 * channels, resolution, width, use_spectral_norm, frames_per_clip,
                         max_channels, input_gain)
        self.centred = centred

    def frames_of(self, x):
        later = sample_frames(x[:, :, 1:], self.frames_per_clip)
        first = x[:, :, 0].repeat_interleave(later.shape[0] // x.shape[0], dim=0)
        if self.centred:  # model.pair_compare=centred: each frame's content at the centre, wherever it has moved
            first, later = centre_on_brightness(first), centre_on_brightness(later)
        return torch.cat([first, later], dim=1)


def centre_on_brightness(frames: torch.Tensor) -> torch.Tensor:
    """Each frame (N, C, H, W) shifted by whole pixels so that its brightness centroid (weights: each pixel above the
    frame's darkest, summed over channels) sits at the centre, edges repeated; the shift is not differentiated, the
    pixels are. A frame's object then overlaps itself in another frame of the clip wherever it has moved."""
    height, width = frames.shape[-2:]
    with torch.no_grad():
        weight = frames.float().sum(dim=1)
        weight = weight - weight.flatten(1).min(dim=1).values[:, None, None]
        total = weight.sum(dim=(1, 2)).clamp_min(1e-6)
        rows = (weight.sum(dim=2) * torch.arange(height, device=frames.device)).sum(dim=1) / total
        cols = (weight.sum(dim=1) * torch.arange(width, device=frames.device)).sum(dim=1) / total
        half_h, half_w = height // 2, width // 2
        # rounded half up, not to even: two frames of one object shift alike however far apart it has moved
        dy = ((height - 1) / 2 - rows + 0.5).floor().long().clamp(-half_h, half_h)
        dx = ((width - 1) / 2 - cols + 0.5).floor().long().clamp(-half_w, half_w)
    return shift_pixels(frames, dy, dx, half_h, half_w, mode="replicate")


class EmbeddedPairDiscriminator(FrameDiscriminator):
    """Judges each clip's first frame beside ``frames_per_clip`` random later frames, each frame embedded alone by one
    shared 2D network (features summed over space), each pair judged on (first, later, |first - later|): logits (B, K).

    Stacked as channels (``PairDiscriminator``), two frames are compared pixel by pixel, which a digit that has moved
    across the frame defeats; embedded apart, what each frame shows is compared wherever it sits (a Siamese network).
    """

    def __init__(self, num_classes=0, channels=3, resolution=64, width=32, use_spectral_norm=False,
                 frames_per_clip=1, max_channels=512, input_gain=1.0):
        super().__init__(num_classes, channels, resolution, width, use_spectral_norm, frames_per_clip, max_channels,
                         input_gain)
        features = self.head.linear.in_features
        self.head = ProjectionHead(3 * features, num_classes, use_spectral_norm)

    def forward(self, x, y=None):
        x = input_gain(x, self.input_gain)
        batch = x.shape[0]
        later = self.body(sample_frames(x[:, :, 1:], self.frames_per_clip)).sum(dim=(2, 3))  # (B * K, F)
        per_clip = later.shape[0] // batch
        first = self.body(x[:, :, 0]).sum(dim=(2, 3)).repeat_interleave(per_clip, dim=0)
        labels = None if y is None else y.repeat_interleave(per_clip)
        return self.head(torch.cat([first, later, (first - later).abs()], dim=1), labels).view(batch, per_clip)
