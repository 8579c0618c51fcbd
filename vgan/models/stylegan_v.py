"""StyleGAN-V (Skorokhodov et al. 2022): continuous-time motion codes, modulated convolutions, sparse-frame D.

Content: a mapping network turns the content latent into a style ``w`` that modulates every convolution of a
StyleGAN2-style synthesis network (weight modulation and demodulation, skip ``toRGB`` outputs), the same
``w`` for every frame of a clip. Motion: random motion latents sit at times 0, g, 2g, ... (``g`` =
``model.stylegan_v.motion_anchor_every`` training frames); a code at any real time ``t`` is the smooth
(C1) interpolation of its two neighbours' mapped codes, fed through learnable sinusoids (amplitudes and
phases from the code, learned frequencies), and enters the synthesis network's constant 4x4 input. A frame
depends only on its own time, so a clip can have any length and any frame rate: frame ``k`` is rendered at
``t = k * time_step`` (``G(z, y, num_frames=n, time_step=0.5)`` is twice the training frame rate), and the
first frames of a long clip are the short clip of the same latent.

The discriminator sees ``model.stylegan_v.d_frames`` frames per clip at random sorted times, judges each
with 2D convolutions, concatenates their features over time and is told the time gaps (sinusoidal
features, projection-conditioned). With ``model.stylegan_v.sparse_training`` the generator renders only
those frames in training, at random sorted times per clip, as the paper trains (the ``sparse`` view, its times in
``sparse_times``, real clips' frames picked alike); without it, it renders the whole training clip and the
discriminator picks the frames (the only way when image or pair discriminators judge whole clips beside it). To
stay light on CPU the synthesis network has one modulated convolution per resolution. The paper's objective:
non-saturating loss + R1, with sparse training (``RECOMMENDED_OVERRIDES``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vgan.models.base import VideoDiscriminator, VideoGenerator
from vgan.models.layers import (ConditionalInput, MinibatchStd, PixelNorm, ProjectionHead, channel_widths,
                                frames_to_video, input_gain, num_doublings, random_frame_indices, spectral)
from vgan.models.nets import conv2d_downsampler
from vgan.models.presets import PAPER_OBJECTIVES

# StyleGAN2's objective and Adam settings: non-saturating loss with R1 on real clips, betas (0, 0.99)
RECOMMENDED_OVERRIDES = PAPER_OBJECTIVES["stylegan_v"]  # the paper's objective (vgan.models.presets)

LRELU_GAIN = math.sqrt(2)  # keeps the second moment of unit-variance activations through a leaky ReLU


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


class EqualLinear(nn.Module):
    """Linear layer with StyleGAN's equalised learning rate: unit-normal weights scaled at run time."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_multiplier: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init) / lr_multiplier))
        self.weight_gain = lr_multiplier / math.sqrt(in_dim)
        self.lr_multiplier = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_multiplier)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution: a per-sample style scales the input channels of the weights, and
    demodulation rescales each output channel so unit-variance inputs give unit-variance outputs.

    Computed as scale inputs, shared convolution, scale outputs: the same result as convolving with each
    sample's own modulated weights, without a grouped convolution per sample.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)  # styles start at 1: plain convolution
        self.gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w)  # (N, in)
        weight = self.weight * self.gain
        out = F.conv2d(x * style[:, :, None, None], weight, padding=self.weight.shape[-1] // 2)
        if self.demodulate:  # 1 / ||w_o * s||: sum over input channels and taps of (w_oik s_i)^2
            energy = style.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t()  # (N, out)
            out = out * torch.rsqrt(energy + 1e-8)[:, :, None, None]
        return out + self.bias[None, :, None, None]


class MappingNetwork(nn.Module):
    """Content latent (+ label) -> style ``w``: pixel norm, then fully connected layers at 1/100 learning rate."""

    def __init__(self, in_dim: int, w_dim: int, layers: int):
        super().__init__()
        self.norm = PixelNorm()
        dims = [in_dim] + [w_dim] * layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_multiplier=0.01) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.norm(z)
        for layer in self.layers:
            h = lrelu(layer(h))
        return h


def smoothstep(fraction: torch.Tensor) -> torch.Tensor:
    """3f^2 - 2f^3: interpolation weights with zero slope at both anchors, so the trajectory is C1."""
    return fraction * fraction * (3 - 2 * fraction)


class MotionTrajectory(nn.Module):
    """Random motion latents at anchor times -> a continuous motion code at any time, through learned sinusoids.

    ``anchors`` (B, A, motion_dim) sit at times 0, g, 2g, ...; ``times`` are in training frames, (T,) for every
    clip alike or (B, T) per clip.
    Output (B, T, 2 * motion_dim): the interpolated code and ``a(t) * sin(omega * t + phi(t))``.
    """

    def __init__(self, motion_dim: int, anchor_every: float, frames: int):
        super().__init__()
        self.anchor_every = anchor_every
        self.mapper = nn.Sequential(EqualLinear(motion_dim, motion_dim), nn.LeakyReLU(0.2),
                                    EqualLinear(motion_dim, motion_dim))
        self.amplitude = EqualLinear(motion_dim, motion_dim, bias_init=1.0)
        self.phase = EqualLinear(motion_dim, motion_dim)
        # periods from 2 frames to 4x the training clip, log-spaced: fast wiggles to slow drifts
        periods = torch.logspace(math.log10(2), math.log10(4 * frames), motion_dim)
        self.log_frequency = nn.Parameter((2 * math.pi / periods).log())
        self.out_dim = 2 * motion_dim

    def anchors_for(self, span: float) -> int:
        """Anchors needed to cover times 0..span: the one at or after ``span`` included."""
        return int(span // self.anchor_every) + 2

    def forward(self, anchors: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        codes = self.mapper(anchors)  # (B, A, D)
        times = times.expand(anchors.shape[0], -1)  # (B, T)
        position = times / self.anchor_every
        left = position.floor().long().clamp(max=anchors.shape[1] - 2)
        weight = smoothstep(position - left)[..., None]  # (B, T, 1)
        clip = torch.arange(anchors.shape[0], device=anchors.device)[:, None]
        code = codes[clip, left] * (1 - weight) + codes[clip, left + 1] * weight  # (B, T, D)
        waves = self.amplitude(code) * torch.sin(self.log_frequency.exp() * times[..., None] + self.phase(code))
        return torch.cat([code, waves], dim=-1)


class SynthesisNetwork(nn.Module):
    """Style + motion code -> frame: constant 4x4 input beside the projected motion code, one modulated 3x3
    convolution per resolution up to half the frame side, a modulated sub-pixel convolution to colour at
    full resolution, and the ``toRGB`` outputs of every resolution summed (StyleGAN2's skip generator)."""

    def __init__(self, w_dim: int, motion_dim: int, channels: int, resolution: int, width: int):
        super().__init__()
        widths = channel_widths(width, num_doublings(4, resolution))  # 4x4 .. resolution/2
        self.const = nn.Parameter(torch.randn(widths[0], 4, 4))
        self.motion_in = EqualLinear(motion_dim, widths[0] * 16)
        ins = [2 * widths[0]] + widths[:-1]
        self.convs = nn.ModuleList(ModulatedConv2d(a, b, 3, w_dim) for a, b in zip(ins, widths))
        self.to_rgbs = nn.ModuleList(ModulatedConv2d(b, channels, 1, w_dim, demodulate=False) for b in widths)
        # the last layer works at half resolution and pixel-shuffles 4 colours per pixel to full resolution
        # (a sub-pixel convolution): no full-resolution feature map, the costliest tensor otherwise
        self.last = ModulatedConv2d(widths[-1], 4 * channels, 3, w_dim, demodulate=False)

    def forward(self, w: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        count = w.shape[0]
        x = torch.cat([self.const.expand(count, -1, -1, -1),
                       self.motion_in(motion).view(count, -1, 4, 4)], dim=1)
        rgb = None
        for level, (conv, to_rgb) in enumerate(zip(self.convs, self.to_rgbs)):
            if level:
                x = upsample_nearest(x)
            x = lrelu(conv(x, w))
            rgb = to_rgb(x, w) if rgb is None else _up(rgb) + to_rgb(x, w)
        return torch.tanh(_up(rgb) + F.pixel_shuffle(self.last(x, w), 2))


def _up(image: torch.Tensor) -> torch.Tensor:
    return F.interpolate(image, scale_factor=2.0, mode="bilinear", align_corners=False)


def upsample_nearest(x: torch.Tensor) -> torch.Tensor:
    """2x nearest-neighbour upsampling of (N, C, H, W) by a broadcast (3x faster than F.interpolate on CPU)."""
    n, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


class StyleganVGenerator(VideoGenerator):
    """Mapping network (content) + continuous-time motion trajectory -> a modulated synthesis network per frame.

    The latent is [content (z_dim) | motion latents (motion_dim each), one per anchor time]; draw it with
    ``sample_z(b, num_frames=n, time_step=s)`` for ``n`` frames ``s`` training frames apart.
    """

    variable_length = True
    continuous_time = True  # forward takes time_step: frames at any rate (vgan sample's frame_rate_factors)

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=64, width=32, w_dim=128,
                 mapping_layers=4, motion_dim=16, motion_anchor_every=8.0, sparse_frames=0):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.motion_dim = motion_dim
        self.sparse_frames = sparse_frames  # > 0: training views are this many frames per clip (sparse training)
        self.cond = ConditionalInput(z_dim, num_classes)
        self.mapping = MappingNetwork(self.cond.out_dim, w_dim, mapping_layers)
        self.motion = MotionTrajectory(motion_dim, motion_anchor_every, frames)
        self.synthesis = SynthesisNetwork(w_dim, self.motion.out_dim, channels, resolution, width)

    def anchors_for(self, num_frames: int, time_step: float = 1.0) -> int:
        return self.motion.anchors_for((num_frames - 1) * time_step)

    @property
    def latent_dim(self) -> int:
        return self.z_dim + self.motion_dim * self.anchors_for(self.frames)

    def sample_z(self, batch_size, device=None, generator=None, num_frames=None, time_step: float = 1.0):
        anchors = self.anchors_for(num_frames or self.frames, time_step)
        return torch.randn(batch_size, self.z_dim + self.motion_dim * anchors, device=device, generator=generator)

    def forward(self, z, y=None, context=None, num_frames=None, time_step: float = 1.0):
        steps = num_frames or self.frames
        if time_step <= 0:
            raise ValueError(f"time_step must be > 0 (training frames between output frames); got {time_step}")
        encoded, rest = divmod(z.shape[1] - self.z_dim, self.motion_dim)
        if rest or encoded < 2:
            raise ValueError(f"stylegan_v latents have width z_dim + motion_dim * anchors; got {z.shape[1]}: "
                             f"draw them with G.sample_z(batch, num_frames=...)")
        needed = self.anchors_for(steps, time_step)
        if encoded < needed:
            raise ValueError(f"the latent holds {encoded} motion latents; {steps} frames {time_step} apart need "
                             f"{needed}: draw it with G.sample_z(batch, num_frames={steps}, time_step={time_step})")
        return self.render(z, y, torch.arange(steps, device=z.device, dtype=z.dtype) * time_step)

    def render(self, z: torch.Tensor, y, times: torch.Tensor) -> torch.Tensor:
        """The frames at ``times`` (training frames; (T,) for every clip, or (B, T) per clip): (B, C, T, H, W)."""
        batch = z.shape[0]
        w = self.mapping(self.cond(z[:, : self.z_dim], y))
        anchors = z[:, self.z_dim:].reshape(batch, -1, self.motion_dim)
        motion = self.motion(anchors, times)  # (B, T, D)
        frames = self.synthesis(w.repeat_interleave(motion.shape[1], dim=0), motion.flatten(0, 1))
        return frames_to_video(frames, batch)

    def training_times(self, batch: int, device=None) -> torch.Tensor:
        """``sparse_frames`` distinct random frame times of each clip, sorted: (B, K), as integers."""
        return sorted_frame_times(batch, self.frames, self.sparse_frames, device)

    def views(self, z, y=None, context=None) -> dict[str, torch.Tensor]:
        if not (self.sparse_frames and self.training):  # previews and EMA statistics: whole clips
            return super().views(z, y, context)
        times = self.training_times(z.shape[0], z.device)
        return {"sparse": self.render(z, y, times.to(z.dtype)), "sparse_times": times}

    def real_views(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        views = super().real_views(real)
        if self.sparse_frames:
            times = self.training_times(real.shape[0], real.device)
            views.update(sparse=frames_at(real, times).transpose(1, 2), sparse_times=times)
        return views


def sorted_frame_times(batch: int, frames: int, count: int, device=None) -> torch.Tensor:
    """``count`` distinct random frame indices of each clip, in time order: (B, count)."""
    return random_frame_indices(batch, frames, count, device).sort(dim=1).values


def frames_at(video: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Each clip's frames at its ``times`` (B, K): (B, C, T, H, W) -> (B, K, C, H, W)."""
    return video.transpose(1, 2)[torch.arange(video.shape[0], device=video.device)[:, None], times]


def sinusoidal_features(values: torch.Tensor, periods: torch.Tensor) -> torch.Tensor:
    """(..., K) -> (..., K * 2P): sin and cos of each value at each period."""
    angles = 2 * math.pi * values[..., None] / periods
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


class TimeGapDiscriminator(VideoDiscriminator):
    """Judges ``frames_per_clip`` frames at random sorted times of each clip, told their time gaps: logits (B,).

    Each frame goes through the same 2D convolutions down to 4x4; the frames' feature maps are
    concatenated over time and fused by one convolution; the head is a projection discriminator whose
    condition is the gaps' sinusoidal embedding (and the label, when conditional).
    """

    def __init__(self, num_classes=0, channels=3, frames=16, resolution=64, width=32, use_spectral_norm=False,
                 frames_per_clip=3, minibatch_std_group=0, max_channels=512, input_gain=1.0):
        super().__init__()
        self.input_gain = input_gain
        self.frames_per_clip = min(frames_per_clip, frames)
        self.clip_frames = frames
        self.body, in_ch = conv2d_downsampler(channels, resolution, width, use_spectral_norm, max_channels)
        fused_in = in_ch * self.frames_per_clip
        self.minibatch_std = MinibatchStd(minibatch_std_group) if minibatch_std_group else None
        self.fuse = spectral(nn.Conv2d(fused_in + (1 if minibatch_std_group else 0), in_ch, 3, 1, 1),
                             use_spectral_norm)
        self.register_buffer("gap_periods", torch.logspace(0, math.log10(2 * frames), 8), persistent=False)
        self.gap_embed = spectral(nn.Linear((self.frames_per_clip - 1) * 16, in_ch), use_spectral_norm)
        self.head = ProjectionHead(in_ch, num_classes, use_spectral_norm)

    def pick_frames(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Distinct random frames of each clip in time order: frames (B, K, C, H, W) and their times (B, K)."""
        batch, frames = video.shape[0], video.shape[2]
        times = sorted_frame_times(batch, frames, self.frames_per_clip, video.device)
        return frames_at(video, times), times

    def judge(self, frames: torch.Tensor, times: torch.Tensor, y=None) -> torch.Tensor:
        """Logits for frames (B, K, C, H, W) taken at ``times`` (B, K); only the gaps between them matter."""
        batch, count = frames.shape[:2]
        features = self.body(frames.flatten(0, 1))  # (B * K, F, 4, 4)
        h = features.reshape(batch, count * features.shape[1], *features.shape[2:])
        if self.minibatch_std is not None:
            h = self.minibatch_std(h)
        h = F.leaky_relu(self.fuse(h), 0.2).sum(dim=(2, 3))
        gaps = (times[:, 1:] - times[:, :-1]).to(h.dtype)
        condition = self.gap_embed(sinusoidal_features(gaps, self.gap_periods.to(h.dtype)))
        return self.head(h, y) + (condition * h).sum(dim=1)

    def forward(self, x, y=None, times=None):
        """Logits for clips ``x`` (B, C, T, H, W): for frames it picks, or, given their ``times`` (B, K), for the
        K frames ``x`` holds (the generator's sparse view)."""
        x = input_gain(x, self.input_gain)
        if times is None:
            return self.judge(*self.pick_frames(x), y)
        return self.judge(x.transpose(1, 2), times, y)


def build(params):
    options = params.stylegan_v
    G = StyleganVGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                           params.width, options.w_dim, options.mapping_layers, options.motion_dim,
                           options.motion_anchor_every, options.d_frames if options.sparse_training else 0)
    D = TimeGapDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.width,
                             params.spectral_norm, options.d_frames, params.minibatch_std,
                             input_gain=params.d_input_gain)
    if options.sparse_training:
        D.view = "sparse"  # the frames the generator rendered, their times in the view "sparse_times"
    return G, {"time_gaps": D}
