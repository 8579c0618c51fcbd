"""Progressive (hierarchical) generation: a low-resolution video generator plus a spatial refiner.

The base (a VGAN two-stream generator at resolution / refine_factor) makes the clip; the refiner
upsamples it 2x or 4x and adds detail frame by frame. Each level has its own discriminator:
``low`` judges the base clip against downsampled real clips, ``video`` judges the refined clip.
``model.progressive.stage``: ``joint`` trains both at once; ``base`` trains the base alone (its clip is
upsampled by nearest neighbour as the output); ``refiner`` loads the base from ``base_weights`` (the
checkpoint or models/generator.pt of a ``base`` run), freezes it and trains the refiner.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vgan.models.base import VideoGenerator
from vgan.models.layers import frames_to_video
from vgan.models.nets import Conv3dDiscriminator
from vgan.models.vgan import VganGenerator
from vgan.util.errors import ParamsError
from vgan.models.presets import PAPER_OBJECTIVES

RECOMMENDED_OVERRIDES = PAPER_OBJECTIVES["progressive"]  # the paper's objective (vgan.models.presets)


class Refiner(nn.Module):
    """Upsamples a clip spatially and adds detail, frame by frame, with a residual stack of 3x3 convolutions.

    Motion is the base's job; kernels that also reached across time would need padding at the first and
    last frames and make those frames unlike the rest. The frames run as one batch of images in channels-last
    memory: with a few channels at full resolution that is 2x faster on a CPU than 3D convolutions of (1, 3, 3).
    """

    def __init__(self, channels: int, width: int, factor: int, blocks: int = 2):
        super().__init__()
        self.factor = factor
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1), nn.ReLU(True))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU(True),
                          nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width))
            for _ in range(blocks))
        self.to_video = nn.Conv2d(width, channels, 3, 1, 1)
        self.to(memory_format=torch.channels_last)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # generator files written before the refiner ran as images hold its weights as (1, 3, 3) 3D kernels
        for key, value in state_dict.items():
            if key.startswith(prefix) and value.dim() == 5 and value.shape[2] == 1:
                state_dict[key] = value.squeeze(2)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(low, scale_factor=(1, self.factor, self.factor), mode="trilinear", align_corners=False)
        frames = up.transpose(1, 2).flatten(0, 1).contiguous(memory_format=torch.channels_last)  # (B * T, C, H, W)
        h = self.stem(frames)
        for block in self.blocks:
            h = F.relu(h + block(h))
        return frames_to_video(torch.tanh(self.to_video(h)).contiguous(), low.shape[0])


class ProgressiveGenerator(VideoGenerator):
    """Base clip at low resolution, refined to full resolution; ``views`` exposes both."""

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=64, width=32, factor=2,
                 stage="joint", coarse_frames=None, skip_z=False):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.factor = factor
        self.stage = stage
        self.base = VganGenerator(z_dim, num_classes, channels, frames, resolution // factor, width, coarse_frames,
                                  skip_z)
        # half width: the refiner runs at full resolution, where channels cost the most
        self.refiner = Refiner(channels, max(width // 2, 4), factor) if stage != "base" else None
        if stage == "refiner":
            self.base.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.stage == "refiner":
            self.base.eval()  # frozen: keep its batch-norm statistics as trained
        return self

    def low_res(self, z, y=None):
        if self.stage == "refiner":
            with torch.no_grad():
                return self.base(z, y)
        return self.base(z, y)

    def refine(self, low):
        if self.refiner is None:
            return F.interpolate(low, scale_factor=(1, self.factor, self.factor), mode="nearest")
        return self.refiner(low)

    def forward(self, z, y=None, context=None, num_frames=None):
        self.check_num_frames(num_frames)
        return self.refine(self.low_res(z, y))

    def views(self, z, y=None, context=None):
        low = self.low_res(z, y)
        return {"video": self.refine(low), "low": low}

    def real_views(self, real):
        return {"video": real, "low": F.avg_pool3d(real, (1, self.factor, self.factor))}


def load_base_weights(generator: ProgressiveGenerator, path: str) -> None:
    """Copies the ``base.*`` weights of a saved progressive generator (EMA weights when present)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ParamsError(f"parameter model.progressive.base_weights = {path!r}: no such file") from None
    state = next((saved[key] for key in ("G_ema", "G") if isinstance(saved, dict) and key in saved), saved)
    base = {key[len("base."):]: value for key, value in state.items() if key.startswith("base.")}
    if not base:
        raise ParamsError(f"parameter model.progressive.base_weights = {path!r}: holds no progressive base generator")
    try:
        generator.base.load_state_dict(base)
    except RuntimeError as exc:
        raise ParamsError(f"parameter model.progressive.base_weights = {path!r}: does not fit this model "
                          f"({str(exc).splitlines()[0]}); use the same model params as the base run") from None


def load_pretrained(G: ProgressiveGenerator, params) -> None:
    """Stage ``refiner`` starts from the trained base of a stage ``base`` run."""
    if params.progressive.stage == "refiner":
        load_base_weights(G, params.progressive.base_weights)


def build(params):
    options = params.progressive
    G = ProgressiveGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                             params.width, options.refine_factor, options.stage, params.coarse_frames, params.skip_z)
    low_resolution = params.resolution // options.refine_factor
    low_d = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, low_resolution, params.width,
                                params.spectral_norm, view="low", input_gain=params.d_input_gain)
    full_d = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.width,
                                 params.spectral_norm, minibatch_std_group=params.minibatch_std,
                                 downsample=params.video_downsample, input_gain=params.d_input_gain)
    by_stage = {"joint": {"low": low_d, "video": full_d}, "base": {"low": low_d}, "refiner": {"video": full_d}}
    return G, by_stage[options.stage]
