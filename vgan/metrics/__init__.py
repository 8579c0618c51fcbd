"""Metrics: one Fréchet implementation, kernel distance, inception score, prediction and temporal metrics."""

from vgan.metrics.frechet import FeatureStats, frechet_distance, frechet_distance_from_stats
from vgan.metrics.inception_score import inception_score
from vgan.metrics.kernel import kernel_distance
from vgan.metrics.prediction import prediction_metrics
from vgan.metrics.temporal import label_consistency, motion_frechet_distance, posterior_drift

__all__ = [
    "FeatureStats", "frechet_distance", "frechet_distance_from_stats", "inception_score", "kernel_distance",
    "label_consistency", "motion_frechet_distance", "posterior_drift", "prediction_metrics",
]
