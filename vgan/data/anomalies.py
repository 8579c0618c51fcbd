"""Synthetic anomalies for real clips: a digit that teleports, freezes, reverses, changes identity, or a noise burst.

Every function takes a uint8 clip (T, H, W, C) and an onset frame and returns a new clip (the input is not
changed); frames before the onset are untouched, frames from the onset on are anomalous:

- ``teleport``: at the onset the digit jumps to a random place at least a quarter of the frame away (from
  where it was and from where it would be), then moves on with its own motion (bouncing off the edges).
- ``freeze``: every frame from the onset on repeats frame ``onset - 1``.
- ``reverse``: time runs backwards from the onset: frame ``onset + k`` is frame ``onset - 2 - k`` (reflected
  at frame 0 when the clip runs out), so the digit retraces its path.
- ``identity``: from the onset on the digit is another clip's digit (``donor``), pasted at the same place
  (the centre of the ink's bounding box, ink = pixels above ``INK_LEVEL``) each frame: same motion, new shape.
- ``noise``: Gaussian noise (``noise_std`` x 255) on ``noise_frames`` frames from the onset, then the clip
  carries on unchanged.

``inject_set`` makes a set of clips anomalous for a seed: which clips, which type, which onset, which jump
and which donor are all drawn from ``numpy.random.default_rng(seed)``, so a seed always gives the same set.
"""

from __future__ import annotations

import numpy as np

from vgan.util.errors import DataError

ANOMALY_TYPES = ("teleport", "freeze", "reverse", "identity", "noise")
NORMAL = "normal"
INK_LEVEL = 40  # pixels brighter than this (of 255) are ink; the moving digits' background is black


def _reflect(position: int, limit: int) -> int:
    """``position`` folded into [0, limit] as a ball bouncing between two walls would be."""
    if limit <= 0:
        return 0
    return limit - abs(position % (2 * limit) - limit)


def _digit(frame: np.ndarray) -> tuple[int, int, np.ndarray] | None:
    """(top, left, patch) of the frame's ink box grown by one pixel (the digit's soft edge); None when blank."""
    box = _ink_box(frame)
    if box is None:
        return None
    top, left = max(0, box[0] - 1), max(0, box[2] - 1)
    return top, left, frame[top:box[1] + 1, left:box[3] + 1]


def _paste(shape: tuple, patch: np.ndarray, top: int, left: int) -> np.ndarray:
    """A black frame of ``shape`` with ``patch`` at (top, left), cut at the edges."""
    frame = np.zeros(shape, np.uint8)
    piece = patch[: shape[0] - top, : shape[1] - left]
    frame[top:top + piece.shape[0], left:left + piece.shape[1]] = piece
    return frame


def teleport(clip: np.ndarray, onset: int, target: tuple[int, int]) -> np.ndarray:
    """The digit jumps to ``target`` (its ink box's top-left, row and column) at ``onset`` and carries on with
    its own motion from there, bouncing off the edges; frames without ink are left as they are."""
    out = clip.copy()
    start = _digit(clip[onset])
    if start is None:
        raise DataError("teleport anomaly: the clip has no ink at the onset frame")
    shift = (target[0] - start[0], target[1] - start[1])
    height, width = clip.shape[1:3]
    for t in range(onset, len(clip)):
        found = _digit(clip[t])
        if found is None:
            continue
        top, left, patch = found
        out[t] = _paste(clip.shape[1:], patch, _reflect(top + shift[0], height - patch.shape[0]),
                        _reflect(left + shift[1], width - patch.shape[1]))
    return out


def teleport_target(clip: np.ndarray, onset: int, rng: np.random.Generator) -> tuple[int, int]:
    """A random place for the digit at ``onset``, at least a quarter of the frame (along one axis) from where
    it was the frame before and from where it would have been (the farthest place when none is that far)."""
    top, left, patch = _digit(clip[onset]) or (0, 0, clip[onset])
    before = _digit(clip[onset - 1]) or (top, left, patch)
    height, width = clip.shape[1:3]
    rows, cols = np.meshgrid(np.arange(height - patch.shape[0] + 1), np.arange(width - patch.shape[1] + 1),
                             indexing="ij")
    distance = np.minimum(np.maximum(np.abs(rows - top), np.abs(cols - left)),
                          np.maximum(np.abs(rows - before[0]), np.abs(cols - before[1]))).ravel()
    far = np.flatnonzero(distance >= min(height, width) // 4)
    pick = int(rng.choice(far)) if len(far) else int(np.argmax(distance))
    return int(rows.ravel()[pick]), int(cols.ravel()[pick])


def freeze(clip: np.ndarray, onset: int) -> np.ndarray:
    """Frames from ``onset`` on are copies of frame ``onset - 1``."""
    out = clip.copy()
    out[onset:] = clip[onset - 1]
    return out


def reverse_order(num_frames: int, onset: int) -> np.ndarray:
    """Frame indices of a clip whose time reverses at ``onset``: ``onset + k`` shows ``onset - 2 - k``,
    reflected at frame 0 (…, 1, 0, 1, 2, …) and at the last frame when the clip is longer than that."""
    order = np.arange(num_frames)
    period = 2 * (num_frames - 1)
    for k in range(num_frames - onset):
        index = abs(onset - 2 - k) % period
        order[onset + k] = index if index < num_frames else period - index
    return order


def reverse(clip: np.ndarray, onset: int) -> np.ndarray:
    """The digit retraces its path from ``onset`` on (see ``reverse_order``)."""
    return clip[reverse_order(len(clip), onset)].copy()


def _ink_box(frame: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), bottom/right exclusive, of the frame's ink; None for a blank frame."""
    ink = frame.max(axis=-1) > INK_LEVEL
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def change_identity(clip: np.ndarray, onset: int, donor: np.ndarray) -> np.ndarray:
    """From ``onset`` on, the ink of ``donor``'s frame ``onset`` replaces the digit, centred where it was."""
    box = _ink_box(donor[min(onset, len(donor) - 1)])
    if box is None:
        raise DataError("identity anomaly: the donor clip has no ink at the onset frame")
    top, bottom, left, right = box
    patch = donor[min(onset, len(donor) - 1), top:bottom, left:right]
    out = clip.copy()
    height, width = clip.shape[1:3]
    for t in range(onset, len(clip)):
        own = _ink_box(clip[t])
        centre = ((own[0] + own[1]) / 2, (own[2] + own[3]) / 2) if own else (height / 2, width / 2)
        row = int(np.clip(round(centre[0] - patch.shape[0] / 2), 0, max(0, height - patch.shape[0])))
        col = int(np.clip(round(centre[1] - patch.shape[1] / 2), 0, max(0, width - patch.shape[1])))
        out[t] = _paste(clip.shape[1:], patch, row, col)
    return out


def noise_burst(clip: np.ndarray, onset: int, frames: int, std: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of ``std`` x 255 added to frames ``onset`` .. ``onset + frames - 1`` (clipped to uint8)."""
    out = clip.copy()
    burst = out[onset:onset + frames].astype(np.float64)
    burst += rng.normal(0.0, std * 255.0, size=burst.shape)
    out[onset:onset + frames] = np.clip(np.round(burst), 0, 255).astype(np.uint8)
    return out


def anomalous_frames(kind: str, onset: int, num_frames: int, noise_frames: int) -> np.ndarray:
    """Bool (T,): the frames a clip with this anomaly shows wrongly (all False for a normal clip)."""
    mask = np.zeros(num_frames, bool)
    if kind != NORMAL:
        mask[onset:onset + noise_frames if kind == "noise" else num_frames] = True
    return mask


def onset_range(num_frames: int, first_onset: int, min_frames: int) -> tuple[int, int]:
    """(lowest, highest) onset frame: at least ``first_onset`` (and 2, which ``reverse`` needs) and at least
    ``min_frames`` anomalous frames before the clip ends; a DataError when the clip is too short for that."""
    low, high = max(2, first_onset), num_frames - min_frames
    if high < low:
        raise DataError(f"clips of {num_frames} frames are too short for anomalies that start at frame {low} or "
                        f"later and last {min_frames} frames (lower anomaly.min_frames or use longer clips)")
    return low, high


def inject_set(clips: np.ndarray, labels: np.ndarray, *, types: list[str] | tuple[str, ...], fraction: float,
               seed: int, first_onset: int, min_frames: int, noise_frames: int, noise_std: float) -> dict:
    """Make ``fraction`` of ``clips`` (uint8 (N, T, H, W, C)) anomalous, the types in turn.

    Returns {"clips": the new uint8 array, "kinds": (N,) type or "normal", "onsets": (N,) int (-1 when
    normal), "frames": (N, T) bool anomalous frames}. Identity donors are clips of another label where
    there is one (any other clip otherwise).
    """
    unknown = [kind for kind in types if kind not in ANOMALY_TYPES]
    if unknown:
        raise DataError(f"unknown anomaly type {unknown[0]!r}; expected names from {', '.join(ANOMALY_TYPES)}")
    num_clips, num_frames = clips.shape[:2]
    if num_clips < 2:
        raise DataError(f"anomaly injection needs at least 2 clips, got {num_clips}")
    low, high = onset_range(num_frames, first_onset, min_frames)
    if noise_frames > num_frames - low:
        raise DataError(f"anomaly.noise_frames = {noise_frames} does not fit after frame {low} of a "
                        f"{num_frames}-frame clip")
    rng = np.random.default_rng(seed)
    count = int(round(fraction * num_clips)) if types else 0
    chosen = np.sort(rng.choice(num_clips, size=count, replace=False))
    kinds = np.full(num_clips, NORMAL, dtype=object)
    onsets = np.full(num_clips, -1, dtype=np.int64)
    out = clips.copy()
    for position, index in enumerate(chosen):
        kind = types[position % len(types)]
        onset = int(rng.integers(low, (high if kind != "noise" else num_frames - noise_frames) + 1))
        clip = clips[index]
        if kind == "teleport":
            out[index] = teleport(clip, onset, teleport_target(clip, onset, rng))
        elif kind == "freeze":
            out[index] = freeze(clip, onset)
        elif kind == "reverse":
            out[index] = reverse(clip, onset)
        elif kind == "identity":
            others = np.flatnonzero(labels != labels[index])
            others = others if len(others) else np.delete(np.arange(num_clips), index)
            out[index] = change_identity(clip, onset, clips[int(rng.choice(others))])
        else:
            out[index] = noise_burst(clip, onset, noise_frames, noise_std, rng)
        kinds[index], onsets[index] = kind, onset
    frames = np.stack([anomalous_frames(kind, int(onset), num_frames, noise_frames)
                       for kind, onset in zip(kinds, onsets)])
    return {"clips": out, "kinds": kinds, "onsets": onsets, "frames": frames}
