"""C3D (UCF-101) class posteriors for the video inception score, from the StyleGAN-V TorchScript file."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from vgan.metrics.catalog import ISV_PROTOCOL
from vgan.metrics.i3d import quantise_to_uint8
from vgan.metrics.inception_score import inception_score
from vgan.metrics.weights import load_torchscript, network_device, verify_weights
from vgan.util.errors import VganError

C3D_PARAM = "evaluate.c3d_weights"
C3D_DESCRIPTION = "the UCF-101 C3D TorchScript for the video inception score (StyleGAN-V's c3d_ucf101.pt)"
C3D_FRAMES = 16
ISV_CLIPS, ISV_SPLITS, ISV_SHUFFLE_SEED = 2048, 10, 42


class C3DPosteriors(nn.Module):
    """Clips with 16 frames (uint8 or float [-1, 1]) -> (B, 101) class posteriors."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    @torch.no_grad()
    def forward(self, videos) -> torch.Tensor:
        clips = quantise_to_uint8(videos)
        if clips.shape[2] != C3D_FRAMES:
            raise VganError(f"C3D takes {C3D_FRAMES}-frame clips, got {clips.shape[2]}")
        return self.network(clips.to(network_device(self.network))).float()


def load_c3d(weights_path: str | None, sha256: str | None, device: str | torch.device = "cpu") -> C3DPosteriors:
    """The C3D posterior network from a pinned local TorchScript file; refuses without one."""
    weights = verify_weights(weights_path, sha256, C3D_PARAM, C3D_DESCRIPTION)
    network = load_torchscript(weights, C3D_PARAM, f"the video IS needs {C3D_DESCRIPTION}")
    extractor = C3DPosteriors(network).to(device)
    extractor.sha256 = weights.sha256
    return extractor


def video_inception_score(probs) -> dict:
    """`isv2048_ucf_mean` / `_std` from (2048, 101) posteriors, shuffled with the reference's seed first."""
    probs = np.array(probs, dtype=np.float64)
    np.random.RandomState(ISV_SHUFFLE_SEED).shuffle(probs)
    mean, std = inception_score(probs, num_splits=ISV_SPLITS)
    return {f"{ISV_PROTOCOL}_mean": mean, f"{ISV_PROTOCOL}_std": std}
