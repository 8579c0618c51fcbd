"""The evaluation report (reports/evaluation.md): where the model stands, its metrics, the baseline table,
task (prediction, super-resolution, interpolation) and protocol tables, and the samples, as markdown people
read next to the JSON."""

from __future__ import annotations

import json
from pathlib import Path

from vgan.util.io import write_text

REPORT_FILE = Path("reports/evaluation.md")
TABLE_METRICS = ("fd_evaluator", "kvd_evaluator", "is_evaluator", "fd_motion", "label_consistency", "motion_energy")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _sample_lines(params) -> list[str]:
    index_path = Path(params.sample.out_dir) / "index.json"
    if not index_path.exists():
        return []
    index = json.loads(index_path.read_text())
    relative = Path("..") / params.sample.out_dir
    lines = ["## Samples", "", f"Model {index['model']}, step {index['step']}, seed {index['seed']}.", "",
             f"![contact sheet]({relative / index['contact_sheet']})", "", f"![grid]({relative / index['grid']})", ""]
    titles = {"interpolation": "Latent interpolation ({method}, rows from seed {seeds[0]} to seed {seeds[1]})",
              "classes": "One row per class ({names})",
              "long": "Longer than trained ({frames} frames; trained {trained_frames})",
              "loop": "Seamless loop ({frames} frames around a closed latent path)",
              "prediction_grid": "Prediction: context | prediction | ground truth (green: real, red: generated)",
              "super_resolution_grid": "Super-resolution: {shown} (green: real, red: generated, grey: baseline)",
              "frame_interpolation_grid": "Frame interpolation: {shown} (green: real, red: generated, grey: baseline)",
              "inpainting_grid": "Inpainting: {shown} (green: real, red: generated, grey: baseline)"}
    for record in index.get("outputs", []):
        if record["kind"] in titles:
            shown = " | ".join({"nearest": "low-res input", "repeat": "keyframes held",
                                "masked": "masked input"}.get(panel, panel)
                               for panel in record.get("panels", []))
            title = titles[record["kind"]].format(names=", ".join(record.get("classes", [])), shown=shown, **record)
            lines += [f"### {title}", "", f"![{record['kind']}]({relative / record['file']})", ""]
    for kind, reason in index.get("skipped", {}).items():
        lines.append(f"- no {kind} samples: {reason}")
    return lines


def _prediction_lines(metrics: dict) -> list[str]:
    if "prediction_baselines" not in metrics:
        return []
    lines = [f"## Prediction ({metrics['prediction_context_frames']} real context frames -> "
             f"{metrics['prediction_future_frames']} predicted; {metrics['num_prediction_clips']} real val clips)", "",
             "| predictor | psnr (dB) | ssim |", "| --- | --- | --- |"]
    for name, row in metrics["prediction_baselines"].items():
        lines.append(f"| {name} | {_fmt(row['psnr'])} | {_fmt(row['ssim'])} |")
    steps = range(1, len(metrics["psnr_per_step"]) + 1)
    lines += ["", "| future step | " + " | ".join(str(step) for step in steps) + " |",
              "| --- |" + " --- |" * len(metrics["psnr_per_step"]),
              "| psnr | " + " | ".join(_fmt(value) for value in metrics["psnr_per_step"]) + " |"]
    if metrics.get("ssim_per_step"):
        lines.append("| ssim | " + " | ".join(_fmt(value) for value in metrics["ssim_per_step"]) + " |")
    lines += ["", f"Higher is better. Per-frame PSNR is capped at {metrics['psnr_cap_db']:g} dB (identical frames "
              "would give infinity); copy_last_frame repeats the last context frame, the baseline to beat. "
              "The evaluator-space metrics above score context + prediction, so they share real context frames.", ""]
    return lines


TASK_TITLES = {"super_resolution": "Super-resolution ({vsr_input_size}x{vsr_input_size} input, area-downscaled "
                                    "by {vsr_scale}; every frame scored; {num_task_clips} real val clips)",
               "interpolation": "Frame interpolation (keyframes {interp_keyframes}; {interp_inbetween_frames} "
                                "in-between frames scored; {num_task_clips} real val clips)",
               "inpainting": "Inpainting ({inpaint_box_pixels}x{inpaint_box_pixels} box masked in every frame: static "
                             "in {inpaint_static_box_clips} clips, moving in {inpaint_moving_box_clips}; PSNR (of the "
                             "mean squared error over all box pixels) and SSIM of the box only; {num_task_clips} real "
                             "val clips)"}


def _task_lines(metrics: dict) -> list[str]:
    """Super-resolution, interpolation and inpainting: the model against its task baselines."""
    if "task_baselines" not in metrics:
        return []
    lines = [f"## {TASK_TITLES[metrics['task']].format(**metrics)}", "",
             "| clips | psnr (dB) | ssim | fd_evaluator | fd_motion |", "| --- | --- | --- | --- | --- |"]
    for name, row in metrics["task_baselines"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(row[key]) for key in ("psnr", "ssim", "fd_evaluator",
                                                                              "fd_motion")) + " |")
    lines += ["", f"Higher is better for psnr and ssim (per-frame PSNR capped at {metrics['psnr_cap_db']:g} dB), lower "
              "for fd_*. The baselines are made from the same inputs as the model's clips; their evaluator-space "
              "rows are also in the table above.", ""]
    return lines


def _fmt_interval(row: dict) -> str:
    low, high = row.get("fd_evaluator_ci_low"), row.get("fd_evaluator_ci_high")
    return "n/a" if low is None or high is None else f"{_fmt(low)}–{_fmt(high)}"


def write_report(params, trained, step: int, metrics: dict, table: dict, protocol_keys=()) -> None:
    """Markdown: where the model stands, its metrics, the baseline table, prediction and protocol tables, samples."""
    level = f"{table['ci']['level']:.0%}"
    lines = [f"# Evaluation: {trained.model.name}, step {step}", "", f"**{table['standing']}**", "",
             f"Evaluator (self-trained 3D-conv classifier) accuracy on real val clips: "
             f"**{_fmt(metrics['evaluator_val_accuracy'])}**. Every set has n = {table['num_clips']} clips of "
             f"{table['clip_frames']} frames and is compared with the same reference: {table['reference']}.", "",
             "| metric | value |", "| --- | --- |"]
    lines += [f"| {key} | {_fmt(metrics[key])} |" for key in TABLE_METRICS[:1]]
    lines += [f"| fd_evaluator {level} CI | {_fmt_interval(metrics)} |"]
    lines += [f"| {key} | {_fmt(metrics[key])} |" for key in TABLE_METRICS[1:] + ("is_evaluator_std",)]
    columns = TABLE_METRICS[:1] + (f"fd_evaluator {level} CI",) + TABLE_METRICS[1:]
    lines += ["", f"## Model vs baselines (n = {table['num_clips']} clips each, one reference)", "",
              "| clips | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for name, row in table["scores"].items():
        cells = [_fmt(row["fd_evaluator"]), _fmt_interval(row)] + [_fmt(row[key]) for key in TABLE_METRICS[1:]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Candidates: {table['candidates']}. static repeats each clip's first frame, shuffled permutes its "
              "frames in time, noise is uniform noise of the same shape. A model that does not beat the static "
              "frame has not learned video; the registry's quality gate (registry.gate_baselines) compares the point "
              "estimates.", "",
              "Lower is better for fd_* and kvd_*; higher for is_evaluator and label_consistency. "
              "fd_motion compares frame-difference statistics (temporal realism); label_consistency is the "
              "share of frames whose per-frame evaluator label agrees with the clip's majority label. "
              "A value that is not finite is written as null (n/a here).", "",
              f"Fréchet distances are biased upwards at small n (real_vs_real shows how much at this n), so only "
              f"figures at the same n compare. Intervals: {level}, {table['ci']['resamples']} resamples; "
              f"{table['ci']['method']}. They cover the choice of clips, not the training seed.", ""]
    lines += _prediction_lines(metrics)
    lines += _task_lines(metrics)
    if protocol_keys:
        lines += ["## External protocols (user-supplied weights)", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {key} | {_fmt(metrics[key])} |" for key in protocol_keys]
        lines += ["", f"Real clips: the {params.evaluate.protocol_real_split} split; features of real clips are cached "
                  f"in {params.evaluate.cache_dir}.", ""]
    lines += _sample_lines(params)
    write_text(REPORT_FILE, "\n".join(lines) + "\n")
