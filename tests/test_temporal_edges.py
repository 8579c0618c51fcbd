"""Generated clips have no odd first or last frame: every model's edge frames look like its middle ones.

Trained on clips whose statistics do not change over time, a generator has no reason to make its first
or last frame brighter, dimmer or noisier than the rest; a plain transposed convolution over time (or a
recurrence started from zeros) does exactly that. Checked on what a user gets: the exported generator.

`python scripts/measure_temporal_edges.py` prints the figures behind EDGE_TOLERANCE: every model's edge
deviation over several seeds, with ``measure_edges`` below.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from test_trainer_features import one_thread, tiny  # noqa: F401 - one_thread: an autouse fixture, one thread here too

from vgan.models import layers
from vgan.models.zoo import ARCHITECTURES
from vgan.train.generator_file import load_generator
from vgan.train.loop import Trainer

FRAMES = 8
CLIPS = 1024  # the edge deviation to about half a point (with 64 clips it moved by up to 3 points between draws)
TRAIN_STEPS = 3
# Of the middle frames' mean, with no allowance for the middle frames' own spread. Measured with
# `python scripts/measure_temporal_edges.py --seeds 8` (1024 clips, same-phase reference below): with edge-frame
# padding every model but interp stays within 4.8 % on 71 of 72 model-seeds (the test's seed 0: at most 4.5 %,
# hrvgan; one outlier, vgan at seed 4, 6.9 %); with plain transposed convolutions over time (`--plain-edges`) seed
# 0 puts vgan 18 %, hrvgan 30 %, motionshape 24 % and progressive 7 % off. 5 % on seed 0 separates the two. Since
# the runs are fp32 (trained_clips), measured again on an AMD EPYC (2026-12-07, `--seeds 8`): seed 0 at most 4.3 %
# (hrvgan; vgan 4.2 %), and over 5 % only vgan at seed 4 (6.9 %) and inpaint at seeds 6 and 7 (6.2 %).
EDGE_TOLERANCE = 0.05


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
    """(largest deviation of the first/last frame from the middle frames of its own phase, spread of the middle
    frames), both relative to the middle frames' mean.

    Middle frames are all but two at each end. A stride-2 transposed convolution over time makes even and odd
    frames with different kernel taps, so early in training the two phases differ (a period-2 flicker, up to 24 %
    here): an edge frame is compared with the middle frames of its own parity, which got the same taps, so the
    flicker is neither blamed on the edges nor allowed to hide an edge that is off."""
    frames = len(values)
    middle = range(2, frames - 2)
    centre = values[2:-2].mean()
    edges = max(abs(values[edge] - values[[t for t in middle if t % 2 == edge % 2]].mean()) for edge in (0, frames - 1))
    return float(edges / centre), float((values[2:-2].max() - values[2:-2].min()) / centre)


def trained_clips(name: str, root: Path, seed: int = 0, *overrides: str):
    """Train ``name`` for TRAIN_STEPS steps on moving squares, export it, and generate CLIPS clips with the exported
    generator: returns ``(clips, condition)`` (the condition is None for unconditional models)."""
    torch.manual_seed(seed)
    # fp32: under bf16 autocast an AMD EPYC's kernels (AVX512-BF16, no AMX) gave other floats from run to run, and
    # hrvgan's edge deviation moved between 4.5 % and 5.2 % at the same seed; in fp32 it is the same every run
    params = tiny(root, f"model.name={name}", f"train.steps={TRAIN_STEPS}", "train.checkpoint_every=1000",
                  f"train.seed={seed}", "train.precision=fp32", *overrides)
    Trainer(params, moving_square_batches(), out_root=root).run(progress=False)
    G, _ = load_generator(root / "models/generator.pt")
    z = G.sample_z(CLIPS, generator=torch.Generator().manual_seed(seed + 1))
    context = None
    if G.conditional:  # the condition of real clips: context frames, a downscaled clip, keyframes
        context = G.condition(next(iter(moving_square_batches(CLIPS, 1)(0, seed)))[0])
    with torch.no_grad():
        return G(z, None, context), context  # prediction models: only the generated future frames


def measure_edges(name: str, root: Path, seed: int = 0, *overrides: str) -> tuple[list[float], float, float]:
    """The trained generator's per-frame standard deviation over CLIPS clips, its edge deviation and its middle
    frames' spread (``edge_deviation``)."""
    clips, _ = trained_clips(name, root, seed, *overrides)
    per_frame_std = clips.std(dim=(0, 1, 3, 4))
    return [round(v, 4) for v in per_frame_std.tolist()], *edge_deviation(per_frame_std)


@contextlib.contextmanager
def plain_time_edges():
    """Temporal transposed convolutions without their edge-frame padding (zero padding, as ``nn.ConvTranspose3d``
    has): the flaw this file guards against, put back."""
    def forward(self, x, output_size=None):
        stride, kernel, pad = self.stride[0], self.kernel_size[0], self.time_padding
        wanted = (x.shape[2] - 1) * stride - 2 * pad + kernel
        plain = next(base for base in type(self).__mro__ if base.__module__.startswith("torch.nn"))
        return plain.forward(self, x)[:, :, pad:pad + wanted]  # built with time padding 0: crop it as torch would

    original = layers._ReplicatedTimeEdges.forward
    layers._ReplicatedTimeEdges.forward = forward
    try:
        yield
    finally:
        layers._ReplicatedTimeEdges.forward = original


# The predictor makes every frame with one step function, so it has no edge frames; its rollout faded instead
# (about 5 % per frame, std 0.66 -> 0.51 over 6 frames) while its initial mask let 4.7 % of a grey foreground through
# (predictor.MASK_BIAS was -3): fixed there, it is checked here at the same 5 %.
# interp's first and last frames are the real keyframes it is given, passed through (checked below): it generates
# no edge frames, and its in-between blends are 8-14 % softer than the keyframes by design, not at the edges.
EDGE_MODELS = [name for name in ARCHITECTURES if name != "interp"]
# the predictor generates frames - context_frames frames: 2 context frames leave 6, enough for edges and a middle
EDGE_OVERRIDES = {"predictor": ("model.predictor.context_frames=2",)}


@pytest.mark.parametrize("name", EDGE_MODELS)
def test_first_and_last_frames_are_like_the_middle_ones(tmp_path, name):
    per_frame_std, edges, spread = measure_edges(name, tmp_path, 0, *EDGE_OVERRIDES.get(name, ()))
    assert edges <= EDGE_TOLERANCE, (
        f"{name}: per-frame std {per_frame_std}: an edge frame is {edges:.1%} off the middle frames' mean "
        f"(tolerance {EDGE_TOLERANCE:.0%}; the middle frames' own spread: {spread:.1%})")


def test_the_tolerance_catches_an_edge_frame_off_by_more_than_it():
    """The check fails a clip whose last frame is 6 % dimmer, even when the middle frames spread more than that."""
    stds = torch.tensor([1.0, 1.0, 0.95, 1.05, 1.0, 0.97, 1.0, 0.94])
    edges, spread = edge_deviation(stds)
    assert spread > 0.06 and edges > EDGE_TOLERANCE


def test_interp_edge_frames_are_the_given_keyframes(tmp_path):
    clips, keyframes = trained_clips("interp", tmp_path)
    assert torch.equal(clips[:, :, 0], keyframes[:, :, 0]) and torch.equal(clips[:, :, -1], keyframes[:, :, -1])


@pytest.mark.parametrize("name", ["vgan", "hrvgan"])
def test_plain_transposed_convolutions_over_time_fail_the_check(tmp_path, name):
    """The check can fail: with zero-padded temporal transposed convolutions the edge frames are 18-30 % off."""
    with plain_time_edges():
        _, edges, _ = measure_edges(name, tmp_path)
    assert edges > 3 * EDGE_TOLERANCE
