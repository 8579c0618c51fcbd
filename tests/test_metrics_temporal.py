"""Temporal metrics separate shuffled and static clips from real ones; baselines keep content and seeds."""

import numpy as np
import pytest
import torch

from vgan.util.errors import VganError
from vgan.metrics.baselines import baseline_clips, noise_clips, real_halves, shuffled_clips, static_clips, to_float_videos
from vgan.metrics.temporal import frame_posteriors, label_consistency, motion_energy, motion_frechet_distance


def moving_blob_clips(num_clips=160, frames=16, size=32, seed=0):
    """uint8 (N, T, H, W, 3) clips: a soft blob drifting over a textured background, random speeds."""
    rng = np.random.default_rng(seed)
    grid_y, grid_x = np.mgrid[0:size, 0:size]
    clips = np.empty((num_clips, frames, size, size, 3), np.uint8)
    for clip in range(num_clips):
        background = rng.uniform(20, 80) + 15 * np.sin(grid_x / rng.uniform(2, 6))
        position, velocity = rng.uniform(8, size - 8, 2), rng.uniform(-1.5, 1.5, 2)
        colour = rng.uniform(150, 255, 3)
        for frame in range(frames):
            blob = np.exp(-((grid_y - position[0]) ** 2 + (grid_x - position[1]) ** 2) / 18.0)
            clips[clip, frame] = np.clip(background[..., None] * (1 - blob[..., None]) + colour * blob[..., None], 0, 255)
            position = position + velocity
            velocity = np.where((position < 4) | (position > size - 4), -velocity, velocity)
    return clips


@pytest.fixture(scope="module")
def real_clips():
    return moving_blob_clips()


def test_baselines_keep_frames_and_layout(real_clips):
    floats = to_float_videos(real_clips)
    assert floats.shape == (160, 3, 16, 32, 32) and floats.min() >= -1 and floats.max() <= 1
    static = static_clips(real_clips)
    assert (static == real_clips[:, :1]).all()
    shuffled = shuffled_clips(real_clips, seed=3)
    assert np.array_equal(np.sort(shuffled, axis=1), np.sort(real_clips, axis=1))  # same frames, new order
    assert not any(np.array_equal(a, b) for a, b in zip(shuffled, real_clips))
    assert np.array_equal(shuffled, shuffled_clips(real_clips, seed=3))
    float_shuffled = shuffled_clips(floats, seed=3)  # same permutation on the code layout
    assert torch.equal(float_shuffled, to_float_videos(shuffled))
    noise = noise_clips(floats, seed=1)
    assert noise.shape == floats.shape and noise.dtype == torch.float32 and noise.abs().max() <= 1
    assert set(baseline_clips(real_clips)) == {"static", "shuffled", "noise"}
    first, second = real_halves(11, seed=0)
    assert len(first) == len(second) == 5 and not set(first) & set(second)
    with pytest.raises(VganError, match="at least 4"):
        real_halves(3)


def test_motion_distance_ranks_shuffled_and_static_clearly_worse_than_real(real_clips):
    first, second = real_halves(len(real_clips), seed=0)
    real_a, real_b = real_clips[first], real_clips[second]
    real_vs_real = motion_frechet_distance(real_a, real_b)
    shuffled = motion_frechet_distance(real_a, shuffled_clips(real_b, seed=1))
    static = motion_frechet_distance(real_a, static_clips(real_b))
    noise = motion_frechet_distance(real_a, noise_clips(real_b, seed=1))
    assert shuffled > 10 * real_vs_real
    assert static > 10 * real_vs_real
    assert noise > shuffled
    assert motion_frechet_distance(real_a, real_a) == pytest.approx(0.0, abs=1e-9)
    assert motion_energy(static_clips(real_b)) == 0.0
    assert motion_energy(shuffled_clips(real_b, seed=1)) > 1.5 * motion_energy(real_b)


def test_label_consistency_hand_checked():
    steady = np.tile(np.eye(3)[[1]], (4, 1))  # 4 frames, always class 1
    wavering = np.eye(3)[[0, 0, 2, 0]]  # one frame of 4 disagrees
    probs = np.stack([steady, wavering])
    assert label_consistency(probs) == pytest.approx((1.0 + 0.75) / 2)


def test_frame_posteriors_show_each_frame_as_a_static_clip(real_clips):
    seen = []

    def logits_fn(clips):  # "classifier": class = whether the clip is brighter than average, and records inputs
        seen.append(clips)
        return torch.stack([clips.mean(dim=(1, 2, 3, 4)), -clips.mean(dim=(1, 2, 3, 4))], 1) * 100

    probs = frame_posteriors(logits_fn, real_clips[:3], batch_size=10)  # 16 frames: 8 evenly spaced ones
    assert probs.shape == (3, 8, 2)
    stills = torch.cat(seen)
    assert stills.shape == (24, 3, 8, 32, 32)
    assert torch.equal(stills[9, :, 5], to_float_videos(real_clips[1:2])[0, :, 2])  # clip 1, frame 2 (0, 2, 4, ...)
    assert torch.equal(stills[15, :, 0], to_float_videos(real_clips[1:2])[0, :, 15])  # the last frame is always seen
    assert (stills[9] == stills[9, :, :1]).all()
    every = frame_posteriors(logits_fn, real_clips[:3], batch_size=10, max_frames=16, still_frames=16)
    assert every.shape == (3, 16, 2)
    np.testing.assert_allclose(probs.sum(axis=2), 1.0)
