"""The one Fréchet distance: float64 statistics, 1/N covariance, exact for rank-deficient inputs."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from vgan.errors import VganError

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


class FeatureStats:
    """Streaming float64 mean/covariance of features: add batches, merge parts and DDP ranks, save/load."""

    def __init__(self, num_features: int | None = None):
        self.num_features = num_features
        self.count = 0
        self._mean = None if num_features is None else np.zeros(num_features)
        self._centred_squares = None if num_features is None else np.zeros((num_features, num_features))

    def _merge_moments(self, count: int, mean: np.ndarray, centred_squares: np.ndarray) -> None:
        if count == 0:
            return
        if self._mean is None:
            self.num_features = mean.shape[0]
            self._mean, self._centred_squares = np.zeros_like(mean), np.zeros_like(centred_squares)
        if mean.shape[0] != self.num_features:
            raise VganError(f"feature sizes differ: {mean.shape[0]} vs {self.num_features}; use the same feature network")
        total = self.count + count
        delta = mean - self._mean
        # Chan et al.'s pairwise update keeps precision when means are large next to the spread.
        self._centred_squares = self._centred_squares + centred_squares + np.outer(delta, delta) * (self.count * count / total)
        self._mean = self._mean + delta * (count / total)
        self.count = total

    def add(self, features) -> "FeatureStats":
        """Add a (B, F) batch of features."""
        matrix = _as_feature_matrix(features, "features")
        if len(matrix):
            batch_mean = matrix.mean(axis=0)
            centred = matrix - batch_mean
            self._merge_moments(len(matrix), batch_mean, centred.T @ centred)
        return self

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Fold another accumulator's clips into this one."""
        if other.count:
            self._merge_moments(other.count, other._mean, other._centred_squares)
        return self

    def all_reduce(self) -> "FeatureStats":
        """Merge the statistics of every DDP rank into this one (no-op when not distributed)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(dist.get_world_size())]
        dist.all_gather(sizes, torch.tensor([self.num_features or 0], dtype=torch.int64, device=device))
        num_features = max(int(size.item()) for size in sizes)
        packed = torch.zeros(1 + num_features + num_features * num_features, dtype=torch.float64, device=device)
        if self.count:
            packed[0] = self.count
            packed[1 : 1 + num_features] = torch.from_numpy(self._mean)
            packed[1 + num_features :] = torch.from_numpy(self._centred_squares.ravel())
        gathered = [torch.zeros_like(packed) for _ in sizes]
        dist.all_gather(gathered, packed)
        merged = FeatureStats(num_features)
        for part in gathered:
            part = part.cpu().numpy()
            merged._merge_moments(int(part[0]), part[1 : 1 + num_features], part[1 + num_features :].reshape(num_features, num_features))
        self.num_features, self.count, self._mean, self._centred_squares = (
            merged.num_features, merged.count, merged._mean, merged._centred_squares)
        return self

    @property
    def mean(self) -> np.ndarray:
        self._require_clips(1)
        return self._mean.copy()

    @property
    def covariance(self) -> np.ndarray:
        """1/N covariance, as the reference FVD."""
        self._require_clips(1)
        return self._centred_squares / self.count

    def _require_clips(self, minimum: int) -> None:
        if self.count < minimum:
            raise VganError(f"feature statistics hold {self.count} clips; at least {minimum} are needed")

    def frechet_distance(self, other: "FeatureStats") -> float:
        """Fréchet distance between this accumulator's clips and another's."""
        self._require_clips(2)
        other._require_clips(2)
        return frechet_distance_from_stats(self.mean, self.covariance, other.mean, other.covariance)

    def save(self, path: str | Path, metadata: dict | None = None) -> Path:
        """Write the statistics (and JSON metadata) atomically as .npz."""
        self._require_clips(1)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, count=np.int64(self.count), mean=self._mean, centred_squares=self._centred_squares,
                         metadata=np.array(json.dumps(metadata or {}, sort_keys=True)))
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FeatureStats":
        """Read statistics written by `save`; `.metadata` holds the saved metadata."""
        try:
            with np.load(Path(path), allow_pickle=False) as archive:
                stats = cls(archive["mean"].shape[0])
                stats._merge_moments(int(archive["count"]), archive["mean"], archive["centred_squares"])
                stats.metadata = json.loads(str(archive["metadata"]))
        except (OSError, KeyError, ValueError) as exc:
            raise VganError(f"cannot read feature statistics {path}: {exc}; delete the file to recompute it") from None
        return stats
