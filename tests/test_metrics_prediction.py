"""PSNR and Gaussian SSIM against hand-checked values and a direct per-window reference."""

import math

import numpy as np
import pytest
import torch

from vgan.metrics.prediction import gaussian_window, psnr_per_frame, ssim_per_frame
from vgan.util.errors import VganError


def clips_from_unit(frames_01):
    """(N, T, H, W) grey frames in [0, 1] -> float (N, 3, T, H, W) in [-1, 1]."""
    return torch.as_tensor(frames_01, dtype=torch.float64)[:, None].repeat(1, 3, 1, 1, 1) * 2 - 1


def test_identical_frames_give_infinite_psnr_and_unit_ssim():
    clips = torch.rand(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert np.isinf(psnr_per_frame(clips, clips)).all()
    np.testing.assert_allclose(ssim_per_frame(clips, clips), 1.0, rtol=1e-12)


def test_known_mse_gives_known_psnr_per_step():
    target = np.full((1, 3, 16, 16), 0.5)
    predicted = target + np.array([0.1, 0.01, 0.3])[None, :, None, None]  # MSE 1e-2, 1e-4, 9e-2
    psnr = psnr_per_frame(clips_from_unit(predicted), clips_from_unit(target))  # (clips, frames)
    np.testing.assert_allclose(psnr[0], [20.0, 40.0, -10 * math.log10(0.09)], rtol=1e-9)
    uint8_target = np.full((1, 1, 16, 16, 3), 100, np.uint8)
    assert psnr_per_frame(uint8_target + 10, uint8_target)[0, 0] == pytest.approx(20 * math.log10(255 / 10), rel=1e-9)


def test_ssim_of_constant_frames_is_the_luminance_term():
    predicted, target = np.full((1, 1, 12, 12), 0.2), np.full((1, 1, 12, 12), 0.6)
    expected = (2 * 0.2 * 0.6 + 0.01**2) / (0.2**2 + 0.6**2 + 0.01**2)
    assert ssim_per_frame(clips_from_unit(predicted), clips_from_unit(target))[0, 0] == pytest.approx(expected, rel=1e-12)


def test_ssim_matches_a_per_window_reference():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (16, 14))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    offsets = np.arange(11) - 5
    weights = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    weights /= weights.sum()
    values = []
    for top in range(16 - 10):
        for left in range(14 - 10):
            patch_x, patch_y = x[top : top + 11, left : left + 11], y[top : top + 11, left : left + 11]
            mu_x, mu_y = (weights * patch_x).sum(), (weights * patch_y).sum()
            var_x = (weights * (patch_x - mu_x) ** 2).sum()
            var_y = (weights * (patch_y - mu_y) ** 2).sum()
            cov = (weights * (patch_x - mu_x) * (patch_y - mu_y)).sum()
            values.append((2 * mu_x * mu_y + 1e-4) * (2 * cov + 9e-4) / ((mu_x**2 + mu_y**2 + 1e-4) * (var_x + var_y + 9e-4)))
    got = ssim_per_frame(clips_from_unit(x[None, None]), clips_from_unit(y[None, None]))[0, 0]
    assert got == pytest.approx(np.mean(values), rel=1e-10)
    assert 0.3 < got < 0.99
    assert gaussian_window().sum().item() == pytest.approx(1.0)


def test_shape_mismatch_and_tiny_frames_are_refused():
    with pytest.raises(VganError, match="differ in shape"):
        psnr_per_frame(torch.zeros(1, 3, 2, 8, 8), torch.zeros(1, 3, 3, 8, 8))
    with pytest.raises(VganError, match="at least 11x11"):
        ssim_per_frame(torch.zeros(1, 3, 2, 8, 8), torch.zeros(1, 3, 2, 8, 8))
