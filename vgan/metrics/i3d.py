"""Inception-I3D (Carreira & Zisserman 2017) for FVD: parameter names follow the published PyTorch port."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vgan.util.media import rgb
from vgan.metrics.weights import load_into, load_state_dict, load_torchscript, network_device, verify_weights

I3D_SIZE = 224
I3D_CLASSES = 400
I3D_PARAM = "evaluate.i3d_weights"
I3D_DESCRIPTION = ("the Kinetics-400 I3D weights (StyleGAN-V's i3d_torchscript.pt, or an Inception-I3D "
                   "PyTorch state dict such as i3d_pretrained_400.pt)")

# Output channels of each Inception module's branches: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | pool -> 1x1.
INCEPTION_BRANCHES = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_padding(x: torch.Tensor, kernel: tuple, stride: tuple) -> torch.Tensor:
    """Zero-pad (T, H, W) as TensorFlow's "SAME" does: the extra pixel goes after, not before."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (SAME padding) + BatchNorm (eps 1e-3) + ReLU, or a biased linear conv for the logits."""

    def __init__(self, in_channels: int, out_channels: int, kernel=(1, 1, 1), stride=(1, 1, 1), logits_layer=False):
        super().__init__()
        self.kernel, self.stride, self.logits_layer = tuple(kernel), tuple(stride), logits_layer
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, bias=logits_layer)
        if not logits_layer:
            self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(same_padding(x, self.kernel, self.stride))
        return x if self.logits_layer else F.relu(self.bn(x))


class SameMaxPool3d(nn.Module):
    """Max pooling with TensorFlow "SAME" zero padding (inputs are post-ReLU, so zeros never win)."""

    def __init__(self, kernel: tuple, stride: tuple):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(same_padding(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four parallel branches concatenated on channels (names b0, b1a, b1b, b2a, b2b, b3b as published)."""

    def __init__(self, in_channels: int, branches: tuple):
        super().__init__()
        self.b0 = Unit3D(in_channels, branches[0])
        self.b1a = Unit3D(in_channels, branches[1])
        self.b1b = Unit3D(branches[1], branches[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, branches[3])
        self.b2b = Unit3D(branches[3], branches[4], (3, 3, 3))
        self.b3a = SameMaxPool3d((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, branches[5])
        self.out_channels = branches[0] + branches[2] + branches[4] + branches[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """RGB Inception-I3D: float (B, 3, T, 224, 224) in [-1, 1] -> (B, classes) logits averaged over time."""

    def __init__(self, num_classes: int = I3D_CLASSES):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = SameMaxPool3d((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = SameMaxPool3d((1, 3, 3), (1, 2, 2))
        channels = 192
        for name, branches in INCEPTION_BRANCHES.items():
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = SameMaxPool3d((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = SameMaxPool3d((2, 2, 2), (2, 2, 2))
            module = InceptionModule(channels, branches)
            setattr(self, name, module)
            channels = module.out_channels
        self.logits = Unit3D(channels, num_classes, logits_layer=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            if module is self.logits:
                break
            x = module(x)
        # Published head: average over 2x7x7 windows (stride 1), 1x1x1 logits, then the mean over time.
        # Windows shrink only for inputs smaller than the reference 224 pixels (tests, benchmarks).
        window = (min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4]))
        return self.logits(F.avg_pool3d(x, window, stride=1)).mean(dim=(2, 3, 4))


def quantise_to_uint8(videos) -> torch.Tensor:
    """uint8 (B, 3, T, H, W) as the reference sees clips: generated floats rounded as saved videos are."""
    videos = torch.as_tensor(videos)
    if videos.dtype == torch.uint8:
        clips = videos.permute(0, 4, 1, 2, 3)
    else:
        clips = (videos.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return rgb(clips)  # the networks take colour; a grey clip's channel is repeated


def i3d_preprocess(videos, size: int = I3D_SIZE) -> torch.Tensor:
    """Reference preprocessing: uint8 -> bilinear resize to size x size -> float [-1, 1] (B, 3, T, size, size)."""
    clips = quantise_to_uint8(videos)
    batch, channels, frames, height, width = clips.shape
    frames_2d = clips.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width).float()
    if (height, width) != (size, size):
        frames_2d = F.interpolate(frames_2d, size=(size, size), mode="bilinear", align_corners=False)
    return (frames_2d.reshape(batch, frames, channels, size, size).permute(0, 2, 1, 3, 4) / 127.5 - 1.0).contiguous()


class I3DFeatures(nn.Module):
    """FVD features: clips (uint8 (B, T, H, W, C) or float (B, C, T, H, W) in [-1, 1]) -> (B, 400) logits."""

    def __init__(self, network: nn.Module, torchscript: bool, size: int = I3D_SIZE):
        super().__init__()
        self.network, self.torchscript, self.size = network, torchscript, size

    @torch.no_grad()
    def forward(self, videos) -> torch.Tensor:
        device = network_device(self.network)
        if self.torchscript:
            # StyleGAN-V's TorchScript takes uint8-valued (B, 3, T, H, W) and does its own rescale and resize.
            clips = quantise_to_uint8(videos).to(device)
            return self.network(clips, rescale=True, resize=True, return_features=True).float()
        return self.network(i3d_preprocess(videos, self.size).to(device)).float()


def load_i3d(weights_path: str | None, sha256: str | None, device: str | torch.device = "cpu") -> I3DFeatures:
    """The I3D feature network from a pinned local file (TorchScript or state dict); refuses without one."""
    weights = verify_weights(weights_path, sha256, I3D_PARAM, I3D_DESCRIPTION)
    if weights.kind == "torchscript":
        network = load_torchscript(weights, I3D_PARAM, "")
        extractor = I3DFeatures(network, torchscript=True)
    else:
        network = load_into(InceptionI3d(), load_state_dict(weights, I3D_PARAM), I3D_PARAM, weights.path)
        extractor = I3DFeatures(network, torchscript=False)
    extractor.sha256 = weights.sha256
    return extractor.to(device)
