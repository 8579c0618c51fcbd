"""DiffAugment for the discriminators: one draw per clip, differentiable, identity when off."""

from __future__ import annotations

import torch

from vgan.train.augment import augment, cutout, translation


def clips(batch=6, frames=5, size=16):
    torch.manual_seed(0)
    return torch.rand(batch, 3, frames, size, size) * 2 - 1


def test_an_empty_policy_changes_nothing():
    video = clips()
    assert torch.equal(augment(video, []), video)


def test_translation_moves_every_frame_of_a_clip_by_the_same_shift():
    video = clips()
    moved = translation(video)
    assert moved.shape == video.shape
    for clip in range(len(video)):
        # find the shift of frame 0, then check it reproduces every other frame
        padded = torch.nn.functional.pad(video[clip], [2, 2, 2, 2])
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(padded[:, :, 2 - dy:18 - dy, 2 - dx:18 - dx], moved[clip])]
        assert matches, f"clip {clip}: not one shift of at most 2 pixels applied to all frames"


def test_cutout_zeroes_the_same_square_in_every_frame():
    video = clips() + 3  # no zeros in the input
    cut = cutout(video)
    holes = cut == 0
    assert holes.any(dim=(1, 2, 3, 4)).all()  # every clip gets a hole
    assert (holes == holes[:, :1, :1]).all()  # same place in every frame and channel
    assert holes[:, 0, 0].sum(dim=(1, 2)).max() <= 8 * 8


def test_gradients_flow_through_every_transform():
    video = clips().requires_grad_(True)
    augment(video, ["color", "translation", "cutout"]).sum().backward()
    assert video.grad is not None and video.grad.abs().sum() > 0

