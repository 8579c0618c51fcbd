"""Fréchet distance against independent float64 references; streaming, merging, DDP, save/load."""

import numpy as np
import pytest
import scipy.linalg
import torch

from vgan.errors import VganError
from vgan.metrics import FeatureStats, frechet_distance
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


def test_streaming_and_merging_equal_the_direct_computation():
    rng = np.random.default_rng(5)
    # Large offsets next to a small spread: naive sum-of-squares accumulation would lose digits here.
    features_a = rng.standard_normal((257, 12)) * 0.01 + 1e4
    features_b = rng.standard_normal((190, 12)) * 0.02 + 1e4
    streamed = FeatureStats()
    for batch in np.array_split(features_a, 9):
        streamed.add(batch)
    halves = FeatureStats().add(features_b[:77]).merge(FeatureStats().add(features_b[77:]))
    assert streamed.count == 257 and halves.count == 190
    np.testing.assert_allclose(streamed.covariance, np.cov(features_a, rowvar=False, bias=True), rtol=1e-7, atol=1e-14)
    assert streamed.frechet_distance(halves) == pytest.approx(frechet_distance(features_a, features_b), rel=1e-6)


def test_save_and_load_round_trip(tmp_path):
    stats = FeatureStats().add(np.random.default_rng(6).standard_normal((50, 7)))
    path = stats.save(tmp_path / "sub" / "real.npz", metadata={"protocol": "fvd2048_16f"})
    loaded = FeatureStats.load(path)
    assert loaded.count == 50 and loaded.metadata == {"protocol": "fvd2048_16f"}
    np.testing.assert_array_equal(loaded.covariance, stats.covariance)
    assert [p.name for p in path.parent.iterdir()] == ["real.npz"]  # no temp file left behind
    (tmp_path / "broken.npz").write_bytes(b"not an archive")
    with pytest.raises(VganError, match="delete the file"):
        FeatureStats.load(tmp_path / "broken.npz")


def _ddp_worker(rank, world_size, init_file, features, result_file):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    stats = FeatureStats().add(np.array_split(features, world_size)[rank]).all_reduce()
    if rank == 0:
        np.savez(result_file, count=stats.count, mean=stats.mean, covariance=stats.covariance)
    dist.destroy_process_group()


def test_all_reduce_merges_ddp_ranks(tmp_path):
    features = np.random.default_rng(7).standard_normal((90, 5)) * 3 + 2
    result_file = tmp_path / "result.npz"
    torch.multiprocessing.spawn(_ddp_worker, args=(2, tmp_path / "init", features, result_file), nprocs=2)
    result = np.load(result_file)
    assert int(result["count"]) == 90
    np.testing.assert_allclose(result["covariance"], np.cov(features, rowvar=False, bias=True), rtol=1e-10)
    np.testing.assert_allclose(result["mean"], features.mean(0), rtol=1e-12)
