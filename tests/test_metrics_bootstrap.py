"""Bootstrap intervals of Fréchet distances, and the sentence that places a model among the baselines."""

from __future__ import annotations

import numpy as np
import pytest

from vgan.util.errors import VganError
from vgan.metrics.frechet import frechet_distance
from vgan.metrics.baselines import standing_sentence
from vgan.metrics.bootstrap import frechet_bootstrap


def gaussian(count: int, shift: float = 0.0, seed: int = 0, features: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, features)) + shift


def test_intervals_hold_the_estimate_narrow_with_n_and_separate_distinct_sets():
    reference = gaussian(200, seed=0)
    same, shifted = gaussian(200, seed=1), gaussian(200, shift=0.5, seed=2)
    intervals = frechet_bootstrap(reference, {"same": same, "shifted": shifted}, num_resamples=200, seed=0)
    for name, features in (("same", same), ("shifted", shifted)):
        row = intervals[name]
        assert row["fd"] == pytest.approx(frechet_distance(reference, features))
        assert 0 <= row["ci_low"] <= row["fd"] <= row["ci_high"]
    # the true distances are 0 and 8 * 0.25 = 2: the intervals do not overlap
    assert intervals["same"]["ci_high"] < intervals["shifted"]["ci_low"]
    assert intervals["shifted"]["ci_low"] < 2.0 < intervals["shifted"]["ci_high"]
    # resampling with replacement duplicates clips, so raw resamples sit above the estimate
    assert intervals["same"]["bootstrap_median"] > intervals["same"]["fd"]
    small = frechet_bootstrap(reference[:50], {"shifted": shifted[:50]}, num_resamples=200, seed=0)["shifted"]
    assert small["ci_high"] - small["ci_low"] > intervals["shifted"]["ci_high"] - intervals["shifted"]["ci_low"]
    assert frechet_bootstrap(reference, {"same": same}, seed=0) == frechet_bootstrap(reference, {"same": same}, seed=0)


def test_bootstrap_refuses_bad_settings_in_one_line():
    with pytest.raises(VganError, match="at least 2 clips per set; model has 1"):
        frechet_bootstrap(gaussian(10), {"model": gaussian(1)})
    with pytest.raises(VganError, match="between 0 and 1"):
        frechet_bootstrap(gaussian(10), {"model": gaussian(10)}, level=95)
    with pytest.raises(VganError, match="at least 10 resamples"):
        frechet_bootstrap(gaussian(10), {"model": gaussian(10)}, num_resamples=3)


def row(value: float, low: float, high: float) -> dict:
    return {"fd_evaluator": value, "fd_evaluator_ci_low": low, "fd_evaluator_ci_high": high}


def test_the_standing_sentence_says_what_the_model_beats_and_loses_to():
    rows = {"model": row(412, 380, 450), "real_vs_real": row(9.5, 8, 11), "static": row(87, 80, 95),
            "shuffled": row(150, 140, 170), "noise": row(2100, 2000, 2200)}
    assert standing_sentence(rows, 300, 0.95) == (
        "At n = 300 clips per set (95% bootstrap intervals), the model (fd_evaluator 412, CI 380–450) beats the "
        "noise (2100, CI 2000–2200) baseline but is worse than the static-frame (87, CI 80–95) and "
        "time-shuffled (150, CI 140–170) baselines; the real-vs-real floor is 9.5 (CI 8–11).")


def test_overlapping_intervals_are_called_so_and_matching_the_floor_is_said():
    rows = {"model": row(10, 8, 12), "real_vs_real": row(9, 7, 11), "static": row(11, 10, 13),
            "shuffled": row(30, 25, 35), "noise": row(500, 450, 550)}
    sentence = standing_sentence(rows, 64, 0.9)
    assert "(90% bootstrap intervals)" in sentence
    assert "beats the time-shuffled (30, CI 25–35) and noise (500, CI 450–550) baselines and cannot be " \
           "told apart from the static-frame (11, CI 10–13) baseline (intervals overlap)" in sentence
    assert sentence.endswith("; the real-vs-real floor is 9 (CI 7–11), which the model matches within the intervals.")
