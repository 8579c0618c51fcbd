"""Reference clips that give every metric a scale: real halves, static, temporally shuffled, noise."""

from __future__ import annotations

import numpy as np
import torch

from vgan.util.errors import VganError


def _time_axis(videos) -> int:
    # uint8 clips are in the on-disk layout (B, T, H, W, C); float clips in the code layout (B, C, T, H, W).
    if videos.ndim != 5:
        raise VganError(f"expected a batch of clips with 5 dimensions, got shape {tuple(videos.shape)}")
    return 1 if videos.dtype in (np.uint8, torch.uint8) else 2


def to_float_videos(videos, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Float (B, C, T, H, W) in [-1, 1] from uint8 (B, T, H, W, C) or float (B, C, T, H, W), numpy or torch.

    dtype: the result's dtype; None keeps a float input's own and gives float32 for uint8.
    """
    videos = torch.as_tensor(videos)
    if _time_axis(videos) == 1:
        return videos.permute(0, 4, 1, 2, 3).to(dtype or torch.float32) / 127.5 - 1.0
    return videos.to(dtype) if dtype is not None else videos.float() if not videos.is_floating_point() else videos


def static_clips(videos):
    """Each clip's first frame repeated over time: a generator that never moves."""
    axis = _time_axis(videos)
    first = videos[:, 0:1] if axis == 1 else videos[:, :, 0:1]
    repeats = [1] * 5
    repeats[axis] = videos.shape[axis]
    return first.repeat(*repeats) if isinstance(videos, torch.Tensor) else np.tile(first, repeats)


def shuffled_clips(videos, seed: int = 0):
    """Each clip's frames in a seeded random order (never the original order when T > 1)."""
    axis = _time_axis(videos)
    frames = videos.shape[axis]
    rng = np.random.default_rng(seed)
    out = videos.clone() if isinstance(videos, torch.Tensor) else videos.copy()
    for clip in range(len(videos)):
        order = rng.permutation(frames)
        if frames > 1 and (order == np.arange(frames)).all():
            order = np.roll(order, 1)
        index = torch.as_tensor(order) if isinstance(videos, torch.Tensor) else order
        if axis == 1:
            out[clip] = videos[clip][index]
        else:
            out[clip] = videos[clip][:, index]
    return out


def noise_clips(videos, seed: int = 0):
    """Uniform noise with the clips' shape and value range (0..255 uint8, or [-1, 1] float)."""
    rng = np.random.default_rng(seed)
    if _time_axis(videos) == 1:
        noise = rng.integers(0, 256, size=tuple(videos.shape), dtype=np.uint8)
    else:
        noise = rng.uniform(-1.0, 1.0, size=tuple(videos.shape)).astype(np.float32)
    return torch.from_numpy(noise).to(videos.device) if isinstance(videos, torch.Tensor) else noise


def real_halves(num_clips: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two disjoint, equal-size random halves of the real clips (the real-vs-real baseline)."""
    if num_clips < 4:
        raise VganError(f"the real-vs-real baseline needs at least 4 real clips, got {num_clips}")
    order = np.random.default_rng(seed).permutation(num_clips)
    half = num_clips // 2
    return np.sort(order[:half]), np.sort(order[half : 2 * half])


def baseline_clips(videos, seed: int = 0) -> dict:
    """Static, shuffled and noise versions of a batch of real clips, keyed by baseline name."""
    return {"static": static_clips(videos), "shuffled": shuffled_clips(videos, seed), "noise": noise_clips(videos, seed)}


TRIVIAL_BASELINES = ("static", "shuffled", "noise")
BASELINE_TITLES = {"static": "static-frame", "shuffled": "time-shuffled", "noise": "noise", "real_vs_real": "real-vs-real"}


def format_figure(value: float) -> str:
    """A distance for a sentence: whole numbers from 100 up, else three significant digits."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _with_interval(row: dict, metric: str) -> str:
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    interval = f", CI {format_figure(low)}–{format_figure(high)}" if low is not None and high is not None else ""
    return f"{format_figure(row[metric])}{interval}"


def interval_relation(model: dict, baseline: dict, metric: str = "fd_evaluator") -> str:
    """'beats', 'worse' or 'overlaps': the model's interval against a baseline's (lower is better)."""
    model_low, model_high = model.get(f"{metric}_ci_low", model[metric]), model.get(f"{metric}_ci_high", model[metric])
    low, high = baseline.get(f"{metric}_ci_low", baseline[metric]), baseline.get(f"{metric}_ci_high", baseline[metric])
    if model_high < low:
        return "beats"
    if model_low > high:
        return "worse"
    return "overlaps"


def _listing(names: list[str], rows: dict, metric: str) -> str:
    items = [f"{BASELINE_TITLES[name]} ({_with_interval(rows[name], metric)})" for name in names]
    joined = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return f"the {joined} baseline{'s' if len(items) > 1 else ''}"


def standing_sentence(rows: dict, num_clips: int, level: float, metric: str = "fd_evaluator") -> str:
    """One sentence: where the model stands against the trivial baselines and the real-vs-real floor.

    rows: {"model": {...}, "static": {...}, ...} with ``metric`` and optionally ``metric_ci_low/high``;
    a baseline counts as beaten (or beating) only when the intervals do not overlap.
    """
    model = rows["model"]
    groups: dict[str, list[str]] = {"beats": [], "worse": [], "overlaps": []}
    for name in TRIVIAL_BASELINES:
        if name in rows and rows[name].get(metric) is not None:
            groups[interval_relation(model, rows[name], metric)].append(name)
    clauses = []
    if groups["beats"]:
        clauses.append(f"beats {_listing(groups['beats'], rows, metric)}")
    if groups["worse"]:
        clauses.append(f"{'but ' if clauses else ''}is worse than {_listing(groups['worse'], rows, metric)}")
    if groups["overlaps"]:
        clauses.append(f"{'and ' if clauses else ''}cannot be told apart from "
                       f"{_listing(groups['overlaps'], rows, metric)} (intervals overlap)")
    floor = ""
    if "real_vs_real" in rows:
        relation = interval_relation(model, rows["real_vs_real"], metric)
        remark = {"overlaps": ", which the model matches within the intervals",
                  "beats": ", which the model beats (it may be copying the reference clips)"}.get(relation, "")
        value, *interval = _with_interval(rows["real_vs_real"], metric).split(", ", 1)
        floor = f"; the real-vs-real floor is {value}{f' ({interval[0]})' if interval else ''}{remark}"
    return (f"At n = {num_clips} clips per set ({level:.0%} bootstrap intervals), the model "
            f"({metric} {_with_interval(model, metric)}) {' '.join(clauses)}{floor}.")
