"""The model zoo: one module per architecture, built by name."""

from vgan.models.registry import ARCHITECTURES, build_model

__all__ = ["ARCHITECTURES", "build_model"]
