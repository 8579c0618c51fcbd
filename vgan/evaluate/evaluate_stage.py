"""The evaluate stage (`vgan evaluate`): score generated clips next to baselines that give each number a scale, in
the feature space of the evaluator network that ``vgan.evaluate.evaluator_stage`` trained.

The protocol: Fréchet and kernel distances are biased at small n, so every compared set has the same
n = min(evaluate.num_samples, val clips, train clips) and is compared with one reference, n real train
clips. The candidates are the model's n generated clips, n real val clips (real_vs_real, the floor) and
the static, shuffled and noise baselines made from those same val clips. The reference comes from the
train split so that it shares no clip with the baselines built from val clips (a static frame of a
reference clip would flatter the static baseline) and so that all val clips remain candidates; the
evaluator was trained on train clips, and the gap that may open is the same for every candidate.
fd_evaluator carries a bootstrap interval (vgan.metrics.bootstrap) for the model and every baseline.
Conditional models (prediction, super-resolution, interpolation) turn n real val clips into theirs and add
their task's metric group (vgan.metrics.tasks); super-resolution and interpolation baselines (bicubic,
nearest, linear blending, repetition) also join the evaluator-space table as candidates.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vgan.evaluate.evaluation_report import REPORT_FILE, write_report
from vgan.util.errors import DataError, VganError
from vgan.util.io import MANIFEST_FILE, read_manifest

METRICS_FILE = Path("metrics/evaluate.json")
BASELINES_FILE = Path("metrics/evaluate_baselines.json")
HEADLINE_METRICS = ("fd_evaluator", "fd_evaluator_ci_low", "fd_evaluator_ci_high", "kvd_evaluator", "is_evaluator",
                    "is_evaluator_std", "fd_motion", "label_consistency", "motion_energy")
HEADLINE_BASELINES = ("real_vs_real", "static", "shuffled")  # noise is in the table: it is never close
CI_METHOD = ("bootstrap over clips (reference and candidate resampled with replacement, paired across candidates) "
             "on the computed features; percentile spread around the resamples' median, centred on the estimate "
             "(resampling duplicates clips and biases every resampled distance upwards)")


def evaluation_size(params) -> int:
    """n, the size of every compared set: evaluate.num_samples, at most the real val and the real train clips."""
    counts = read_manifest(params.shards.out_dir)["counts"]
    val, train = counts.get("val", 0), counts.get("train", 0)
    size = min(params.evaluate.num_samples, val, train)
    if size < 2:
        raise DataError(f"evaluation compares sets of equal size n = min(evaluate.num_samples, val clips, train clips) "
                        f"= {size}; it needs n >= 2 (the shards have val={val}, train={train}): add videos or raise "
                        f"shards.val_fraction")
    return size


@torch.no_grad()
def _embed(net, videos: torch.Tensor, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    features, probs = [], []
    for chunk in videos.split(batch_size):
        feature = net.features(chunk.float())
        features.append(feature.double().numpy())
        probs.append(torch.softmax(net.classifier(feature), dim=1).double().numpy())
    return np.concatenate(features), np.concatenate(probs)


def score(net, reference: torch.Tensor, reference_features: np.ndarray, candidate: torch.Tensor, batch_size: int,
          seed: int) -> tuple[dict, np.ndarray]:
    """Every always-available metric of ``candidate`` clips against ``reference`` clips (both float, [-1, 1]),
    and the candidate's evaluator features (for the bootstrap)."""
    from vgan.metrics.frechet import frechet_distance
    from vgan.metrics.inception_score import inception_score
    from vgan.metrics.kernel import kernel_distance
    from vgan.metrics.temporal import (
        frame_posteriors,
        label_consistency,
        motion_energy,
        motion_frechet_distance,
    )

    features, probs = _embed(net, candidate, batch_size)
    is_mean, is_std = inception_score(probs, num_splits=min(10, max(1, len(probs) // 16)))
    frame_probs = frame_posteriors(net, candidate, batch_size)
    return {
        "fd_evaluator": frechet_distance(reference_features, features),
        "kvd_evaluator": kernel_distance(reference_features, features, seed=seed),
        "is_evaluator": is_mean, "is_evaluator_std": is_std,
        "fd_motion": motion_frechet_distance(reference, candidate),
        "label_consistency": label_consistency(frame_probs),
        "motion_energy": motion_energy(candidate),
    }, features


def compare_with_baselines(net, reference: torch.Tensor, val: torch.Tensor, generated: torch.Tensor, cfg,
                           task_baselines: dict | None = None) -> dict:
    """{name: scores} of the model and every baseline against one reference, fd_evaluator with a bootstrap CI.

    reference: n real train clips; val: n real val clips (the real-vs-real candidate, and what the static,
    shuffled and noise baselines are made of); generated: n generated clips; task_baselines: {name: n clips}
    of a conditional model's task (e.g. bicubic upscaling of the val clips' low-resolution versions).
    """
    from vgan.metrics.baselines import baseline_clips
    from vgan.metrics.bootstrap import frechet_bootstrap
    from vgan.util.media import rgb

    reference_features, _ = _embed(net, reference, cfg.batch_size)
    # the evaluator embeds grey clips widened (EvaluatorNet.features); the baselines are made from real clips
    # as stored, so the noise baseline is the same colour noise whatever channels the model paints
    val = rgb(val)
    candidates = {"model": generated, "real_vs_real": val, **baseline_clips(val, seed=cfg.seed),
                  **(task_baselines or {})}
    rows, features = {}, {}
    for name, clips in candidates.items():
        rows[name], features[name] = score(net, reference, reference_features, clips, cfg.batch_size, cfg.seed)
    intervals = frechet_bootstrap(reference_features, features, cfg.bootstrap_resamples, cfg.ci_level, cfg.seed)
    for name, interval in intervals.items():
        rows[name].update(fd_evaluator_ci_low=interval["ci_low"], fd_evaluator_ci_high=interval["ci_high"],
                          fd_evaluator_bootstrap_median=interval["bootstrap_median"])
    return rows


# -- external protocols (user-supplied weights) ----------------------------------------------------
def _protocol_network(name: str) -> str:
    from vgan.metrics.c3d import ISV_PROTOCOL
    from vgan.metrics.protocols import get_protocol

    return "c3d" if name == ISV_PROTOCOL else get_protocol(name).network


def _frames_needed(name: str) -> int:
    from vgan.metrics.c3d import C3D_FRAMES, ISV_PROTOCOL
    from vgan.metrics.protocols import get_protocol

    return C3D_FRAMES if name == ISV_PROTOCOL else get_protocol(name).frames_needed


def load_protocol_networks(cfg, device) -> dict:
    """The feature networks ``evaluate.protocols`` needs, by network name; refuses (one line) without weights."""
    from vgan.metrics.c3d import load_c3d
    from vgan.metrics.i3d import load_i3d
    from vgan.metrics.inception import load_inception

    loaders = {"i3d": lambda: load_i3d(cfg.i3d_weights, cfg.i3d_sha256, device),
               "inception": lambda: load_inception(cfg.inception_weights, cfg.inception_sha256, device),
               "c3d": lambda: load_c3d(cfg.c3d_weights, cfg.c3d_sha256, device)}
    networks = {}
    for name in cfg.protocols:
        network = _protocol_network(name)
        if network not in networks:
            networks[network] = loaders[network]()
    return networks


def _check_protocol_lengths(cfg, generator, manifest: dict) -> None:
    """Refuse before any work when the real or generated clips are too short for a protocol."""
    from vgan.metrics.c3d import ISV_PROTOCOL

    real_frames = manifest["clip_shape"][0]
    for name in cfg.protocols:
        needed = _frames_needed(name)
        if name != ISV_PROTOCOL and real_frames < needed:  # the video IS never looks at real clips
            raise VganError(f"evaluate.protocols: {name} needs real clips of at least {needed} frames; the shards "
                            f"have {real_frames}: set shards.clip_frames >= {needed}")
        if needed > generator.frames and not generator.variable_length:
            raise VganError(f"evaluate.protocols: {name} needs {needed}-frame clips; {type(generator).__name__} "
                            f"generates exactly {generator.frames}: choose another protocol or a model that rolls out")


def _generated_stream(generator, count: int, seed: int, batch_size: int, needed_frames: int, device,
                      context: torch.Tensor | None = None, context_labels: torch.Tensor | None = None):
    """Batches of ``count`` generated clips with at least ``needed_frames`` frames; prediction models
    continue the real context clips in turn."""
    from vgan.sample import render

    rng = torch.Generator().manual_seed(seed)
    length = needed_frames - generator.context_frames if needed_frames > generator.frames else None
    done = 0
    while done < count:
        size = min(batch_size, count - done)
        rows = torch.arange(done, done + size)
        z = generator.sample_z(size, generator=rng, num_frames=length)
        if context is not None:
            picks = rows % len(context)
            labels = context_labels[picks] if generator.num_classes else None
            yield render(generator, z, labels, context[picks], length, batch_size, device)
        else:
            labels = rows % generator.num_classes if generator.num_classes else None
            yield render(generator, z, labels, None, length, batch_size, device)
        done += size


def protocol_metrics(params, generator, networks: dict, device, context=None, context_labels=None) -> dict:
    """Every ``evaluate.protocols`` metric: {fvd2048_16f, kvd2048_16f, fid_frames2048, kid_frames2048,
    isv2048_ucf_*}."""
    import hashlib

    from vgan.data.loader import iterate_clips, shard_paths
    from vgan.metrics.c3d import ISV_CLIPS, ISV_PROTOCOL, video_inception_score
    from vgan.metrics.protocols import (
        get_protocol,
        protocol_distances,
        real_clip_indices,
        take_indices,
    )

    cfg, split = params.evaluate, params.evaluate.protocol_real_split
    manifest_text = (Path(params.shards.out_dir) / MANIFEST_FILE).read_text()
    available = json.loads(manifest_text)["counts"].get(split, 0)
    fingerprint = hashlib.sha256(f"{split}\n{manifest_text}".encode()).hexdigest()
    generator = generator.to(device)
    results = {}
    for name in cfg.protocols:
        stream = _generated_stream(generator, ISV_CLIPS if name == ISV_PROTOCOL else get_protocol(name).num_generated,
                                   cfg.seed + 1, cfg.batch_size, _frames_needed(name), device, context, context_labels)
        if name == ISV_PROTOCOL:
            c3d = networks["c3d"]
            results.update(video_inception_score(torch.cat([c3d(clips[:, :, :16]).cpu() for clips in stream])))
            continue
        protocol = get_protocol(name)

        def real_batches(protocol=protocol):
            indices = real_clip_indices(protocol, available, cfg.seed)
            videos = (video for video, _ in iterate_clips(shard_paths(params.shards.out_dir, split), 64))
            return take_indices(videos, indices)

        results.update(protocol_distances(name, real_batches, stream, networks[protocol.network], cfg.cache_dir,
                                          fingerprint, seed=cfg.seed))
    generator.to("cpu")
    return results


# -- the stage -------------------------------------------------------------------------------------
def _clip_sets(params, generator, num_clips: int) -> tuple:
    """(real val clips, generated clips, their conditions, labels, the task's baselines): conditional models are
    conditioned on the val clips, and their baselines made from the same conditions."""
    from vgan.data.loader import real_clips
    from vgan.sample import generate, real_context_clips

    cfg = params.evaluate
    torch.manual_seed(cfg.seed)
    if not generator.conditional:
        val, _ = real_clips(params.shards.out_dir, "val", limit=num_clips, seed=cfg.seed)
        return val, generate(generator, num_clips, seed=cfg.seed + 1, batch_size=cfg.batch_size), None, None, {}
    val, labels = real_context_clips(params, generator, num_clips, splits=("val",), seed=cfg.seed)
    context = generator.condition(val)
    generated = generate(generator, num_clips, seed=cfg.seed + 1, batch_size=cfg.batch_size,
                         labels=labels if generator.num_classes else None, context=context)
    return val, generated, context, labels, generator.baselines(context)


def _log_evaluation(params, metrics: dict, table: dict) -> None:
    """The evaluate stage's MLflow run: params, metrics (PSNR/SSIM per predicted step as a series), files."""
    from vgan.tracking import runs

    with runs.stage_run(params, "evaluate") as logger:
        logger.log_params({"evaluate": params.evaluate.model_dump(mode="json"),
                           "model": params.model.model_dump(mode="json")})
        logger.log_metrics({**metrics, "baselines": table["scores"]})
        for step, values in enumerate(zip(metrics.get("psnr_per_step") or [], metrics.get("ssim_per_step") or []), 1):
            logger.log_metrics({"psnr_step": values[0], "ssim_step": values[1]}, step=step)
        for path in (REPORT_FILE, METRICS_FILE, BASELINES_FILE):
            logger.log_artifact(path)


def evaluate(params, generator_path: str | Path = "models/generator.pt") -> dict:
    """Write metrics/evaluate.json (headline), metrics/evaluate_baselines.json (the table) and
    reports/evaluation.md; log them to MLflow. Returns the headline metrics."""
    from vgan.data.loader import real_clips
    from vgan.metrics.baselines import standing_sentence
    from vgan.metrics.catalog import baseline_key
    from vgan.metrics.evaluator import load_evaluator
    from vgan.metrics.tasks import FRECHET_TABLE_TASKS, TaskInputs, task_metrics
    from vgan.train.generator_file import load_generator
    from vgan.util.io import write_json

    cfg = params.evaluate
    device = "cuda" if torch.cuda.is_available() else "cpu"
    networks = load_protocol_networks(cfg, device)  # refuse before any work when a weights file is missing
    net, info = load_evaluator(cfg.evaluator_path)
    generator, trained = load_generator(generator_path, use_ema=cfg.use_ema)
    if cfg.protocols:
        _check_protocol_lengths(cfg, generator, read_manifest(params.shards.out_dir))
    num_clips = evaluation_size(params)
    val, generated, context, labels, baselines = _clip_sets(params, generator, num_clips)
    reference, _ = real_clips(params.shards.out_dir, "train", limit=num_clips, seed=cfg.seed)
    frames = min(reference.shape[2], val.shape[2], generated.shape[2])  # every set compared at one length
    reference, val_cut, generated_cut = reference[:, :, :frames], val[:, :, :frames], generated[:, :, :frames]
    in_table = {name: clips[:, :, :frames] for name, clips in baselines.items()
                if generator.task in FRECHET_TABLE_TASKS}
    rows = compare_with_baselines(net, reference, val_cut, generated_cut, cfg, in_table)
    metrics = {"evaluator_val_accuracy": info["val_accuracy"], "num_clips": num_clips,
               **{key: rows["model"][key] for key in HEADLINE_METRICS},
               **{baseline_key(name, "fd_evaluator"): rows[name]["fd_evaluator"] for name in HEADLINE_BASELINES}}
    metrics.update(task_metrics(TaskInputs(generator, val, generated, baselines, rows, cfg.psnr_cap_db)))
    protocol_keys = ()
    if cfg.protocols:
        external = protocol_metrics(params, generator, networks, device, context, labels)
        metrics.update(external)
        protocol_keys = tuple(external)
    metrics = json_safe(_rounded(metrics))
    table = json_safe(_rounded({
        "num_clips": num_clips, "clip_frames": frames,
        "reference": f"{num_clips} real train clips (seeded random subset)",
        "candidates": f"model: {num_clips} generated clips; real_vs_real: {num_clips} real val clips; static, "
                      "shuffled and noise: made from those val clips" + "".join(
                          f"; {name}: the {generator.task} baseline made from those val clips" for name in in_table),
        "ci": {"metric": "fd_evaluator", "level": cfg.ci_level, "resamples": cfg.bootstrap_resamples,
               "method": CI_METHOD},
        "standing": standing_sentence(rows, num_clips, cfg.ci_level), "scores": rows}))
    write_json(METRICS_FILE, metrics)
    write_json(BASELINES_FILE, table)
    write_report(params, trained, generator.trained_steps, metrics, table, protocol_keys)
    _log_evaluation(params, metrics, table)
    return metrics


def _rounded(tree):
    if isinstance(tree, dict):
        return {key: _rounded(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_rounded(value) for value in tree]
    if isinstance(tree, (float, np.floating)):
        return float(f"{float(tree):.6g}")
    return tree


def json_safe(tree):
    """Plain JSON values: numpy scalars as Python numbers, NaN and ±inf as null (JSON has neither)."""
    if isinstance(tree, dict):
        return {str(key): json_safe(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [json_safe(value) for value in tree]
    if isinstance(tree, (np.integer, np.bool_)):
        return tree.item()
    if isinstance(tree, (float, np.floating)):
        return float(tree) if np.isfinite(tree) else None
    return tree
