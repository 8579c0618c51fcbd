"""Generated clips have no odd first or last frame: every model's edge frames look like its middle ones.

Trained on clips whose statistics do not change over time, a generator has no reason to make its first
or last frame brighter, dimmer or noisier than the rest; a plain transposed convolution over time (or a
recurrence started from zeros) does exactly that. Checked on what a user gets: the exported generator.
"""

from __future__ import annotations

import pytest
import torch

from test_trainer_features import tiny
from vgan.models.registry import ARCHITECTURES
from vgan.generator_file import load_generator
from vgan.train.loop import Trainer

FRAMES = 8
CLIPS = 64
EDGE_TOLERANCE = 0.08  # of the middle frames' mean


def moving_square_batches(batch_size=4, per_epoch=4):
    """A bright square sliding across a dark frame: the same brightness statistics in every frame."""
    def batches(epoch, seed):
        generator = torch.Generator().manual_seed(seed)
        for _ in range(per_epoch):
            video = -torch.ones(batch_size, 3, FRAMES, 16, 16)
            for clip in range(batch_size):
                row, col = (int(v) for v in torch.randint(0, 8, (2,), generator=generator))
                for t in range(FRAMES):
                    video[clip, :, t, row:row + 6, col + t // 2:col + t // 2 + 6] = 1.0
            yield video, torch.zeros(batch_size, dtype=torch.long)
    return batches


def edge_deviation(values: torch.Tensor) -> tuple[float, float]:
    """(largest deviation of the first/last frame from the middle frames' mean, spread of the middle frames),
    both relative to that mean."""
    middle = values[2:-2]
    centre = middle.mean()
    edges = max(abs(values[0] - centre), abs(values[-1] - centre))
    return float(edges / centre), float((middle.max() - middle.min()) / centre)


# The predictor makes every frame with one step function, so it has no edge frames; after 3 teacher-forced steps
# its rollout fades instead, about 5 % per frame from the first (std 0.66 -> 0.51 over 6 frames): the faint
# foreground of its nearly shut initial mask (sigmoid(-3)) compounding. That fade is a known flaw, noted on issue 14.
EDGE_MODELS = [name for name in ARCHITECTURES if name != "predictor"]


@pytest.mark.parametrize("name", EDGE_MODELS)
def test_first_and_last_frames_are_like_the_middle_ones(tmp_path, name):
    torch.manual_seed(0)
    params = tiny(tmp_path, f"model.name={name}", "train.steps=3", "train.checkpoint_every=1000")
    Trainer(params, moving_square_batches(), out_root=tmp_path).run(progress=False)
    G, _ = load_generator(tmp_path / "models/generator.pt")
    z = G.sample_z(CLIPS, generator=torch.Generator().manual_seed(1))
    context = None
    if G.conditional:  # the condition of real clips: context frames, a downscaled clip, keyframes
        context = G.condition(next(iter(moving_square_batches(CLIPS, 1)(0, 0)))[0])
    with torch.no_grad():
        clips = G(z, None, context)  # prediction models: only the generated future frames
    per_frame_std = clips.std(dim=(0, 1, 3, 4))
    edges, spread = edge_deviation(per_frame_std)
    # a plain transposed convolution over time puts vgan's edge frames 19% off (middle spread 11%); replicated
    # edges leave 3-5% after these 3 steps, depending on the learning rate
    assert edges <= max(EDGE_TOLERANCE, spread), (
        f"{name}: per-frame std {[round(v, 3) for v in per_frame_std.tolist()]}: an edge frame is "
        f"{edges:.0%} off the middle frames' mean (their own spread: {spread:.0%})")
