"""Fréchet distance against independent float64 references; streaming, merging, DDP, save/load."""

import numpy as np
import pytest
import scipy.linalg
import torch

from vgan.util.errors import VganError
from vgan.metrics.frechet import frechet_distance
from vgan.metrics.frechet import frechet_distance_from_stats


def reference_scipy(features_a, features_b):
    """Textbook formula: np.cov (1/N), scipy.linalg.sqrtm of the product."""
    mean_a, mean_b = features_a.mean(0), features_b.mean(0)
    cov_a, cov_b = np.cov(features_a, rowvar=False, bias=True), np.cov(features_b, rowvar=False, bias=True)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    assert np.abs(root.imag).max() < 1e-6 * np.abs(root.real).max()
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))


def reference_eigvals(features_a, features_b):
    """Eigenvalues of the general (non-symmetric) product: tr sqrtm(M) = Σ sqrt(λ(M)), valid when singular."""
    mean_a, mean_b = features_a.mean(0), features_b.mean(0)
    cov_a, cov_b = np.cov(features_a, rowvar=False, bias=True), np.cov(features_b, rowvar=False, bias=True)
    eigenvalues = np.linalg.eigvals(cov_a @ cov_b)
    trace_root = np.sqrt(np.clip(eigenvalues.real, 0, None)).sum()
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def random_rotation(rng, size):
    return np.linalg.qr(rng.standard_normal((size, size)))[0]


def test_random_features_match_scipy_reference():
    rng = np.random.default_rng(0)
    features_a = rng.standard_normal((600, 48)) @ rng.standard_normal((48, 48)) + 0.5
    features_b = rng.standard_normal((500, 48)) @ rng.standard_normal((48, 48)) * 0.7 - 0.2
    assert frechet_distance(features_a, features_b) == pytest.approx(reference_scipy(features_a, features_b), rel=1e-6)


def test_ill_conditioned_covariances_match_reference():
    rng = np.random.default_rng(1)
    scales = np.logspace(0, -5, 32)  # covariance condition number 1e10
    rotation = random_rotation(rng, 32)
    features_a = (rng.standard_normal((800, 32)) * scales) @ rotation
    features_b = (rng.standard_normal((800, 32)) * scales[::-1] * 2) @ rotation.T + 0.01
    expected = reference_scipy(features_a, features_b)
    assert frechet_distance(features_a, features_b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(features_a, features_b) == pytest.approx(reference_eigvals(features_a, features_b), rel=1e-6)


def test_rank_deficient_shared_subspace_matches_full_rank_problem():
    """Features living in a 6-d subspace of 40-d space: the distance equals the 6-d full-rank one."""
    rng = np.random.default_rng(2)
    low_a = rng.standard_normal((300, 6)) @ rng.standard_normal((6, 6))
    low_b = rng.standard_normal((300, 6)) @ rng.standard_normal((6, 6)) + 1.5
    embedding = random_rotation(rng, 40)[:, :6]  # isometry R^6 -> R^40
    expected = reference_scipy(low_a, low_b)
    assert frechet_distance(low_a @ embedding.T, low_b @ embedding.T) == pytest.approx(expected, rel=1e-6)


def test_rank_deficient_different_subspaces_and_fewer_clips_than_features():
    rng = np.random.default_rng(3)
    features_a = rng.standard_normal((30, 8)) @ rng.standard_normal((8, 64))  # rank 8 of 64
    features_b = rng.standard_normal((50, 64))  # N < F: rank 49 of 64
    expected = reference_eigvals(features_a, features_b)
    assert frechet_distance(features_a, features_b) == pytest.approx(expected, rel=1e-6)


def test_identical_sets_give_zero_and_torch_input_is_accepted():
    features = torch.randn(200, 16, generator=torch.Generator().manual_seed(4))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(features, features + 1.0) == pytest.approx(16.0, rel=1e-9)


def test_bad_inputs_are_refused_with_a_message():
    with pytest.raises(VganError, match="2-D"):
        frechet_distance(np.zeros(5), np.zeros(5))
    with pytest.raises(VganError, match="NaN"):
        frechet_distance(np.full((4, 3), np.nan), np.zeros((4, 3)))
    with pytest.raises(VganError, match="feature sizes differ"):
        frechet_distance(np.zeros((4, 3)), np.zeros((4, 5)))
    with pytest.raises(VganError, match="imaginary"):
        frechet_distance_from_stats(np.zeros(3), np.eye(3), np.zeros(3), -np.eye(3))
