"""The model zoo: one module per architecture, built by name (``vgan.models.registry.build_model``).

Nothing is imported here, so that reading the `model` params (``vgan.models.options``) loads no network code.
"""
