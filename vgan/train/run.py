"""The train stage: shards -> Trainer, with MLflow logging on rank 0."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from vgan.util.errors import DataError, ParamsError
from vgan.util.io import manifest_channels, read_manifest


def train_shards_location(params) -> str:
    """Where training reads its shards: ``train.shards_url`` (e.g. s3://bucket/shards) or the local folder."""
    return params.train.shards_url or params.shards.out_dir


def check_clip_shape(params) -> dict:
    """The shards' clip shape must be what the model generates."""
    manifest = read_manifest(train_shards_location(params))
    frames, height, width, _ = manifest["clip_shape"]
    model = params.model
    if (frames, height, width) != (model.frames, model.resolution, model.resolution):
        raise DataError(
            f"shards hold clips of {frames}x{height}x{width} (frames x H x W) but the model makes "
            f"{model.frames}x{model.resolution}x{model.resolution}; set model.frames/model.resolution "
            f"or shards.clip_frames/shards.size to agree")
    if model.num_classes and model.num_classes < len(manifest["label_names"]):
        raise DataError(f"model.num_classes = {model.num_classes} but the data has "
                        f"{len(manifest['label_names'])} labels")
    return manifest


def resolve_channels(params, manifest: dict):
    """``params`` with ``model.channels`` a number: ``auto`` becomes the shards' (1 when the manifest says every
    clip is grey, else its clips' channels); 1 on colour shards is refused (a grey model of colour data would
    see one colour channel as grey)."""
    data_channels = manifest_channels(manifest)
    channels = params.model.channels
    if channels == "auto":
        channels = data_channels
    elif channels == 1 and data_channels != 1:
        raise DataError(f"model.channels = 1 (grey) but the shards in {train_shards_location(params)} hold colour "
                        f"clips (their manifest has no \"grey\": true; one written before vgan recorded it counts as "
                        f"colour: rerun `vgan shards`); use model.channels=auto or 3")
    return params.model_copy(update={"model": params.model.model_copy(update={"channels": channels})})


def shard_batches(params, rank: int = 0, world_size: int = 1, manifest: dict | None = None):
    """``batches(epoch, seed)`` for the Trainer: a deterministic loader over this rank's train shards, clips with
    the model's channels (``model.channels: auto`` resolved from the shards' manifest)."""
    from vgan.data.loader import make_loader, shard_paths

    location = train_shards_location(params)
    manifest = manifest or read_manifest(location)
    urls = shard_paths(location, "train", manifest)
    channels = resolve_channels(params, manifest).model.channels
    if not urls:
        raise DataError(f"no train shards in {location}; run `vgan shards` first")
    cfg = params.train
    if cfg.batch_size % world_size:
        raise ParamsError(f"parameter train.batch_size = {cfg.batch_size}: the global batch must split evenly over "
                          f"{world_size} ranks; use a multiple of {world_size}")
    per_rank_batch = cfg.batch_size // world_size
    cache: dict = {}

    def batches(epoch: int, seed: int):
        # One loader for the whole run: its persistent workers start once, not every epoch, and each pass
        # over it is the next seeded epoch. A resumed run (or a jump) starts a fresh one at ``epoch``, which
        # reads what the long-lived one would have. Every rank passes the same urls and seed: the loader
        # splits the shards over (rank, worker) slots and shuffles the shard order alike on every rank.
        if cache.get("next_epoch") != epoch:
            loader = make_loader(urls, per_rank_batch, shuffle_buffer=cfg.shuffle_buffer,
                                 num_workers=cfg.num_workers, seed=cfg.seed, uint8=True, start_epoch=epoch,
                                 channels=channels,
                                 pin_memory=torch.cuda.is_available() and cfg.device != "cpu")
            cache["loader"] = loader
        cache["next_epoch"] = epoch + 1
        return cache["loader"]

    return batches


def train(params, progress: bool = True, logger=None) -> dict:
    from vgan.train import distributed
    from vgan.train.loop import Trainer
    from vgan.util.devices import select_device

    manifest = check_clip_shape(params)
    # the model and everything it writes (checkpoints, generator file, logged params) get the resolved number;
    # the stage's MLflow run keeps params.yaml's values, which its pipeline id hashes
    resolved = resolve_channels(params, manifest)
    rank, world_size = distributed.setup(select_device(params.train.device).type)
    try:
        batches = shard_batches(resolved, rank, world_size, manifest)  # bad input fails before a tracking run opens
        with contextlib.ExitStack() as stack:
            if logger is None and rank == 0:
                from vgan.tracking import runs

                logger = stack.enter_context(runs.stage_run(params, "train"))
                logger.log_params(_flat_params(resolved))
                location = params.train.shards_url or str(Path(params.shards.out_dir).resolve())
                logger.log_dataset(f"{manifest.get('source', 'shards')}-shards", manifest, location)
                stack.enter_context(runs.system_metrics(logger))
            trainer = Trainer(resolved, batches, logger=logger, rank=rank, world_size=world_size)
            if rank == 0:  # what train.precision=auto chose on this machine (bits differ between the two)
                logger.log_params({"train.compute_dtype": "bfloat16" if trainer.use_bf16 else "float32"})
            summary = trainer.run(progress=progress and rank == 0)
            if rank == 0:
                logger.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
                for path in ("plots/train_losses.csv", "metrics/train.json"):
                    logger.log_artifact(path)
            return summary
    finally:
        distributed.teardown(world_size)


def _flat_params(params) -> dict:
    flat = {}
    for group in ("data", "shards", "model", "train"):
        for key, value in getattr(params, group).model_dump(mode="json").items():
            flat[f"{group}.{key}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return flat
