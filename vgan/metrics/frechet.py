"""The one Fréchet distance: float64 statistics, 1/N covariance, exact for rank-deficient inputs."""

from __future__ import annotations


import numpy as np
import torch

from vgan.util.errors import VganError

# A negative eigenvalue of sqrt(A) B sqrt(A) is an imaginary part of sqrtm(A B); beyond rounding
# it means the statistics are not covariances (NaNs, a corrupt cache), so refuse rather than guess.
IMAGINARY_TOLERANCE = 1e-3


def _as_feature_matrix(features, name: str) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2:
        raise VganError(f"{name}: expected a 2-D array (one row per clip), got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise VganError(f"{name}: features contain NaN or inf; check the feature network's input range")
    return matrix


def symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The PSD square root of a covariance (negative rounding eigenvalues clipped to 0)."""
    matrix = np.asarray(matrix, np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray, sqrt_a: np.ndarray | None = None) -> float:
    """tr sqrtm(cov_a @ cov_b), computed as tr sqrtm(sqrt(cov_a) cov_b sqrt(cov_a)), symmetric PSD.

    sqrt_a: ``symmetric_sqrt(cov_a)`` when already known (one reference against many sets).
    """
    sqrt_a = symmetric_sqrt(cov_a) if sqrt_a is None else sqrt_a
    inner = sqrt_a @ cov_b @ sqrt_a
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2)
    real_part = float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())
    imaginary_part = float(np.sqrt(np.clip(-eigenvalues, 0, None)).sum())
    if not np.isfinite(real_part) or imaginary_part > IMAGINARY_TOLERANCE * max(1.0, real_part):
        raise VganError(
            f"matrix square root has an imaginary part {imaginary_part:.3g} (real {real_part:.3g}): "
            "the statistics are not valid covariances; delete the cached statistics and recompute"
        )
    return real_part


def frechet_distance_from_stats(mean_a, cov_a, mean_b, cov_b, sqrt_cov_a: np.ndarray | None = None) -> float:
    """Fréchet distance between Gaussians N(mean_a, cov_a) and N(mean_b, cov_b); ``sqrt_cov_a`` saves
    recomputing ``symmetric_sqrt(cov_a)`` when one reference is compared with many sets."""
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    if mean_a.shape != mean_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != mean_a.shape * 2:
        raise VganError(f"feature sizes differ: {mean_a.shape[0]} vs {mean_b.shape[0]}; use the same feature network")
    mean_term = float(np.square(mean_a - mean_b).sum())
    distance = mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2.0 * trace_sqrt_product(cov_a, cov_b, sqrt_cov_a)
    return max(distance, 0.0)


def mean_and_covariance(features) -> tuple[np.ndarray, np.ndarray]:
    """Float64 mean and 1/N covariance of a (N, F) feature matrix."""
    matrix = _as_feature_matrix(features, "features")
    mean = matrix.mean(axis=0)
    centred = matrix - mean
    return mean, centred.T @ centred / max(len(matrix), 1)


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between two (N, F) feature sets (numpy or torch), one row per clip."""
    matrix_a = _as_feature_matrix(features_a, "features_a")
    matrix_b = _as_feature_matrix(features_b, "features_b")
    if len(matrix_a) < 2 or len(matrix_b) < 2:
        raise VganError(f"Fréchet distance needs at least 2 clips per set, got {len(matrix_a)} and {len(matrix_b)}")
    return frechet_distance_from_stats(*mean_and_covariance(matrix_a), *mean_and_covariance(matrix_b))
