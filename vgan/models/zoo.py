"""Architectures by name: ``build_model(model_params) -> (G, {name: D})``.

Each name in ``ARCHITECTURES`` is a module ``vgan.models.<name>`` exposing ``build(params) -> (G, dict of Ds)``,
``RECOMMENDED_OVERRIDES`` and optionally ``load_pretrained(G, params)``; it is imported when first used.
"""

from __future__ import annotations

import importlib

from vgan.models.options import ARCHITECTURES
from vgan.util.errors import ParamsError


def architecture_module(name: str):
    if name not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ParamsError(f"parameter model.name = {name!r}: unknown architecture; expected one of {known}")
    return importlib.import_module(f"vgan.models.{name}")


def build_model(model_params, pretrained: bool = True):
    """Build the generator and its discriminators for ``model_params.name``.

    ``pretrained``: load weights the params point at (e.g. a progressive refiner's frozen base); pass
    False when a saved state dict will overwrite every weight anyway, so the file need not exist.
    """
    if model_params.channels == "auto":
        raise ParamsError("parameter model.channels = 'auto' is not resolved yet: the train stage reads it from the "
                          "shards' manifest (vgan.train.run.resolve_channels); building a model without shards "
                          "needs 1 (grey) or 3 (colour)")
    # torch: not when only the names are wanted
    from vgan.models.nets import EmbeddedPairDiscriminator, ImageDiscriminator, PairDiscriminator

    module = architecture_module(model_params.name)
    G, discriminators = module.build(model_params)

    def added(frame_discriminator, frames_per_clip, **options):  # spectral norm, the model's size and input gain
        return frame_discriminator(model_params.num_classes, model_params.channels, model_params.resolution,
                                   model_params.width, True, frames_per_clip, input_gain=model_params.d_input_gain,
                                   **options)

    if model_params.image_discriminator and G.task == "generation" and not any(
            isinstance(D, ImageDiscriminator) for D in discriminators.values()):
        discriminators["image"] = added(ImageDiscriminator, model_params.image_discriminator,
                                        downsample=model_params.image_downsample)
    if model_params.pair_discriminator and G.task == "generation":
        if model_params.pair_compare == "embedded":
            discriminators["pair"] = added(EmbeddedPairDiscriminator, model_params.pair_discriminator)
        else:
            discriminators["pair"] = added(PairDiscriminator, model_params.pair_discriminator,
                                           centred=model_params.pair_compare == "centred")
    discriminators = chosen_discriminators(model_params, discriminators, ImageDiscriminator)
    whole_clips = [name for name, D in discriminators.items() if D.view == "video"]
    if getattr(G, "sparse_frames", 0) and whole_clips:
        raise ParamsError(f"parameter model.stylegan_v.sparse_training = true: the generator renders only the frames "
                          f"its time-gap discriminator judges, but the {' and '.join(whole_clips)} discriminator "
                          f"judges whole clips: set model.image_discriminator=0 and model.pair_discriminator=0, or "
                          f"sparse_training=false")
    if pretrained and hasattr(module, "load_pretrained"):
        module.load_pretrained(G, model_params)
    return G, discriminators


def chosen_discriminators(model_params, discriminators: dict, image_class) -> dict:
    """``model.discriminators``: all of them, or only the image (or only the other, video) discriminators."""
    if model_params.discriminators == "all":
        return discriminators
    want_image = model_params.discriminators == "image"
    chosen = {name: D for name, D in discriminators.items() if isinstance(D, image_class) == want_image}
    if not chosen:
        hint = " (set model.image_discriminator > 0 to add one)" if want_image else ""
        raise ParamsError(f"parameter model.discriminators = {model_params.discriminators!r}: {model_params.name} "
                          f"has no such discriminator; it has {', '.join(discriminators)}{hint}")
    return chosen


def recommended_overrides(name: str) -> tuple[str, ...]:
    """The ``--set`` overrides that give an architecture the objective of its paper."""
    return tuple(architecture_module(name).RECOMMENDED_OVERRIDES)


def summary_line(name: str) -> str:
    """First line of an architecture module's docstring."""
    return (architecture_module(name).__doc__ or name).strip().splitlines()[0]
