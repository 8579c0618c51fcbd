"""Metrics: one Fréchet implementation (``frechet``), kernel distance, inception score, prediction and temporal
metrics, baselines and the external protocols, one module each.

Nothing is imported here, so that validating params (which reads names from ``baselines`` and
``protocols``) loads no more metric code than it needs.

Imports: torch and numpy at module level; from vgan ``util`` and other ``vgan.metrics`` modules. No mlflow, no
stage code.
"""
