"""Inception-v3 frame features for FID, from the TorchScript file the StyleGAN family's FID uses."""

from __future__ import annotations

import torch
import torch.nn as nn

from vgan.metrics.i3d import quantise_to_uint8
from vgan.metrics.weights import load_torchscript, network_device, verify_weights

INCEPTION_PARAM = "evaluate.inception_weights"
INCEPTION_DESCRIPTION = "the Inception-v3 TorchScript for FID (inception-2015-12-05.pt, the StyleGAN2-ADA/StyleGAN-V file)"


class InceptionFrameFeatures(nn.Module):
    """Clips (uint8 (B, T, H, W, C) or float (B, C, T, H, W)) -> (B*T, 2048) pool features, one row per frame."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    @torch.no_grad()
    def forward(self, videos) -> torch.Tensor:
        clips = quantise_to_uint8(videos)  # (B, 3, T, H, W) uint8, as the reference feeds images
        frames = clips.permute(0, 2, 1, 3, 4).reshape(-1, *clips.shape[1:2], *clips.shape[3:])
        return self.network(frames.to(network_device(self.network)), return_features=True).float()


def load_inception(weights_path: str | None, sha256: str | None, device: str | torch.device = "cpu") -> InceptionFrameFeatures:
    """The Inception-v3 frame feature network from a pinned local TorchScript file; refuses without one."""
    weights = verify_weights(weights_path, sha256, INCEPTION_PARAM, INCEPTION_DESCRIPTION)
    network = load_torchscript(weights, INCEPTION_PARAM, f"frame FID needs {INCEPTION_DESCRIPTION}")
    extractor = InceptionFrameFeatures(network).to(device)
    extractor.sha256 = weights.sha256
    return extractor
