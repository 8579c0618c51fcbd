"""`vgan anomaly`'s report: reports/anomaly.md (AUC table, most anomalous clips) and a picture.

The picture has one row per clip: its frames, and under each frame a bar as high as the predictor's score
for that frame (one scale for the whole picture), red where the frame is truly anomalous (injected), grey
where it is not; frames the predictor cannot score (its context) have no bar. Rows (``picture_rows``): with
injected anomalies, the highest-scoring clip of each type and then of the normal clips (the worst false
alarm); without, the most anomalous clips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vgan.util.io import write_text

BAR_HEIGHT = 24
ANOMALOUS_BAR, NORMAL_BAR = (215, 50, 40), (150, 150, 150)
CAPTION_HEIGHT = 12


def _scale(side: int) -> int:
    return max(1, 64 // side)


def picture_rows(kinds: np.ndarray, clip_scores: np.ndarray, count: int) -> list[int]:
    """Clip indices to draw: the top clip of each kind present (anomaly types first, normal last), or the
    ``count`` top clips when every clip is normal."""
    order = [int(i) for i in np.argsort(-np.nan_to_num(clip_scores, nan=-1.0), kind="stable")]
    present = list(dict.fromkeys(kinds[i] for i in order))
    if present == ["normal"]:
        return order[:count]
    present = [kind for kind in present if kind != "normal"] + (["normal"] if "normal" in present else [])
    return [next(i for i in order if kinds[i] == kind) for kind in present]


def write_picture(path: Path, clips: np.ndarray, keys: list[str], kinds: np.ndarray, frame_scores: np.ndarray,
                  anomalous: np.ndarray, count: int) -> list[int]:
    """PNG of the clips ``picture_rows`` chooses, captioned with key, kind, score and rank; returns them."""
    from PIL import Image, ImageDraw

    from vgan.util.media import upscale, write_png

    scores = np.nanmax(frame_scores, axis=1)
    rank = np.empty(len(scores), int)
    rank[np.argsort(-np.nan_to_num(scores, nan=-1.0), kind="stable")] = np.arange(1, len(scores) + 1)
    top = picture_rows(kinds, scores, count)
    factor = _scale(clips.shape[2])
    frames, side, pad = clips.shape[1], clips.shape[2] * factor, 2
    peak = max(float(np.nanmax(frame_scores[top])), 1e-12) if top else 1.0
    row_height = CAPTION_HEIGHT + side + BAR_HEIGHT + pad
    sheet = np.full((len(top) * row_height + pad, frames * (side + pad) + pad, 3), 255, np.uint8)
    for row, index in enumerate(top):
        y = row * row_height + CAPTION_HEIGHT
        video = upscale(clips[index], factor)
        for t in range(frames):
            x = pad + t * (side + pad)
            sheet[y:y + side, x:x + side] = video[t]
            score = frame_scores[index, t]
            if not np.isnan(score):
                height = max(1, int(round(BAR_HEIGHT * score / peak)))
                sheet[y + side + BAR_HEIGHT - height:y + side + BAR_HEIGHT, x + 2:x + side - 2] = \
                    ANOMALOUS_BAR if anomalous[index, t] else NORMAL_BAR
    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    for row, index in enumerate(top):
        draw.text((pad, row * row_height), f"{kinds[index]}: {keys[index]}, score {scores[index]:.4f}, "
                  f"rank {rank[index]} of {len(scores)}", fill=(0, 0, 0))
    write_png(np.asarray(image), path)
    return top


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_report(path: Path, metrics: dict, keys: list[str], kinds: np.ndarray, clip_scores: dict,
                 count: int, picture: Path, out_dir: Path) -> None:
    lines = ["# Anomaly detection", "",
             f"Generator `{metrics['generator']}` ({metrics['generator_steps']} steps, "
             f"{metrics['context_frames']} context frames); {metrics['num_clips']} clips of "
             f"{metrics['clip_frames']} frames from `{metrics['input']}`.", "",
             "Scores (higher = more anomalous):", "",
             f"- predictor: {metrics['rules']['model']}",
             f"- discriminator: {metrics['rules']['discriminator']}",
             f"- frame-difference baseline: {metrics['rules']['frame_difference']}", ""]
    if "normal_frame_error" in metrics:
        error = metrics["normal_frame_error"]
        verdict = "beats" if error["model"] < error["copy_last_frame"] else "does not beat"
        lines += [f"On the normal clips' frames the predictor's mean error is {error['model']:.4f}; copying the frame "
                  f"before (its frame difference) gives {error['copy_last_frame']:.4f}: the predictor {verdict} "
                  "the guess that nothing moves.", ""]
    if metrics.get("types"):
        if "injected" in metrics:
            injected = metrics["injected"]
            where = (f"{metrics['num_clips'] - metrics['num_normal']} clips got an injected anomaly (fraction "
                     f"{injected['fraction']}, seed {injected['seed']})")
        else:
            where = (f"{metrics['num_clips'] - metrics['num_normal']} clips come from videos labelled anomalous by "
                     f"name ({metrics['labelled']['rule']}; no onsets known, so no frame AUC)")
        lines += [f"{where}; each type's ROC AUC ranks its clips against the {metrics['num_normal']} normal ones "
                  "(frame AUC: the first anomalous frame of each of its clips against the normal clips' frames).", "",
                  "| anomaly | clips | AUC predictor | AUC discriminator | AUC frame difference | frame AUC predictor | "
                  "frame AUC frame difference |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for kind, row in metrics["types"].items():
            lines.append(f"| {kind} | {row['clips']} | {_fmt(row['auc_model'])} | {_fmt(row['auc_discriminator'])} "
                         f"| {_fmt(row['auc_frame_difference'])} "
                         f"| {_fmt(row['frame_auc_model'])} | {_fmt(row['frame_auc_frame_difference'])} |")
        lines.append("")
    order = np.argsort(-np.nan_to_num(clip_scores["model"], nan=-1.0), kind="stable")[:count]
    lines += [f"Most anomalous clips by the predictor (picture: `{picture}`; every clip in `{out_dir}/clips.csv`, "
              f"every frame in `{out_dir}/frames.csv`):", "",
              "| clip | injected | predictor score | frame-difference score |", "| --- | --- | --- | --- |"]
    lines += [f"| {keys[i]} | {kinds[i]} | {clip_scores['model'][i]:.4f} | {clip_scores['frame_difference'][i]:.4f} |"
              for i in order]
    if metrics["skipped_videos"]:
        lines += ["", "Skipped videos:", ""] + [f"- {path}: {reason}" for path, reason in metrics["skipped_videos"]]
    lines += ["", f"![the top clip of each kind, per-frame predictor scores below each frame]({picture.name})", ""]
    write_text(path, "\n".join(lines))
