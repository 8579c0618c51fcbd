"""Kernel distance (KID/KVD) and inception score against hand-checked values."""

import itertools

import numpy as np
import pytest

from vgan.util.errors import VganError
from vgan.metrics.inception_score import inception_score
from vgan.metrics.kernel import kernel_distance
from vgan.metrics.kernel import mmd_squared_unbiased


def brute_force_mmd(x, y):
    kernel = lambda u, v: (np.dot(u, v) / len(u) + 1) ** 3  # noqa: E731
    size = len(x)
    pairs = list(itertools.permutations(range(size), 2))
    within = sum(kernel(x[i], x[j]) + kernel(y[i], y[j]) for i, j in pairs) / len(pairs)
    across = sum(kernel(x[i], y[j]) for i in range(size) for j in range(size)) / size**2
    return within - 2 * across


def test_unbiased_mmd_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 4)), rng.standard_normal((7, 4)) + 0.3
    assert mmd_squared_unbiased(x, y) == pytest.approx(brute_force_mmd(x, y), rel=1e-12)


def test_kernel_distance_is_near_zero_for_one_distribution_and_grows_with_shift():
    rng = np.random.default_rng(1)
    real, same = rng.standard_normal((400, 16)), rng.standard_normal((400, 16))
    shifted = rng.standard_normal((400, 16)) + 0.5
    same_distance = kernel_distance(real, same, num_subsets=20, max_subset_size=200)
    shifted_distance = kernel_distance(real, shifted, num_subsets=20, max_subset_size=200)
    assert abs(same_distance) < 0.02
    assert shifted_distance > 0.1
    assert kernel_distance(real, shifted, num_subsets=20, max_subset_size=200) == shifted_distance  # seeded


def test_kernel_distance_refuses_mismatched_features():
    with pytest.raises(VganError, match="feature sizes differ"):
        kernel_distance(np.zeros((5, 3)), np.zeros((5, 4)))


def test_inception_score_hand_checked_values():
    uniform = np.full((100, 10), 0.1)
    assert inception_score(uniform) == pytest.approx((1.0, 0.0))
    one_hot = np.eye(10)[np.arange(100) % 10]  # confident and evenly spread: score = number of classes
    assert inception_score(one_hot) == pytest.approx((10.0, 0.0))
    # One split, two clips: p = (1, 0) and (0.5, 0.5); marginal (0.75, 0.25).
    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    expected = np.exp((np.log(1 / 0.75) + 0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25)) / 2)
    assert inception_score(probs, num_splits=1)[0] == pytest.approx(expected, rel=1e-12)


def test_inception_score_refuses_logits():
    with pytest.raises(VganError, match="softmax"):
        inception_score(np.random.default_rng(2).standard_normal((20, 5)) + 3, num_splits=2)
