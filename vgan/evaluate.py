"""The evaluator and evaluate stages: train the feature network, then score generated clips
against real val clips, next to baselines that give each number a scale."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vgan.errors import DataError, VganError

METRICS_FILE = Path("metrics/evaluate.json")
EVALUATOR_METRICS_FILE = Path("metrics/evaluator.json")
REPORT_FILE = Path("reports/evaluation.md")
TABLE_METRICS = ("fd_evaluator", "kvd_evaluator", "is_evaluator", "fd_motion", "label_consistency", "motion_energy")


def _manifest(params) -> dict:
    path = Path(params.shards.out_dir) / "manifest.json"
    if not path.exists():
        raise DataError(f"no {path}; run `vgan shards` first")
    return json.loads(path.read_text())


def _endless(make_iterable):
    while True:
        yielded = False
        for batch in make_iterable():
            yielded = True
            yield batch
        if not yielded:
            raise DataError("the train shards yield no batch: lower evaluate.evaluator_batch_size or add data")


def _real_clips(params, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    from vgan.data.loader import iterate_clips, shard_paths

    urls = shard_paths(params.shards.out_dir, split)
    videos, labels, count = [], [], 0
    for video, label in iterate_clips(urls, 64):
        videos.append(video)
        labels.append(label)
        count += len(label)
        if limit and count >= limit:
            break
    if not videos:
        raise DataError(f"no {split} clips in {params.shards.out_dir}; lower shards.val_fraction's rounding or add videos")
    return torch.cat(videos)[:limit], torch.cat(labels)[:limit]


def build_evaluator(params, progress: bool = True) -> dict:
    """Train the evaluator on real train clips; refuse (write nothing) below the accuracy floor."""
    from vgan.cli import write_json
    from vgan.data.loader import make_loader, shard_paths
    from vgan.metrics.evaluator import accuracy, save_evaluator, train_evaluator

    cfg = params.evaluate
    manifest = _manifest(params)
    urls = shard_paths(params.shards.out_dir, "train")
    batches = _endless(lambda: make_loader(urls, cfg.evaluator_batch_size, num_workers=params.train.num_workers,
                                           seed=cfg.seed, shuffle_buffer=params.train.shuffle_buffer))
    net = train_evaluator(batches, len(manifest["label_names"]), cfg.evaluator_steps, cfg.evaluator_lr,
                          cfg.evaluator_width, cfg.seed, progress)
    val_videos, val_labels = _real_clips(params, "val")
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


@torch.no_grad()
def _embed(net, videos: torch.Tensor, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    features, probs = [], []
    for chunk in videos.split(batch_size):
        feature = net.features(chunk.float())
        features.append(feature.double().numpy())
        probs.append(torch.softmax(net.classifier(feature), dim=1).double().numpy())
    return np.concatenate(features), np.concatenate(probs)


def score(net, real: torch.Tensor, candidate: torch.Tensor, batch_size: int, seed: int) -> dict:
    """Every always-available metric of ``candidate`` clips against ``real`` clips (both float, [-1, 1])."""
    from vgan.metrics import frechet_distance, inception_score, kernel_distance
    from vgan.metrics.temporal import frame_posteriors, label_consistency, motion_energy, motion_frechet_distance

    real_features, _ = _embed(net, real, batch_size)
    features, probs = _embed(net, candidate, batch_size)
    is_mean, is_std = inception_score(probs, num_splits=min(10, max(1, len(probs) // 16)))
    frame_probs = frame_posteriors(net, candidate, batch_size)
    return {
        "fd_evaluator": frechet_distance(real_features, features),
        "kvd_evaluator": kernel_distance(real_features, features, seed=seed),
        "is_evaluator": is_mean, "is_evaluator_std": is_std,
        "fd_motion": motion_frechet_distance(real, candidate),
        "label_consistency": label_consistency(frame_probs),
        "motion_energy": motion_energy(candidate),
    }


def evaluate(params, generator_path: str | Path = "models/generator.pt") -> dict:
    """Write metrics/evaluate.json and reports/evaluation.md; log both to MLflow."""
    from vgan import tracking
    from vgan.cli import write_json
    from vgan.metrics.baselines import baseline_clips, real_halves
    from vgan.metrics.evaluator import load_evaluator
    from vgan.sample import generate
    from vgan.train.checkpoint import load_generator

    cfg = params.evaluate
    net, info = load_evaluator(cfg.evaluator_path)
    generator, trained = load_generator(generator_path, use_ema=cfg.use_ema)
    if generator.context_frames:
        raise VganError("prediction models are scored with PSNR/SSIM on context clips (issue 6); not yet wired here")
    real, _ = _real_clips(params, "val", limit=cfg.num_samples)
    torch.manual_seed(cfg.seed)
    generated = generate(generator, cfg.num_samples, seed=cfg.seed + 1, batch_size=cfg.batch_size)
    metrics = {"evaluator_val_accuracy": info["val_accuracy"], **score(net, real, generated, cfg.batch_size, cfg.seed),
               "num_real_clips": len(real), "num_generated_clips": len(generated)}
    # Baselines at one common size: everything is compared with real half A, candidates have |B| clips.
    half_a, half_b = real_halves(len(real), seed=cfg.seed)
    reference, real_b = real[half_a], real[half_b]
    candidates = {"model": generated[: len(half_b)], "real_vs_real": real_b, **baseline_clips(real_b, seed=cfg.seed)}
    metrics["baselines"] = {name: score(net, reference, clips, cfg.batch_size, cfg.seed)
                            for name, clips in candidates.items()}
    metrics["baselines_num_clips"] = len(half_b)
    metrics = _rounded(metrics)
    write_json(METRICS_FILE, metrics)
    write_report(params, trained, generator.trained_steps, metrics)
    with tracking.stage_run(params, "evaluate") as logger:
        logger.log_metrics(metrics)
        logger.log_artifact(REPORT_FILE)
        logger.log_artifact(METRICS_FILE)
    return metrics


def _rounded(tree):
    if isinstance(tree, dict):
        return {key: _rounded(value) for key, value in tree.items()}
    if isinstance(tree, float):
        return float(f"{tree:.6g}")
    return tree


def write_report(params, trained, step: int, metrics: dict) -> None:
    """Markdown: the model's metrics, the baseline table, links to the sample images."""
    lines = [f"# Evaluation: {trained.model.name}, step {step}", "",
             f"Evaluator (self-trained 3D-conv classifier) accuracy on real val clips: "
             f"**{metrics['evaluator_val_accuracy']:.3f}**. Generated clips: {metrics['num_generated_clips']}, "
             f"real val clips: {metrics['num_real_clips']}.", "",
             "| metric | value |", "| --- | --- |"]
    lines += [f"| {key} | {metrics[key]:.4g} |" for key in TABLE_METRICS + ("is_evaluator_std",)]
    lines += ["", f"## Model vs baselines (each against the same real half; {metrics['baselines_num_clips']} clips each)",
              "", "| clips | " + " | ".join(TABLE_METRICS) + " |", "| --- |" + " --- |" * len(TABLE_METRICS)]
    for name, row in metrics["baselines"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[key]:.4g}" for key in TABLE_METRICS) + " |")
    lines += ["", "Lower is better for fd_* and kvd_*; higher for is_evaluator and label_consistency. "
              "fd_motion compares frame-difference statistics (temporal realism); label_consistency is the "
              "share of frames whose per-frame evaluator label agrees with the clip's majority label.", ""]
    samples_index = Path(params.sample.out_dir) / "index.json"
    if samples_index.exists():
        index = json.loads(samples_index.read_text())
        relative = Path("..") / params.sample.out_dir
        lines += ["## Samples", "", f"![contact sheet]({relative / index['contact_sheet']})", "",
                  f"![grid]({relative / index['grid']})", ""]
    REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp = REPORT_FILE.with_name(REPORT_FILE.name + ".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(REPORT_FILE)
