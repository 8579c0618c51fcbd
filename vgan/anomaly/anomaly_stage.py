"""`vgan anomaly`: score clips by how far the real future deviates from a predictor's prediction.

Input: a split of the shards (``anomaly.input=shards``) or every video file under a folder (``input=folder``,
decoded with ffmpeg at the generator's resolution, cut into non-overlapping clips of its length), read with the
generator's channels (a grey predictor scores the first channel, which is the clip for grey videos). With
``anomaly.inject`` a seeded share of the clips gets a synthetic anomaly (``vgan/data/anomalies.py``) and the
ROC AUC of each type against the normal clips is measured, for the predictor's score, for its discriminator's
score of the whole clip (from the training checkpoint) and for the frame-difference baseline (rules in
``vgan/metrics/anomaly.py``).

Writes ``<anomaly.out_dir>/clips.csv`` (one row per clip), ``<anomaly.out_dir>/frames.csv`` (one row per
frame), ``metrics/anomaly.json``, ``reports/anomaly.md`` and ``reports/anomaly.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from vgan.util.errors import DataError, VganError
from vgan.util.io import write_json, write_text

METRICS_FILE = Path("metrics/anomaly.json")
REPORT_FILE = Path("reports/anomaly.md")
PICTURE_FILE = Path("reports/anomaly.png")
SCORERS = ("model", "discriminator", "frame_difference")  # the predictor's error, its D, the baseline


def load_predictor(cfg, device):
    """The generator of ``anomaly.generator``; a one-line error unless it is a prediction model."""
    from vgan.train.generator_file import load_generator

    generator, trained = load_generator(cfg.generator, use_ema=cfg.use_ema, map_location=device)
    if not generator.context_frames:
        raise VganError(f"anomaly.generator {cfg.generator} is a {trained.model.name!r} generator, not a predictor: "
                        f"anomaly scores compare a predicted future with the real one; train one with "
                        f"`vgan train --set model.name=predictor` (see vgan/models/predictor.py)")
    return generator, trained


def load_discriminator(cfg, trained, checkpoint_dir: str, device):
    """The video discriminator trained with the generator (``anomaly.checkpoint``, else the newest checkpoint of
    the generator's training run); None, with the reason, when there is none."""
    from vgan.models.zoo import build_model
    from vgan.train import checkpoint as ckpt

    if cfg.checkpoint:
        state, where = ckpt.load_checkpoint(cfg.checkpoint), cfg.checkpoint
    else:
        found = ckpt.load_latest_checkpoint(Path(checkpoint_dir) / trained.run_identity())
        if found is None:
            return None, f"no training checkpoint under {checkpoint_dir}/{trained.run_identity()}"
        state, where = found
    if state["model_hash"] != trained.group_hash("model"):
        raise VganError(f"anomaly.checkpoint {where} was trained with other model params than {cfg.generator}")
    _, discriminators = build_model(trained.model, pretrained=False)
    discriminators = torch.nn.ModuleDict(discriminators)
    discriminators.load_state_dict(state["D"])
    return discriminators["video"].to(device).eval(), f"{where} (step {state['step']})"


def shard_clips(out_dir: str, split: str, size: int, limit: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(keys, uint8 (N, T, H, W, C) clips, (N,) labels) of one split of the shards, in shard order."""
    from vgan.data.loader import keyed_clips, shard_paths
    from vgan.util.io import read_manifest

    manifest = read_manifest(out_dir)
    frames, height, width, _ = manifest["clip_shape"]
    if (height, width) != (size, size):
        raise DataError(f"the shards in {out_dir} hold {height}x{width} frames but the predictor works on "
                        f"{size}x{size}; score shards made with shards.size={size}")
    keys, clips, labels = [], [], []
    for key, clip, label in keyed_clips(shard_paths(out_dir, split, manifest)):
        keys.append(key)
        clips.append(np.array(clip))
        labels.append(label)
        if limit and len(keys) >= limit:
            break
    if not keys:
        raise DataError(f"no {split} clips in {out_dir} (manifest counts: {manifest.get('counts')})")
    return keys, np.stack(clips), np.array(labels)


def folder_clips(cfg, frames: int, size: int, limit: int) -> tuple[list[str], np.ndarray, np.ndarray, list]:
    """Every video under ``anomaly.folder`` decoded at ``size`` and cut into non-overlapping clips of ``frames``:
    (keys ``<path>@<start frame>``, uint8 clips, labels from the first folder name, skipped [(path, reason)])."""
    from vgan.data.shards import clip_starts
    from vgan.data.sources import index_videos, is_candidate
    from vgan.data.video import VideoError, decode_video

    if not cfg.folder:
        raise DataError("anomaly.input is 'folder' but anomaly.folder is not set: --set anomaly.folder=/path/to/videos")
    folder = Path(cfg.folder)
    if not folder.is_dir():
        raise DataError(f"anomaly.folder {str(folder)!r} is not a directory")
    paths = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*"))
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
             and is_candidate(p)]
    if not paths:
        raise DataError(f"no video files found under {folder}")
    keys, clips, labels, skipped = [], [], [], []
    for entry in index_videos(paths, "folder")["videos"]:
        try:
            video, _ = decode_video(folder / entry["path"], size=size, resize_mode=cfg.resize_mode)
        except VideoError as err:
            skipped.append((entry["path"], str(err).replace(str(folder / entry["path"]), entry["path"])))
            continue
        starts = clip_starts(len(video), frames, 0)
        if not starts:
            skipped.append((entry["path"], f"too short: {len(video)} frames, a clip needs {frames}"))
        for start in starts:
            keys.append(f"{entry['path']}@{start}")
            clips.append(video[start:start + frames])
            labels.append(entry["label"])
        if limit and len(keys) >= limit:
            break
    if not keys:
        reasons = "; ".join(f"{path}: {reason}" for path, reason in skipped[:3])
        raise DataError(f"no clips of {frames} frames in the videos under {folder} ({reasons})")
    return keys[:limit or None], np.stack(clips[:limit or None]), np.array(labels[:limit or None]), skipped


def _finite(value: float) -> float | None:
    """None for NaN (no clips of a class to rank), so the JSON stays standard."""
    return None if np.isnan(value) else round(value, 4)


def onset_frames(anomalous: np.ndarray) -> np.ndarray:
    """Bool (N, T): the first anomalous frame of each clip (none for a normal clip)."""
    return anomalous & (np.cumsum(anomalous, axis=1) == 1)


def rank_by_type(kinds: np.ndarray, clip_scores: dict[str, np.ndarray], frame_scores: dict[str, np.ndarray],
                 anomalous: np.ndarray | None, types) -> dict:
    """Per type: clip-level ROC AUC (its clips vs the normal clips) and frame-level ROC AUC of the onset (the
    first anomalous frame of each of its clips vs every scored frame of the normal clips: a detector should fire
    where the anomaly starts; the frames after it need not look anomalous, a frozen digit stays frozen), for each
    scorer. ``anomalous`` None (labelled videos: no onsets known): no frame-level AUC."""
    from vgan.data.anomalies import NORMAL
    from vgan.metrics.anomaly import roc_auc

    normal = kinds == NORMAL
    onsets = None if anomalous is None else onset_frames(anomalous)
    table = {}
    for kind in types:
        member = kinds == kind
        row = {"clips": int(member.sum())}
        for name in SCORERS:
            keep = member | normal
            row[f"auc_{name}"] = _finite(roc_auc(clip_scores[name][keep], member[keep]))
            row[f"frame_auc_{name}"] = None
            if onsets is not None:
                frames = frame_scores[name]
                wanted = ((member[:, None] & onsets) | normal[:, None]) & ~np.isnan(frames)
                row[f"frame_auc_{name}"] = _finite(roc_auc(frames[wanted], (member[:, None] & onsets)[wanted]))
        table[kind] = row
    return table


def name_label(path: str) -> str:
    """A labelled video's anomaly kind: its first folder under anomaly.folder, else its file name up to the first
    '_' or '-' (``normal/a.mp4``, ``normal_03.mp4`` and ``normal-3.mp4`` are normal), lower case."""
    from pathlib import PurePosixPath

    parts = PurePosixPath(path).parts
    name = parts[0] if len(parts) > 1 else PurePosixPath(path).stem
    for separator in "_-":
        name = name.split(separator)[0]
    return name.lower()


def _csv(header: list[str], rows) -> str:
    def cell(value):
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.6g}"
        return str(value)

    return "\n".join([",".join(header), *(",".join(cell(value) for value in row) for row in rows)]) + "\n"


def _clips_with_truth(params, generator, trained) -> dict:
    """The clips to score (uint8, the predictor's channels) with their keys and labels, and the ground truth:
    each clip's anomaly kind and onset and each frame's flag (injected anomalies, or every clip normal)."""
    from vgan.data.anomalies import NORMAL, anomalous_frames, inject_set
    from vgan.data.loader import with_channels

    cfg = params.anomaly
    size, frames = trained.model.resolution, trained.model.frames
    skipped = []
    if cfg.input == "shards":
        keys, clips, labels = shard_clips(params.shards.out_dir, cfg.split, size, cfg.max_clips)
    else:
        keys, clips, labels, skipped = folder_clips(cfg, frames, size, cfg.max_clips)
    clips = np.ascontiguousarray(with_channels(clips, generator.channels))  # as the predictor was trained
    num_clips, num_frames = clips.shape[:2]
    if num_frames <= generator.context_frames:
        raise DataError(f"clips of {num_frames} frames leave nothing to predict after the predictor's "
                        f"{generator.context_frames} context frames")
    labelled = None
    if not cfg.inject and cfg.input == "folder":  # kinds from the videos' names where one of them is "normal"
        names = np.array([name_label(key.rsplit("@", 1)[0]) for key in keys], dtype=object)
        if (names == NORMAL).any() and (names != NORMAL).any():
            labelled = sorted(set(names) - {NORMAL})
    if labelled:
        kinds, onsets = names, np.full(num_clips, -1)
        # where in a labelled video the anomaly starts is not known: every frame of it is flagged (no frame AUC)
        anomalous = np.repeat((names != NORMAL)[:, None], num_frames, axis=1)
    elif cfg.inject:
        injected = inject_set(clips, labels, types=cfg.types, fraction=cfg.fraction, seed=cfg.seed,
                              first_onset=generator.context_frames, min_frames=cfg.min_frames,
                              noise_frames=cfg.noise_frames, noise_std=cfg.noise_std)
        clips, kinds, onsets, anomalous = (injected[k] for k in ("clips", "kinds", "onsets", "frames"))
    else:
        kinds, onsets = np.full(num_clips, NORMAL, dtype=object), np.full(num_clips, -1)
        anomalous = np.stack([anomalous_frames(NORMAL, 0, num_frames, 0)] * num_clips)
    return {"keys": keys, "clips": clips, "labels": labels, "skipped": skipped, "kinds": kinds, "onsets": onsets,
            "anomalous": anomalous, "labelled": labelled}


def _score(cfg, generator, trained, checkpoint_dir, clips: np.ndarray, labels: np.ndarray, device) -> dict:
    """Frame and clip scores of the predictor, the frame-difference baseline and the video discriminator."""
    from vgan.data.loader import to_model_range
    from vgan.metrics.anomaly import (
        clip_scores,
        discriminator_scores,
        frame_differences,
        prediction_errors,
        relative_errors,
    )

    started = time.perf_counter()
    videos = to_model_range(torch.from_numpy(clips))
    errors = prediction_errors(generator, videos, torch.from_numpy(labels), cfg.batch_size, device)
    differences = frame_differences(videos)
    frame_scores = {"model": relative_errors(errors, differences, generator.context_frames, cfg.motion_floor),
                    "frame_difference": differences}
    per_clip = {name: clip_scores(scores) for name, scores in frame_scores.items()}
    discriminator, source = load_discriminator(cfg, trained, checkpoint_dir, device)
    # the discriminator judges whole clips: a clip score (its "fake" logit), no frame scores
    frame_scores["discriminator"] = np.full(frame_scores["model"].shape, np.nan)
    per_clip["discriminator"] = (np.full(len(clips), np.nan) if discriminator is None else
                                 discriminator_scores(discriminator, videos, torch.from_numpy(labels)
                                                      if trained.model.num_classes else None, cfg.batch_size, device))
    return {"errors": errors, "differences": differences, "frames": frame_scores, "clips": per_clip,
            "discriminator_source": source, "seconds": time.perf_counter() - started}


def _write_tables(out_dir: Path, data: dict, scores: dict) -> None:
    """clips.csv (one row per clip) and frames.csv (one row per frame)."""
    per_clip, frame_scores, errors = scores["clips"], scores["frames"], scores["errors"]
    keys, labels, kinds, onsets, anomalous = (data[k] for k in ("keys", "labels", "kinds", "onsets", "anomalous"))
    num_clips, num_frames = data["clips"].shape[:2]
    write_text(out_dir / "clips.csv", _csv(
        ["clip", "key", "label", "anomaly", "onset", "score_model", "score_discriminator", "score_frame_difference"],
        ([i, keys[i], int(labels[i]), kinds[i], int(onsets[i]), float(per_clip["model"][i]),
          float(per_clip["discriminator"][i]), float(per_clip["frame_difference"][i])] for i in range(num_clips))))
    write_text(out_dir / "frames.csv", _csv(
        ["clip", "frame", "anomalous", "score_model", "error_model", "score_frame_difference"],
        ([i, t, int(anomalous[i, t]), float(frame_scores["model"][i, t]), float(errors[i, t]),
          float(frame_scores["frame_difference"][i, t])] for i in range(num_clips) for t in range(num_frames))))


def _scoring_rules(cfg, context_frames: int, discriminator_source: str) -> dict:
    c = context_frames
    return {"model": f"frame j >= {c}: mean |predicted - real| of frame j on [0, 1] pixels, predicted "
                     f"from real frames j-{c}..j-1 with z = 0, divided by (the mean frame difference of "
                     f"frames j-{c - 1}..j-1 + {cfg.motion_floor}); clip: max over frames",
            "discriminator": "clip: minus the video discriminator's logit of the whole clip (its 'fake' "
                             f"score), discriminator of {discriminator_source}",
            "frame_difference": "frame j >= 1: mean |frame j - frame j-1| on [0, 1] pixels; clip: max over frames"}


def detect(params) -> dict:
    """Score every clip of the input; write scores, metrics, report and picture; return the metrics."""
    from vgan.anomaly.anomaly_report import write_picture, write_report
    from vgan.data.anomalies import NORMAL
    from vgan.util.devices import select_device

    cfg = params.anomaly
    device = select_device(cfg.device, "anomaly.device")
    generator, trained = load_predictor(cfg, device)
    data = _clips_with_truth(params, generator, trained)
    kinds = data["kinds"]
    scores = _score(cfg, generator, trained, params.train.checkpoint_dir, data["clips"], data["labels"], device)
    out_dir = Path(cfg.out_dir)
    _write_tables(out_dir, data, scores)
    num_clips, num_frames = data["clips"].shape[:2]
    metrics = {
        "input": cfg.folder if cfg.input == "folder" else f"{params.shards.out_dir}:{cfg.split}",
        "generator": cfg.generator, "generator_steps": generator.trained_steps,
        "context_frames": generator.context_frames, "num_clips": num_clips, "clip_frames": num_frames,
        "num_normal": int((kinds == NORMAL).sum()), "skipped_videos": [list(item) for item in data["skipped"]],
        "score_seconds": round(scores["seconds"], 2),
        "rules": _scoring_rules(cfg, generator.context_frames, scores["discriminator_source"]),
    }
    # the frame difference of a frame is the error of predicting that nothing moves (a copy of the frame before):
    # a predictor that has learned the motion beats it on normal clips' frames
    errors = scores["errors"]
    scored = (kinds == NORMAL)[:, None] & ~np.isnan(errors)
    if scored.any():
        metrics["normal_frame_error"] = {"model": round(float(errors[scored].mean()), 5),
                                         "copy_last_frame": round(float(scores["differences"][scored].mean()), 5)}
    if data["labelled"]:
        metrics.update(labelled={"types": data["labelled"], "rule": "a video's first folder name, else its file "
                                 "name up to '_' or '-'; 'normal' ones are the negatives"},
                       types=rank_by_type(kinds, scores["clips"], scores["frames"], None, data["labelled"]))
    elif cfg.inject:
        metrics.update(injected={"types": list(cfg.types), "fraction": cfg.fraction, "seed": cfg.seed},
                       types=rank_by_type(kinds, scores["clips"], scores["frames"], data["anomalous"], cfg.types))
    write_json(METRICS_FILE, metrics)
    write_picture(PICTURE_FILE, data["clips"], data["keys"], kinds, scores["frames"]["model"], data["anomalous"],
                  cfg.report_clips)
    write_report(REPORT_FILE, metrics, data["keys"], kinds, scores["clips"], cfg.report_clips, PICTURE_FILE, out_dir)
    return metrics
