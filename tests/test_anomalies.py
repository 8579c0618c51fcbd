"""Synthetic anomalies do what their names say, deterministically; ROC AUC and the frame-difference rule by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vgan.data import anomalies
from vgan.data.digits import render_video
from vgan.util.errors import DataError
from vgan.metrics.anomaly import clip_scores, frame_differences, relative_errors, roc_auc


def digit_clip(seed: int, frames: int = 16, side: int = 32, digit: int = 12) -> np.ndarray:
    """A moving-digits clip (the data code's renderer): an asymmetric glyph, one of 4 shapes (seed % 4),
    bouncing in the frame."""
    rng = np.random.default_rng(seed)
    image = np.zeros((digit, digit), np.uint8)
    image[1:-1, 2:-3] = 220
    image[3:-4, 4:-5] = 0
    image[: digit // 2, -3:] = 160
    image[[2, 5, 8, 10][seed % 4]:, :4] = 0
    return render_video([image], frames, side, rng)


def moved(frame_a: np.ndarray, frame_b: np.ndarray) -> float:
    return float(np.abs(frame_a.astype(int) - frame_b.astype(int)).mean())


def centre(frame: np.ndarray) -> np.ndarray:
    """Where the ink is: its centre of mass (row, column)."""
    ink = frame.max(axis=-1).astype(float)
    rows, cols = np.indices(ink.shape)
    return np.array([(rows * ink).sum(), (cols * ink).sum()]) / ink.sum()


def test_freeze_repeats_the_frame_before_the_onset():
    clip = digit_clip(0)
    out = anomalies.freeze(clip, 6)
    assert np.array_equal(out[:6], clip[:6])
    assert all(np.array_equal(frame, clip[5]) for frame in out[6:])
    assert not np.array_equal(clip[6:], out[6:])  # the real digit moved on


def test_teleport_jumps_once_then_moves_as_before():
    clip = digit_clip(1)
    target = anomalies.teleport_target(clip, 7, np.random.default_rng(0))
    assert target == anomalies.teleport_target(clip, 7, np.random.default_rng(0))  # deterministic for a seed
    out = anomalies.teleport(clip, 7, target)
    assert np.array_equal(out[:7], clip[:7])
    assert anomalies._digit(out[7])[:2] == target
    assert all(abs(int(out[t].sum()) - int(clip[t].sum())) <= 255 * 3 for t in range(7, 16))  # the whole digit
    steps = [np.abs(centre(out[t]) - centre(out[t - 1])).max() for t in range(1, 16)]
    assert max(steps[:6] + steps[7:]) <= 4.5  # its own motion before and after: at most 4 pixels a frame
    assert steps[6] >= 32 // 4 - 1  # the jump: a quarter of the frame (the centre of mass may shift a pixel)


def test_reverse_retraces_the_path():
    order = anomalies.reverse_order(16, 5)
    assert list(order) == [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6, 7]
    assert list(anomalies.reverse_order(6, 2)) == [0, 1, 0, 1, 2, 3]
    clip = digit_clip(2)
    out = anomalies.reverse(clip, 5)
    assert np.array_equal(out, clip[order])


def test_identity_keeps_the_place_and_changes_the_shape():
    clip = digit_clip(3)
    donor = np.zeros_like(clip)
    donor[:, 4:14, 6:10] = 200  # a thin bar: another "digit"
    out = anomalies.change_identity(clip, 8, donor)
    assert np.array_equal(out[:8], clip[:8])
    for t in range(8, 16):
        (top, bottom, left, right), (ptop, pbottom, pleft, pright) = \
            anomalies._ink_box(out[t]), anomalies._ink_box(clip[t])
        assert (bottom - top, right - left) == (10, 4)  # the donor's shape
        centre, before = ((top + bottom) / 2, (left + right) / 2), ((ptop + pbottom) / 2, (pleft + pright) / 2)
        assert abs(centre[0] - before[0]) <= 1 and abs(centre[1] - before[1]) <= 1  # where the digit was


def test_noise_only_in_the_burst_frames():
    clip = digit_clip(4)
    out = anomalies.noise_burst(clip, 9, 3, 0.3, np.random.default_rng(0))
    changed = [not np.array_equal(out[t], clip[t]) for t in range(16)]
    assert changed == [t in (9, 10, 11) for t in range(16)]
    # on black pixels the negative half clips to 0: E max(0, N(0, 76.5)) = 76.5 / sqrt(2 pi) = 30.5
    assert 25 < moved(out[10], clip[10]) < 40


def test_inject_set_is_deterministic_and_labels_what_it_changed():
    clips = np.stack([digit_clip(seed) for seed in range(20)])
    labels = np.arange(20) % 4  # the glyph's shape
    kwargs = dict(types=list(anomalies.ANOMALY_TYPES), fraction=0.5, first_onset=4, min_frames=2, noise_frames=2,
                  noise_std=0.3)
    first, again = anomalies.inject_set(clips, labels, seed=3, **kwargs), anomalies.inject_set(clips, labels, seed=3, **kwargs)
    other = anomalies.inject_set(clips, labels, seed=4, **kwargs)
    assert all(np.array_equal(first[key], again[key]) for key in ("clips", "kinds", "onsets", "frames"))
    assert not np.array_equal(first["clips"], other["clips"])
    kinds = list(first["kinds"])
    assert kinds.count("normal") == 10 and all(kinds.count(kind) == 2 for kind in anomalies.ANOMALY_TYPES)
    for index, (kind, onset) in enumerate(zip(first["kinds"], first["onsets"])):
        if kind == "normal":
            assert onset == -1 and np.array_equal(first["clips"][index], clips[index])
            assert not first["frames"][index].any()
            continue
        assert 4 <= onset <= 14
        assert np.array_equal(first["clips"][index][:onset], clips[index][:onset])  # untouched before the onset
        assert not np.array_equal(first["clips"][index][onset], clips[index][onset])
        expected = np.arange(16) >= onset
        if kind == "noise":
            expected &= np.arange(16) < onset + 2
        assert np.array_equal(first["frames"][index], expected)


def test_inject_set_refuses_what_does_not_fit():
    clips = np.stack([digit_clip(seed, frames=6) for seed in range(4)])
    with pytest.raises(DataError, match="too short"):
        anomalies.inject_set(clips, np.zeros(4), types=["freeze"], fraction=0.5, seed=0, first_onset=5,
                             min_frames=2, noise_frames=1, noise_std=0.3)
    with pytest.raises(DataError, match="at least 2 clips"):
        anomalies.inject_set(clips[:1], np.zeros(1), types=["freeze"], fraction=0.5, seed=0, first_onset=2,
                             min_frames=2, noise_frames=1, noise_std=0.3)


@pytest.mark.parametrize("scores, positive, expected", [
    ([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], 1.0),            # perfect
    ([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1], 0.0),            # inverted
    ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], 0.5),            # all tied
    ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),          # 3 of 4 pairs ordered
    ([0.1, 0.5, 0.5, 0.9], [0, 0, 1, 1], 0.875),          # one tied pair counts 1/2: (3 + 0.5) / 4
    ([1.0, 2.0, 2.0, 2.0, 3.0], [0, 1, 0, 1, 1], 5 / 6),  # pos {2,2,3} vs neg {1,2}: (1.5 + 1.5 + 2) / 6
])
def test_roc_auc_by_hand(scores, positive, expected):
    assert roc_auc(scores, positive) == pytest.approx(expected)


def test_roc_auc_without_both_classes_is_nan():
    assert np.isnan(roc_auc([0.1, 0.2], [1, 1])) and np.isnan(roc_auc([0.1, 0.2], [0, 0]))
    assert np.isnan(roc_auc([], []))


def test_roc_auc_of_unscored_clips_is_nan():  # e.g. the discriminator's column when there is no discriminator
    assert np.isnan(roc_auc([np.nan] * 4, [0, 1, 0, 1])) and np.isnan(roc_auc([0.1, np.nan, 0.3], [0, 1, 1]))


def test_roc_auc_refuses_scores_and_labels_of_different_shapes():
    with pytest.raises(ValueError, match=r"scores \(3,\) and labels \(2,\) differ in shape"):
        roc_auc([0.1, 0.2, 0.3], [0, 1])


def test_frame_difference_rule():
    clips = torch.full((1, 3, 4, 2, 2), -1.0)  # black
    clips[0, :, 2] = 1.0  # frame 2 white: |2 - 1| = 1, |3 - 2| = 1
    clips[0, :, 3, 0, 0] = 0.0  # frame 3 black but one grey pixel: |3 - 2| = (0.5 + 1 + 1 + 1) / 4
    scores = frame_differences(clips)
    assert np.isnan(scores[0, 0])
    assert scores[0, 1:].tolist() == pytest.approx([0.0, 1.0, (0.5 + 1 + 1 + 1) / 4])
    assert clip_scores(scores).tolist() == pytest.approx([1.0])


def test_relative_error_divides_by_the_motion_the_context_showed():
    # frame differences of a 6-frame clip; the predictor (3 context frames) erred on frames 3, 4, 5
    differences = np.array([[np.nan, 0.02, 0.04, 0.03, 0.0, 0.0]])
    errors = np.array([[np.nan, np.nan, np.nan, 0.012, 0.030, 0.001]])
    scores = relative_errors(errors, differences, context_frames=3, floor=0.001)
    assert np.isnan(scores[0, :3]).all()
    # frame 3 saw differences of frames 1-2 (mean 0.03); frame 4 frames 2-3 (0.035); frame 5 frames 3-4 (0.015)
    assert scores[0, 3:].tolist() == pytest.approx([0.012 / 0.031, 0.030 / 0.036, 0.001 / 0.016])
    # a frozen context (no motion) leaves only the floor under a small error
    still = relative_errors(np.array([[np.nan, 0.002]]), np.array([[np.nan, 0.0]]), context_frames=1, floor=0.004)
    assert still[0, 1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="floor"):
        relative_errors(errors, differences, context_frames=3, floor=0.0)
