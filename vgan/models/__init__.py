"""The model zoo: layers, one module per architecture, built by name (``vgan.models.zoo.build_model``), the
architectures' param schema (``options``) and what `vgan models` prints (``overview``).

Nothing is imported here, so that reading the `model` params (``vgan.models.options``) loads no network code.
Imports: torch and numpy at module level (pydantic in ``options``); from vgan only ``util`` and other
``vgan.models`` modules, but for ``overview``'s health check, which takes a training step with
``vgan.train.losses`` inside a function.
"""
