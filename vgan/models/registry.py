"""Architectures by name: ``build_model(model_params) -> (G, {name: D})``."""

from __future__ import annotations

import importlib

from vgan.errors import ParamsError

# name -> module under vgan.models exposing build(params) -> (G, dict of Ds), RECOMMENDED_OVERRIDES
# and optionally load_pretrained(G, params)
ARCHITECTURES = {
    "vgan": "vgan.models.vgan",
    "tgan": "vgan.models.tgan",
    "mocogan": "vgan.models.mocogan",
    "dvdgan": "vgan.models.dvdgan",
    "hrvgan": "vgan.models.hrvgan",
    "motionshape": "vgan.models.motionshape",
    "progressive": "vgan.models.progressive",
    "predictor": "vgan.models.predictor",
}


def architecture_module(name: str):
    module_name = ARCHITECTURES.get(name)
    if module_name is None:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ParamsError(f"parameter model.name = {name!r}: unknown architecture; expected one of {known}")
    return importlib.import_module(module_name)


def build_model(model_params, pretrained: bool = True):
    """Build the generator and its discriminators for ``model_params.name``.

    ``pretrained``: load weights the params point at (e.g. a progressive refiner's frozen base); pass
    False when a saved state dict will overwrite every weight anyway, so the file need not exist.
    """
    module = architecture_module(model_params.name)
    G, discriminators = module.build(model_params)
    if pretrained and hasattr(module, "load_pretrained"):
        module.load_pretrained(G, model_params)
    return G, discriminators


def recommended_overrides(name: str) -> tuple[str, ...]:
    """The ``--set`` overrides that give an architecture the objective of its paper."""
    return tuple(architecture_module(name).RECOMMENDED_OVERRIDES)


def summary_line(name: str) -> str:
    """First line of an architecture module's docstring."""
    return (architecture_module(name).__doc__ or name).strip().splitlines()[0]
