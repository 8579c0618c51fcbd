"""Bootstrap intervals of Fréchet distances over clips, from features already computed.

Resampling with replacement duplicates clips, which adds its own finite-sample bias: every resampled
distance sits above the estimate by roughly the estimator's own bias at that n. The raw percentiles
would therefore often exclude the reported figure (always for real-vs-real, whose distance is mostly
bias), so the interval takes the spread of the resamples around their median and centres it on the
estimate: it says how much the figure moves when other clips of the same sets are drawn. It does not
remove the bias of the estimate itself; that is why every compared figure uses the same n.
"""

from __future__ import annotations

import contextlib

import numpy as np

from vgan.util.errors import VganError
from vgan.metrics.frechet import _as_feature_matrix, frechet_distance_from_stats, mean_and_covariance, symmetric_sqrt


def _one_blas_thread():
    """Thousands of 128x128 decompositions gain nothing from BLAS threads, and on a busy machine threads
    that spin-wait for each other made them 50x slower (measured: 71 s instead of 1.4 s on 2 shared cores)."""
    try:
        from threadpoolctl import threadpool_limits  # scikit-learn's dependency; optional here
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def frechet_bootstrap(reference, candidates: dict, num_resamples: int = 200, level: float = 0.95,
                      seed: int = 0) -> dict[str, dict[str, float]]:
    """{name: {fd, ci_low, ci_high, bootstrap_median}} of each candidate feature set against ``reference``.

    Every resample draws the reference's clips and each candidate's clips with replacement; candidates
    of one size share their draw (paired), so baselines made from the same clips move together.
    """
    if not 0 < level < 1:
        raise VganError(f"confidence level must be between 0 and 1, got {level}")
    if num_resamples < 10:
        raise VganError(f"a bootstrap interval needs at least 10 resamples, got {num_resamples}")
    reference = _as_feature_matrix(reference, "reference")
    matrices = {name: _as_feature_matrix(features, name) for name, features in candidates.items()}
    for name, matrix in {"reference": reference, **matrices}.items():
        if len(matrix) < 2:
            raise VganError(f"a Fréchet distance needs at least 2 clips per set; {name} has {len(matrix)}")
    with _one_blas_thread():
        reference_stats = mean_and_covariance(reference)
        point = {name: frechet_distance_from_stats(*reference_stats, *mean_and_covariance(matrix))
                 for name, matrix in matrices.items()}
        draws = _resampled_distances(reference, matrices, num_resamples, seed)
    tail = (1 - level) / 2
    intervals = {}
    for name, values in draws.items():
        low, median, high = np.quantile(values, [tail, 0.5, 1 - tail])
        intervals[name] = {"fd": point[name], "ci_low": float(max(point[name] + low - median, 0.0)),
                           "ci_high": float(point[name] + high - median), "bootstrap_median": float(median)}
    return intervals


def _resampled_distances(reference: np.ndarray, matrices: dict, num_resamples: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    draws = {name: np.empty(num_resamples) for name in matrices}
    for resample in range(num_resamples):
        resampled_reference = mean_and_covariance(reference[rng.integers(0, len(reference), len(reference))])
        reference_sqrt = symmetric_sqrt(resampled_reference[1])  # once per resample, not once per candidate
        picks_by_size: dict[int, np.ndarray] = {}
        for name, matrix in matrices.items():
            size = len(matrix)
            if size not in picks_by_size:
                picks_by_size[size] = rng.integers(0, size, size)
            draws[name][resample] = frechet_distance_from_stats(
                *resampled_reference, *mean_and_covariance(matrix[picks_by_size[size]]), sqrt_cov_a=reference_sqrt)
    return draws
