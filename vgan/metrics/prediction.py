"""Prediction metrics: PSNR and Gaussian-window SSIM (Wang et al. 2004) per future frame."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vgan.metrics.baselines import to_float_videos
from vgan.util.errors import VganError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _unit_range_frames(predicted, target) -> tuple[torch.Tensor, torch.Tensor]:
    """Both clips as float64 (N, T, C, H, W) in [0, 1]."""
    predicted, target = to_float_videos(predicted, torch.float64), to_float_videos(target, torch.float64)
    if predicted.shape != target.shape:
        raise VganError(f"predicted clips {tuple(predicted.shape)} and ground truth {tuple(target.shape)} differ in shape")
    as_unit = lambda clips: ((clips + 1.0) / 2.0).permute(0, 2, 1, 3, 4)  # noqa: E731
    return as_unit(predicted), as_unit(target)


@torch.no_grad()
def psnr_per_frame(predicted, target) -> np.ndarray:
    """(N, T) PSNR in dB with peak 1 on [0, 1] pixels (255 on uint8); identical frames give inf."""
    predicted, target = _unit_range_frames(predicted, target)
    mse = (predicted - target).pow(2).mean(dim=(2, 3, 4))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse.cpu().numpy())


@torch.no_grad()
def pooled_psnr(predicted, target) -> float:
    """PSNR in dB (peak 1 on [0, 1] pixels) of the mean squared error over every pixel of every clip: where many
    frames are scored exactly (an empty region filled right), a mean of per-frame PSNRs is dominated by them."""
    predicted, target = _unit_range_frames(predicted, target)
    mse = float((predicted - target).pow(2).mean())
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised (size, size) Gaussian weights, float64."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    profile = torch.exp(-offsets.pow(2) / (2 * sigma**2))
    window = torch.outer(profile, profile)
    return window / window.sum()


@torch.no_grad()
def ssim_per_frame(predicted, target) -> np.ndarray:
    """(N, T) SSIM: Gaussian 11×11 window (σ 1.5), K1 0.01, K2 0.03, valid positions, mean over channels."""
    predicted, target = _unit_range_frames(predicted, target)
    clips, frames, channels, height, width = predicted.shape
    if min(height, width) < SSIM_WINDOW:
        raise VganError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {height}x{width}")
    images_x = predicted.reshape(-1, 1, height, width)
    images_y = target.reshape(-1, 1, height, width)
    window = gaussian_window().to(images_x.device)[None, None]
    local_mean = lambda images: F.conv2d(images, window)  # noqa: E731
    mean_x, mean_y = local_mean(images_x), local_mean(images_y)
    var_x = local_mean(images_x * images_x) - mean_x**2
    var_y = local_mean(images_y * images_y) - mean_y**2
    cov_xy = local_mean(images_x * images_y) - mean_x * mean_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
    ssim_map = ((2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)) / ((mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3)).reshape(clips, frames, channels).mean(dim=2).cpu().numpy()
