"""The generator file, ``models/generator.pt``: what `vgan train` writes and `sample`, `evaluate` and `register`
load. It holds the params the generator was trained with, its step, and its raw and EMA weights; a training
checkpoint (``vgan.train.checkpoint``) loads the same way, so any checkpoint can be sampled or evaluated.

The file is bit-reproducible: the same weights, params and step give the same bytes whatever the file's name or
folder (``atomic_save``), so a content hash (dvc.lock, `make check-reference`) says whether two runs trained the same
generator. Nothing about the run's time or machine goes in (its params are params.yaml's values, relative
locations unless a user sets absolute ones); that provenance is MLflow's."""

from __future__ import annotations

from pathlib import Path

GENERATOR_FORMAT = "vgan-generator-1"


def save_generator(path: str | Path, params, model_hash: str, step: int, G, G_ema) -> Path:
    """Write the generator file atomically (a temp name, then a rename)."""
    from vgan.util.torch_files import atomic_save

    atomic_save({"format": GENERATOR_FORMAT, "params": params.model_dump(mode="json"), "model_hash": model_hash,
                 "step": step, "G": G.state_dict(), "G_ema": G_ema.state_dict()}, path)
    return Path(path)


def load_generator(path: str | Path, use_ema: bool = True, map_location="cpu"):
    """Rebuild the generator saved in ``path`` (a generator file or a training checkpoint).

    Returns ``(G, params)`` with G in eval mode and ``G.trained_steps`` set.
    """
    from vgan.models.zoo import build_model
    from vgan.params import params_from
    from vgan.train.checkpoint import CHECKPOINT_FORMAT
    from vgan.util.errors import TrainingError
    from vgan.util.torch_files import load_torch_file

    path = Path(path)
    state = load_torch_file(path, "generator file", "run `vgan train` to write it", TrainingError, map_location)
    if not isinstance(state, dict) or state.get("format") not in (CHECKPOINT_FORMAT, GENERATOR_FORMAT):
        raise TrainingError(f"{path} is not a vgan generator or checkpoint (format {state.get('format')!r})")
    params = params_from(state["params"])  # a key added since the file was written: params.yaml's value
    generator, _ = build_model(params.model, pretrained=False)
    generator.load_state_dict(state["G_ema" if use_ema else "G"])
    generator.eval()
    generator.trained_steps = int(state["step"])
    return generator.to(map_location), params
