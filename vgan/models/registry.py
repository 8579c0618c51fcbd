"""Architectures by name: ``build_model(model_params) -> (G, {name: D})``."""

from __future__ import annotations

import importlib

from vgan.errors import ParamsError

# name -> module under vgan.models exposing build(params) -> (G, dict of Ds)
ARCHITECTURES = {
    "vgan": "vgan.models.vgan",
}


def build_model(model_params):
    """Build the generator and its discriminators for ``model_params.name``."""
    module_name = ARCHITECTURES.get(model_params.name)
    if module_name is None:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ParamsError(f"parameter model.name = {model_params.name!r}: unknown architecture; expected one of {known}")
    return importlib.import_module(module_name).build(model_params)
