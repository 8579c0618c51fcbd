"""Task metrics of conditional generators: a registry of metric groups, chosen by ``G.task``.

Each group maps what one evaluation has at hand (``TaskInputs``: the generator, n real val clips, the model's
whole clips made from their conditions, the task baselines' whole clips, the evaluator-space table) to a dict of
metrics for ``metrics/evaluate.json``. Every group scores the frames ``G.reconstruction`` pairs (prediction: the
future; interpolation: the in-between frames; super-resolution: every frame) with PSNR and SSIM, for the model
and each baseline (``G.baselines``). Unconditional models ("generation") have no group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vgan.util.errors import VganError


@dataclass
class TaskInputs:
    generator: object
    real: torch.Tensor  # (n, C, T, H, W) real val clips
    generated: torch.Tensor  # the model's whole clips made from ``generator.condition(real)``
    baselines: dict  # {name: whole clips} from ``generator.baselines(generator.condition(real))``
    rows: dict  # the evaluator-space table: {candidate: {fd_evaluator, fd_motion, ...}}
    psnr_cap_db: float


def prediction_scores(predicted_future, true_future, psnr_cap_db: float) -> dict:
    """PSNR (capped at ``psnr_cap_db``: identical frames have infinite PSNR) and SSIM of future frames,
    averaged over clips and frames, and per future step (index 0 = the first predicted frame)."""
    from vgan.metrics.prediction import psnr_per_frame, ssim_per_frame

    psnr = np.minimum(psnr_per_frame(predicted_future, true_future), psnr_cap_db)
    scores = {"psnr": float(psnr.mean()), "psnr_per_step": psnr.mean(axis=0).tolist()}
    try:
        ssim = ssim_per_frame(predicted_future, true_future)
        scores.update(ssim=float(ssim.mean()), ssim_per_step=ssim.mean(axis=0).tolist())
    except VganError:  # frames smaller than the SSIM window: PSNR alone
        scores.update(ssim=None, ssim_per_step=None)
    return scores


def _scored(inputs: TaskInputs, clips: torch.Tensor, pooled: bool = False) -> dict:
    """PSNR/SSIM of the frames ``G.reconstruction`` pairs, ``clips`` standing for the model's whole clips;
    ``pooled``: PSNR of the mean squared error over all those pixels instead of the mean of per-frame PSNRs."""
    from vgan.metrics.prediction import pooled_psnr

    fake, target = inputs.generator.reconstruction({"video": clips}, inputs.real)
    scores = prediction_scores(fake, target, inputs.psnr_cap_db)
    if pooled:
        scores["psnr"] = min(pooled_psnr(fake, target), inputs.psnr_cap_db)
    return scores


def prediction_metrics(inputs: TaskInputs) -> dict:
    """The predicted future against the real one; copy_last_frame holds the last context frame."""
    context_frames = inputs.generator.context_frames
    model = _scored(inputs, inputs.generated)
    copy_last = _scored(inputs, inputs.baselines["copy_last_frame"])
    return {**model, "psnr_cap_db": inputs.psnr_cap_db, "prediction_context_frames": context_frames,
            "prediction_future_frames": int(inputs.real.shape[2] - context_frames),
            "num_prediction_clips": len(inputs.real),
            "prediction_baselines": {"model": {"psnr": model["psnr"], "ssim": model["ssim"]},
                                     "copy_last_frame": {"psnr": copy_last["psnr"], "ssim": copy_last["ssim"]}}}


def _restoration_metrics(inputs: TaskInputs, info: dict, pooled_psnr: bool = False) -> dict:
    """psnr, ssim (model), psnr_<baseline>, ssim_<baseline>, fd_evaluator_<baseline>, fd_motion_<baseline>, and
    ``task_baselines`` {candidate: {psnr, ssim, fd_evaluator, fd_motion}} for the report."""
    table, flat = {}, {}
    for name, clips in {"model": inputs.generated, **inputs.baselines}.items():
        scores = _scored(inputs, clips, pooled_psnr)
        row = inputs.rows.get(name, {})
        table[name] = {"psnr": scores["psnr"], "ssim": scores["ssim"], "fd_evaluator": row.get("fd_evaluator"),
                       "fd_motion": row.get("fd_motion")}
        if name != "model":
            flat.update({f"{metric}_{name}": value for metric, value in table[name].items()})
    model = table["model"]
    return {"psnr": model["psnr"], "ssim": model["ssim"], **flat, "psnr_cap_db": inputs.psnr_cap_db,
            "num_task_clips": len(inputs.real), **info, "task_baselines": table}


def super_resolution_metrics(inputs: TaskInputs) -> dict:
    """Every frame of the upscaled clips against the real ones; baselines bicubic and nearest upscaling."""
    generator = inputs.generator
    return _restoration_metrics(inputs, {"task": "super_resolution", "vsr_scale": generator.scale,
                                         "vsr_input_size": generator.resolution // generator.scale})


def interpolation_metrics(inputs: TaskInputs) -> dict:
    """The in-between frames against the real ones; baselines linear blending and repeating keyframes."""
    generator = inputs.generator
    return _restoration_metrics(inputs, {"task": "interpolation", "interp_keyframes": list(generator.keyframes),
                                         "interp_inbetween_frames": len(generator.inbetween)})


def inpainting_metrics(inputs: TaskInputs) -> dict:
    """The box's pixels against the real ones; baselines temporal, biharmonic and blur fills. PSNR is pooled over
    every box pixel: a box on empty background is filled exactly by most fills, and the per-frame mean would
    count those frames at the cap."""
    generator = inputs.generator
    _, moving = generator.corners(len(inputs.real), fixed=True)
    return _restoration_metrics(inputs, {"task": "inpainting", "inpaint_box_pixels": generator.box,
                                         "inpaint_moving_box_clips": int(moving.sum()),
                                         "inpaint_static_box_clips": int((~moving).sum()),
                                         "psnr_pooled": True}, pooled_psnr=True)


METRIC_GROUPS = {"prediction": prediction_metrics, "super_resolution": super_resolution_metrics,
                 "interpolation": interpolation_metrics, "inpainting": inpainting_metrics}
# tasks whose baselines also join the evaluator-space table (metrics/evaluate_baselines.json) as candidates
FRECHET_TABLE_TASKS = ("super_resolution", "interpolation", "inpainting")


def task_metrics(inputs: TaskInputs) -> dict:
    """The metric group of ``inputs.generator.task``; {} for unconditional models."""
    group = METRIC_GROUPS.get(inputs.generator.task)
    return group(inputs) if group else {}
