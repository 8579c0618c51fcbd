"""The evaluator stage (`vgan evaluator`): train the feature network that `vgan evaluate` measures in, on real
train clips, and refuse (write nothing) when it classifies the real val clips too poorly for its features to mean
much. The network itself (architecture, training loop, file) is ``vgan.metrics.evaluator``."""

from __future__ import annotations

from pathlib import Path

from vgan.util.errors import DataError, VganError
from vgan.util.io import read_manifest

EVALUATOR_METRICS_FILE = Path("metrics/evaluator.json")


def _endless(make_iterable):
    while True:
        yielded = False
        for batch in make_iterable():
            yielded = True
            yield batch
        if not yielded:
            raise DataError("the train shards yield no batch: lower evaluate.evaluator_batch_size or add data")


def build_evaluator(params, progress: bool = True) -> dict:
    """Train the evaluator on real train clips; refuse (write nothing) below the accuracy floor."""
    from vgan.data.loader import make_loader, real_clips, shard_paths
    from vgan.metrics.evaluator import accuracy, save_evaluator, train_evaluator
    from vgan.util.io import write_json

    cfg = params.evaluate
    manifest = read_manifest(params.shards.out_dir)
    urls = shard_paths(params.shards.out_dir, "train")
    batches = _endless(lambda: make_loader(urls, cfg.evaluator_batch_size, num_workers=cfg.evaluator_num_workers,
                                           seed=cfg.seed, shuffle_buffer=cfg.evaluator_shuffle_buffer))
    net = train_evaluator(batches, len(manifest["label_names"]), cfg.evaluator_steps, cfg.evaluator_lr,
                          cfg.evaluator_width, cfg.seed, progress)
    val_videos, val_labels = real_clips(params.shards.out_dir, "val")
    val_accuracy = accuracy(net, zip(val_videos.split(64), val_labels.split(64)))
    metrics = {"val_accuracy": round(val_accuracy, 4), "num_val_clips": len(val_labels),
               "num_classes": len(manifest["label_names"]), "steps": cfg.evaluator_steps}
    if val_accuracy < cfg.min_evaluator_accuracy:
        raise VganError(f"evaluator accuracy on real val clips {val_accuracy:.3f} is below "
                        f"evaluate.min_evaluator_accuracy = {cfg.min_evaluator_accuracy}: its features would not "
                        f"mean much; raise evaluate.evaluator_steps or add data")
    save_evaluator(net, cfg.evaluator_path, {**metrics, "label_names": manifest["label_names"]})
    write_json(EVALUATOR_METRICS_FILE, metrics)
    return metrics
