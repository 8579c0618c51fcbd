"""Building blocks shared by the architectures."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def spectral(module: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


def input_gain(x: torch.Tensor, gain: float) -> torch.Tensor:
    """A discriminator's input times ``gain`` (``model.d_input_gain``); untouched at 1."""
    return x if gain == 1.0 else x * gain


def num_doublings(start: int, end: int) -> int:
    """How many 2x upsamplings take ``start`` to ``end`` (both powers-of-two multiples)."""
    return int(round(math.log2(end / start)))


def temporal_schedule(frames: int, num_layers: int, start: int | None = None) -> tuple[int, list[int]]:
    """Start length and per-layer temporal strides so ``num_layers`` layers reach ``frames``.

    By default each layer doubles time while it can, from the shortest start that leaves (16 frames over 3 layers:
    2, then 2, 2, 2). With ``start`` the layers multiply time by ``frames / start`` (a power of two), the coarsest
    layers by 4 where doubling is not enough (16 frames from 1 over 3 layers: 4, 2, 2).
    """
    if start is None:
        twos = 0
        while frames % (2 ** (twos + 1)) == 0 and twos < num_layers:
            twos += 1
        return frames >> twos, [2] * twos + [1] * (num_layers - twos)
    twos = (frames // start).bit_length() - 1
    if frames % start or frames != start << twos:
        raise ValueError(f"{frames} frames cannot grow from {start} by doublings")
    base, extra = divmod(twos, num_layers)
    return start, [2 ** (base + 1)] * extra + [2 ** base] * (num_layers - extra)


class ProjectionHead(nn.Module):
    """Logit from pooled features, plus a class projection term when conditional (Miyato & Koyama)."""

    def __init__(self, features: int, num_classes: int, use_spectral_norm: bool = False):
        super().__init__()
        self.linear = spectral(nn.Linear(features, 1), use_spectral_norm)
        self.embed = spectral(nn.Embedding(num_classes, features), use_spectral_norm) if num_classes else None

    def forward(self, h: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("this discriminator is class-conditional: pass labels y")
            out = out + (self.embed(y) * h).sum(dim=1)
        return out


class ConditionalInput(nn.Module):
    """Concatenates a learned label embedding to the latent when the model is conditional."""

    def __init__(self, z_dim: int, num_classes: int, embed_dim: int | None = None):
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim or z_dim) if num_classes else None
        self.out_dim = z_dim + (self.embed.embedding_dim if self.embed is not None else 0)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.embed is None:
            return z
        if y is None:
            raise ValueError("this generator is class-conditional: pass labels y")
        return torch.cat([z, self.embed(y)], dim=1)


class LatentBatchNorm(nn.Module):
    """3D batch norm whose per-channel gain and bias come from the clip's latent (BigGAN's skip-z conditional batch
    norm): every frame and position of a clip gets the same modulation, so what the latent says about the clip
    reaches every layer. The map starts at zero: an untrained layer is plain batch norm (gain 1, bias 0)."""

    def __init__(self, channels: int, latent_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm3d(channels, affine=False)
        self.to_gain_bias = nn.Linear(latent_dim, 2 * channels)
        nn.init.zeros_(self.to_gain_bias.weight)
        nn.init.zeros_(self.to_gain_bias.bias)

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        gain, bias = self.to_gain_bias(latent)[:, :, None, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + gain) + bias


def channel_widths(width: int, layers: int, max_channels: int = 512) -> list[int]:
    """Channels per layer of a generator, widest first (e.g. 256, 128, 64, 32), capped."""
    return [min(width * 2 ** i, max_channels) for i in reversed(range(layers))]


class PixelNorm(nn.Module):
    """Normalises each position's feature vector to unit mean square (Karras et al.)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class MinibatchStd(nn.Module):
    """Appends the mean over features of the per-group standard deviation as one extra channel."""

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        group = min(self.group_size, batch)
        while batch % group:
            group -= 1
        grouped = x.reshape(group, batch // group, *x.shape[1:])
        # the variance written out: torch's var over the group dimension took 6x as long on a CPU (bench_layers)
        std = ((grouped - grouped.mean(dim=0)).square().mean(dim=0) + 1e-8).sqrt()
        feature = std.flatten(1).mean(dim=1)  # (batch // group,)
        feature = feature.repeat(group).reshape(batch, 1, *([1] * (x.dim() - 2)))
        return torch.cat([x, feature.expand(batch, 1, *x.shape[2:])], dim=1)


class ConvGRUCell(nn.Module):
    """A GRU whose gates are 2D convolutions, so the state keeps its spatial layout (DVD-GAN)."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.gates = nn.Conv2d(in_channels + hidden_channels, 2 * hidden_channels, kernel_size, padding=pad)
        self.candidate = nn.Conv2d(in_channels + hidden_channels, hidden_channels, kernel_size, padding=pad)

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        """A first state of the magnitude the cell settles at: its candidate for ``x`` from a zero state."""
        zeros = x.new_zeros(x.shape[0], self.candidate.out_channels, *x.shape[2:])
        return torch.tanh(self.candidate(torch.cat([x, zeros], dim=1)))

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        reset, update = torch.sigmoid(self.gates(torch.cat([x, hidden], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * hidden], dim=1)))
        return update * hidden + (1 - update) * candidate


def random_frame_indices(batch: int, frames: int, count: int, device=None) -> torch.Tensor:
    """``min(count, frames)`` distinct random frame indices for each of ``batch`` clips: (B, count), in random order."""
    return torch.rand(batch, frames, device=device).argsort(dim=1)[:, :count]


def sample_frames(video: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` distinct random frames of each clip: (B, C, T, H, W) -> (B * count, C, H, W)."""
    batch, _, frames = video.shape[:3]
    index = random_frame_indices(batch, frames, count, video.device)
    picked = video.transpose(1, 2)[torch.arange(batch, device=video.device)[:, None], index]
    return picked.flatten(0, 1)


def frames_to_video(frames: torch.Tensor, batch: int) -> torch.Tensor:
    """(B * T, C, H, W) -> (B, C, T, H, W)."""
    return frames.reshape(batch, -1, *frames.shape[1:]).transpose(1, 2)


def to_channels_last_3d(module: nn.Module) -> nn.Module:
    """channels_last_3d for the 5-D weights only: ``Module.to(memory_format=...)`` fails on 2D convs."""
    for param in module.parameters():
        if param.dim() == 5:
            param.data = param.data.contiguous(memory_format=torch.channels_last_3d)
    return module


def shift_pixels(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad_y: int, pad_x: int,
                 mode: str = "constant") -> torch.Tensor:
    """Each item of ``images`` (B, ..., H, W) moved by whole pixels, ``dy`` / ``dx`` (B,) down / right, at most
    ``pad_y`` / ``pad_x``; what comes in from outside is ``F.pad``'s ``mode`` (zeros, or ``replicate``d edges).
    Differentiable in the pixels (DiffAugment's translation, the centred pair discriminator)."""
    height, width = images.shape[-2:]
    padded = F.pad(images, [pad_x, pad_x, pad_y, pad_y], mode=mode)
    rows = torch.arange(height, device=images.device)[None, :, None] + pad_y - dy.view(-1, 1, 1)
    cols = torch.arange(width, device=images.device)[None, None, :] + pad_x - dx.view(-1, 1, 1)
    items = torch.arange(images.shape[0], device=images.device)[:, None, None]
    return padded[items, ..., rows, cols].movedim((1, 2), (-2, -1))  # (B, H, W, ...) -> (B, ..., H, W)


def subpixel_conv_transpose(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, ...],
                            padding: tuple[int, ...]) -> torch.Tensor:
    """A 2D or 3D transposed convolution (groups 1, no dilation, no output padding) computed as one ordinary
    convolution whose output channels hold the stride's phases, interleaved after: the same function as
    ``F.conv_transpose{2,3}d``, faster on a CPU where the layer has few output channels (forward and backward, a 32 -> 1
    channel layer took 0.45x torch's time in 3D and 0.65x in 2D: ``bench/bench_layers.py``)."""
    dims = weight.dim() - 2
    in_channels, out_channels, kernel = weight.shape[0], weight.shape[1], weight.shape[2:]
    taps = [-(-k // s) for k, s in zip(kernel, stride)]
    extra = [a * s - k for a, s, k in zip(taps, stride, kernel)]  # zero taps that make each kernel a multiple
    if any(extra):
        weight = F.pad(weight, [n for e in reversed(extra) for n in (0, e)])
    # kernel index k = s * a + r (tap a, phase r); the ordinary convolution runs over the taps flipped
    split = weight.reshape(in_channels, out_channels, *(n for a, s in zip(taps, stride) for n in (a, s)))
    split = split.flip(*range(2, 2 + 2 * dims, 2))
    order = (1, *range(3, 3 + 2 * dims, 2), 0, *range(2, 2 + 2 * dims, 2))  # (out, phases..., in, taps...)
    phases = math.prod(stride)
    folded = split.permute(order).reshape(out_channels * phases, in_channels, *taps)
    conv = F.conv2d if dims == 2 else F.conv3d
    z = conv(x, folded, None if bias is None else bias.repeat_interleave(phases), 1, [a - 1 for a in taps])
    lengths = z.shape[2:]
    z = z.reshape(z.shape[0], out_channels, *stride, *lengths)
    interleave = (0, 1, *(i for d in range(dims) for i in (2 + dims + d, 2 + d)))  # (B, C, L0, s0, L1, s1, ...)
    y = z.permute(interleave).reshape(z.shape[0], out_channels, *(n * s for n, s in zip(lengths, stride)))
    return y[(slice(None), slice(None),
              *(slice(p, y.shape[2 + d] - e - p) for d, (p, e) in enumerate(zip(padding, extra))))]


def check_subpixel(layer: nn.Module) -> None:
    """A ValueError where ``subpixel_conv_transpose`` cannot compute ``layer`` (a transposed convolution)."""
    if layer.groups != 1 or set(layer.dilation) != {1} or any(layer.output_padding):
        raise ValueError("a sub-pixel transposed convolution needs groups 1, no dilation and no output padding")


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d``; ``subpixel=True`` computes it as ``subpixel_conv_transpose`` (the same function, same
    weights), for an image generator's one-channel output layer over every frame of a clip (TGAN's, MoCoGAN's)."""

    def __init__(self, *args, subpixel: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.subpixel = subpixel
        if subpixel:
            check_subpixel(self)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if self.subpixel and output_size is None:
            return subpixel_conv_transpose(x, self.weight, self.bias, self.stride, self.padding)
        return super().forward(x, output_size)


class _ReplicatedTimeEdges:
    """Mixin for transposed convolutions whose first spatial axis is time (dim 2).

    A plain transposed convolution gives the first and last output frames fewer kernel taps than the
    middle ones (the taps that would come from frames -1 and T fall on zero padding), so generated clips
    get a dim or noisy first frame and a discoloured last one. Here the input is padded in time with
    copies of its edge frames and the output cropped, so every output frame gets the same taps.
    """

    def _init_time_padding(self) -> None:
        self.time_padding = self.padding[0]
        self.padding = (0, *self.padding[1:])

    def _conv_forward_padded(self, padded: torch.Tensor) -> torch.Tensor:
        return super().forward(padded)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        stride, kernel, pad = self.stride[0], self.kernel_size[0], self.time_padding
        frames = x.shape[2]
        wanted = (frames - 1) * stride - 2 * pad + kernel
        edge = -(-(kernel - 1 - pad) // stride)  # input frames to add per side so every output gets all taps
        padded = torch.cat([x[:, :, :1]] * edge + [x] + [x[:, :, -1:]] * edge, dim=2)
        out = self._conv_forward_padded(padded)
        start = edge * stride + pad
        return out[:, :, start:start + wanted]


class TimeConvTranspose3d(_ReplicatedTimeEdges, nn.ConvTranspose3d):
    """``nn.ConvTranspose3d`` with edge frames as well formed as the middle ones (same weights, same shapes).

    ``subpixel=True`` computes it as ``subpixel_conv_transpose`` (the same function, same weights): for a generator's
    output layer, one channel at full resolution, where torch's CPU kernel takes twice as long.
    """

    def __init__(self, *args, subpixel: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_time_padding()
        self.subpixel = subpixel
        if subpixel:
            check_subpixel(self)

    def _conv_forward_padded(self, padded: torch.Tensor) -> torch.Tensor:
        if self.subpixel:
            return subpixel_conv_transpose(padded, self.weight, self.bias, self.stride, self.padding)
        return nn.ConvTranspose3d.forward(self, padded)


class SelfAttention3d(nn.Module):
    """SAGAN's self-attention (Zhang et al. 2019) over every position of a clip's features (B, C, T, H, W): each
    position reads what every other frame and place holds, so a frame can take its content from the others wherever
    it has moved. Residual, its gain zero at first: an untrained layer passes its input through."""

    def __init__(self, channels: int):
        super().__init__()
        self.query = nn.Conv3d(channels, max(channels // 8, 1), 1, bias=False)
        self.key = nn.Conv3d(channels, max(channels // 8, 1), 1, bias=False)
        self.value = nn.Conv3d(channels, max(channels // 2, 1), 1, bias=False)
        self.out = nn.Conv3d(max(channels // 2, 1), channels, 1, bias=False)
        self.gain = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def tokens(t):  # (B, C', T, H, W) -> (B, T*H*W, C')
            return t.flatten(2).transpose(1, 2)

        read = F.scaled_dot_product_attention(tokens(self.query(x)), tokens(self.key(x)), tokens(self.value(x)))
        read = read.transpose(1, 2).reshape(x.shape[0], -1, *x.shape[2:])
        return x + self.gain * self.out(read)


class TimeConvTranspose1d(_ReplicatedTimeEdges, nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` over time with edge steps as well formed as the middle ones."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_time_padding()


def warp(frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``frame`` (B, C, H, W) sampled at each pixel + ``flow`` (B, 2, H, W; x then y, in pixels), bilinear,
    edges repeated."""
    height, width = frame.shape[-2:]
    rows, cols = torch.meshgrid(torch.arange(height, dtype=frame.dtype, device=frame.device),
                                torch.arange(width, dtype=frame.dtype, device=frame.device), indexing="ij")
    grid = torch.stack([(cols + flow[:, 0]) * (2 / max(width - 1, 1)) - 1,
                        (rows + flow[:, 1]) * (2 / max(height - 1, 1)) - 1], dim=-1)
    return F.grid_sample(frame, grid, mode="bilinear", padding_mode="border", align_corners=True)
