"""Sampling: clips from the trained generator as GIF, MP4 and PNG contact sheets, plus latent
interpolations (lerp, slerp), one row per class, long roll-outs, seamless loops and, for conditional
models, input | model | baseline | ground truth side by side from real val clips (prediction, super-resolution,
frame interpolation). ``samples/index.json`` lists them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vgan.util.errors import DataError
from vgan.util.io import read_manifest, write_json
from vgan.util.media import contact_sheet, framed, side_by_side, to_uint8, upscale, video_grid, write_gif, write_png

DISPLAY_SIDE = 128  # upscale small clips to at least this many pixels so people can see them
EXTRA_ROWS = 4  # clips shown in the interpolation, long and loop grids
REAL_COLOUR, FAKE_COLOUR = (40, 170, 60), (215, 50, 40)  # frame borders: real context / generated
BASELINE_COLOUR = (128, 128, 128)  # frame borders of a baseline panel (bicubic, linear blend)
# file stem and index.json kind of each conditional task's side-by-side samples
SIDE_BY_SIDE = {"prediction": ("predict", "prediction"), "super_resolution": ("vsr", "super_resolution"),
                "interpolation": ("inbetween", "frame_interpolation"), "inpainting": ("inpaint", "inpainting")}


# -- latent paths ----------------------------------------------------------------------------------
def lerp(start: torch.Tensor, end: torch.Tensor, t: float) -> torch.Tensor:
    return (1 - t) * start + t * end


def slerp(start: torch.Tensor, end: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of each row's direction, with its norm interpolated linearly.

    Gaussian latents live near a sphere; a straight line cuts through its inside (norms shrink mid-way),
    where the generator saw no latents. Here every point's norm is ``(1-t)|start| + t|end|``.
    """
    start, end = start.double(), end.double()
    norm_a, norm_b = start.norm(dim=1, keepdim=True), end.norm(dim=1, keepdim=True)
    unit_a, unit_b = start / norm_a.clamp_min(1e-12), end / norm_b.clamp_min(1e-12)
    omega = torch.arccos((unit_a * unit_b).sum(dim=1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    direction = (torch.sin((1 - t) * omega) * unit_a + torch.sin(t * omega) * unit_b) / torch.sin(omega)
    direction = direction / direction.norm(dim=1, keepdim=True)
    return (direction * ((1 - t) * norm_a + t * norm_b)).float()


def interpolation_path(start: torch.Tensor, end: torch.Tensor, steps: int, method: str) -> torch.Tensor:
    """(steps, N, D): ``steps`` points from ``start`` to ``end`` (both included) by "lerp" or "slerp"."""
    blend = {"lerp": lerp, "slerp": slerp}[method]
    return torch.stack([blend(start, end, index / (steps - 1)) for index in range(steps)])


def loop_path(start: torch.Tensor, other: torch.Tensor, steps: int) -> torch.Tensor:
    """(steps, N, D): a closed great-circle-like path ``start·cos θ + other·sin θ``, θ over one turn.

    For independent Gaussian ``start`` and ``other`` every point is again standard Gaussian, and the
    step after the last point is ``start``: the path has no seam.
    """
    angles = [2 * math.pi * index / steps for index in range(steps)]
    return torch.stack([start * math.cos(angle) + other * math.sin(angle) for angle in angles])


# -- generation ------------------------------------------------------------------------------------
@torch.no_grad()
def render(generator, z: torch.Tensor, labels: torch.Tensor | None = None, context: torch.Tensor | None = None,
           num_frames: int | None = None, batch_size: int = 32, device="cpu",
           time_step: float | None = None) -> torch.Tensor:
    """Float (N, C, T, H, W) clips for given latents; conditional models get ``context`` (``G.condition`` of real
    clips) and return the whole clip (prediction models: the context followed by ``num_frames`` predicted frames,
    default the trained horizon). ``time_step``: training frames between output frames, for
    ``continuous_time`` generators only."""
    timing = {} if time_step is None else {"time_step": time_step}
    if generator.conditional and context is None:
        raise ValueError(f"{generator.task} models need their condition of real clips (G.condition(clips))")
    clips = []
    for start in range(0, len(z), batch_size):
        part = slice(start, start + batch_size)
        batch_labels = None if labels is None else labels[part].to(device)
        batch_context = None if context is None else context[part].to(device)
        video = generator(z[part].to(device), batch_labels, batch_context, num_frames=num_frames, **timing).float()
        video = generator.full_clip(None if batch_context is None else batch_context.float(), video)
        clips.append(video.cpu())
    return torch.cat(clips)


def cycled_labels(generator, count: int) -> torch.Tensor | None:
    return torch.arange(count) % generator.num_classes if generator.num_classes else None


@torch.no_grad()
def generate(generator, count: int, seed: int, labels: torch.Tensor | None = None, batch_size: int = 32,
             device="cpu", context: torch.Tensor | None = None, num_frames: int | None = None) -> torch.Tensor:
    """``count`` clips for a seed: float (N, C, T, H, W) in [-1, 1]; labels cycle over classes when conditional.

    Conditional models need ``context`` (``G.condition`` of ``count`` real clips) and return whole clips.
    """
    rng = torch.Generator().manual_seed(seed)
    z = generator.sample_z(count, generator=rng, num_frames=num_frames)
    if labels is None:
        labels = cycled_labels(generator, count)
    return render(generator, z, labels, context, num_frames, batch_size, device)


def interpolation_clips(generator, rows: int, seed: int, steps: int, method: str, context=None,
                        labels=None) -> torch.Tensor:
    """(rows * steps, C, T, H, W): row r walks from latent r of ``seed`` to latent r of ``seed + 1``."""
    start = generator.sample_z(rows, generator=torch.Generator().manual_seed(seed))
    end = generator.sample_z(rows, generator=torch.Generator().manual_seed(seed + 1))
    path = interpolation_path(start, end, steps, method).transpose(0, 1).reshape(rows * steps, -1)
    repeat = lambda tensor: None if tensor is None else tensor.repeat_interleave(steps, dim=0)  # noqa: E731
    return render(generator, path, repeat(labels), repeat(context))


def class_clips(generator, per_class: int, seed: int, context=None) -> torch.Tensor:
    """(classes * per_class, C, T, H, W): the same ``per_class`` latents under every label, a row per class."""
    z = generator.sample_z(per_class, generator=torch.Generator().manual_seed(seed))
    classes = generator.num_classes
    labels = torch.arange(classes).repeat_interleave(per_class)
    shared = None if context is None else context[:1].repeat(classes * per_class, 1, 1, 1, 1)
    return render(generator, z.repeat(classes, 1), labels, shared)


def loop_clips(generator, count: int, seed: int, frames: int, context=None, labels=None) -> torch.Tensor:
    """(count, C, frames, H, W): frame k is the middle frame of the clip at point k of a closed latent path."""
    start = generator.sample_z(count, generator=torch.Generator().manual_seed(seed))
    other = generator.sample_z(count, generator=torch.Generator().manual_seed(seed + 1))
    path = loop_path(start, other, frames).reshape(frames * count, -1)
    repeat = lambda tensor: None if tensor is None else tensor.repeat(frames, *[1] * (tensor.dim() - 1))  # noqa: E731
    clips = render(generator, path, repeat(labels), repeat(context))
    middle = clips.shape[2] // 2 if not generator.context_frames else generator.context_frames
    return clips[:, :, middle].reshape(frames, count, *clips.shape[1:2], *clips.shape[3:]).permute(1, 2, 0, 3, 4)


def frame_rate_clips(generator, count: int, seed: int, factor: float, labels=None) -> tuple[torch.Tensor, float]:
    """(count, C, T', H, W) clips of the training clip's duration at ``factor`` times its frame rate, and the
    time step (training frames between frames) they were rendered at; ``continuous_time`` generators only."""
    time_step = 1.0 / factor
    frames = max(2, math.floor((generator.frames - 1) * factor + 1e-9) + 1)  # times within the training clip's
    z = generator.sample_z(count, generator=torch.Generator().manual_seed(seed), num_frames=frames,
                           time_step=time_step)
    return render(generator, z, labels, num_frames=frames, time_step=time_step), time_step


def long_length(generator, cfg) -> int:
    """Total frames of the long clips: ``sample.long_frames``, or twice the training length."""
    return cfg.long_frames or 2 * generator.frames


# -- real clips for conditional models -------------------------------------------------------------
def real_context_clips(params, generator, limit: int, splits=("val", "train"),
                       seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``limit`` real clips (first split that has any; with ``seed`` a seeded random subset) cut to the
    generator's length, with its channels, and labels."""
    from vgan.data.loader import real_clips

    for position, split in enumerate(splits):
        try:
            clips, labels = real_clips(params.shards.out_dir, split, limit=limit, seed=seed,
                                       channels=generator.channels)
            break
        except DataError:
            if position == len(splits) - 1:
                raise
    shape = tuple(clips.shape[1:])
    if clips.shape[2] < generator.frames or shape[0] != generator.channels or shape[3] != generator.resolution:
        side = generator.resolution
        raise DataError(f"real clips in {params.shards.out_dir} are (C, T, H, W) = {shape}; the model needs "
                        f"({generator.channels}, >= {generator.frames}, {side}, {side}): "
                        "set shards.clip_frames and shards.size to match the model")
    return clips[:, :, : generator.frames], labels


def side_by_side_rows(generator, outputs: np.ndarray, truth: torch.Tensor, factor: int) -> tuple[np.ndarray, list]:
    """(N, T, H', W', C) rows of input | model | other baselines | ground truth, and the panels' names.

    The input panel is ``G.input_baseline`` (prediction: the last context frame held; super-resolution: the
    low-resolution clip, nearest-upscaled; interpolation: the keyframes repeated). Borders: green where the
    frame is real (given to the model, or the truth), red where generated, grey on the other baselines.
    """
    baselines = {name: to_uint8(clips) for name, clips in generator.baselines(generator.condition(truth)).items()}
    shown = baselines.pop(generator.input_baseline)
    real = to_uint8(truth)
    frames = real.shape[1]
    origin = [REAL_COLOUR if t in generator.given_frames else FAKE_COLOUR for t in range(frames)]
    rows = []
    for index in range(len(real)):
        panels = [framed(upscale(shown[index], factor), [REAL_COLOUR] * frames),
                  framed(upscale(outputs[index], factor), origin)]
        panels += [framed(upscale(clips[index], factor), [BASELINE_COLOUR] * frames) for clips in baselines.values()]
        panels.append(framed(upscale(real[index], factor), [REAL_COLOUR] * frames))
        rows.append(side_by_side(panels))
    return np.stack(rows), [generator.input_baseline, "model", *baselines, "truth"]


# -- the stage -------------------------------------------------------------------------------------
class _Outputs:
    """Writes files into the sample folder and records them for index.json."""

    def __init__(self, out_dir: Path, prefix: str, fps: int):
        self.out_dir, self.prefix, self.fps, self.records = out_dir, prefix, fps, []

    def gif(self, name: str, video: np.ndarray, kind: str, fps: float | None = None, **info) -> str:
        file = f"{self.prefix}_{name}.gif"
        write_gif(video, self.out_dir / file, fps=fps or self.fps)
        self.records.append({"kind": kind, "file": file, "frames": int(len(video)), **info})
        return file

    def png(self, name: str, image: np.ndarray, kind: str, **info) -> str:
        file = f"{self.prefix}_{name}.png"
        write_png(image, self.out_dir / file)
        self.records.append({"kind": kind, "file": file, **info})
        return file


def _label_names(params, count: int) -> list[str]:
    names = read_manifest(params.shards.out_dir).get("label_names", [])
    return names if len(names) == count else [str(label) for label in range(count)]


def _write_side_by_side(out: _Outputs, generator, videos: np.ndarray, truth: torch.Tensor, factor: int,
                        rows: int) -> None:
    """GIFs of input | model | baselines | truth (one per clip and a grid), and a PNG of one scored frame of
    ``rows`` clips: the first ones, and the middle scored frame; for inpainting the clips and frame where the box
    hides the most of the digit (a box over empty background shows nothing to judge)."""
    stem, kind = SIDE_BY_SIDE[generator.task]
    compared, panels = side_by_side_rows(generator, videos, truth, factor)
    info = {"panels": panels, "given_frames": list(generator.given_frames)}
    if generator.task == "prediction":
        info["context_frames"] = generator.context_frames
    for index, row in enumerate(compared[:rows]):
        out.gif(f"{stem}_{index:03d}", row, kind, index=index, **info)
    grid = video_grid(compared, columns=1)
    out.gif(f"{stem}_grid", grid, f"{kind}_grid", **info)
    scored = [t for t in range(len(grid)) if t not in generator.given_frames]
    frame, shown = scored[len(scored) // 2], np.arange(min(rows, len(compared)))
    if generator.task == "inpainting":
        _, mask = generator.split(generator.condition(truth))
        hidden = ((truth + 1) * mask).sum(dim=(1, 3, 4))  # (N, T): digit brightness under the box
        shown = np.argsort(-hidden.max(dim=1).values.numpy(), kind="stable")[:len(shown)]
        frame = int(hidden[shown].sum(dim=0).argmax())
        info["clips"] = shown.tolist()
    out.png(f"{stem}_frame{frame}", video_grid(compared[shown], columns=1)[frame], f"{kind}_sheet", frame=frame,
            **info)


@dataclass
class _Extras:
    """What the extra grids share: the generator, the seed, the rows shown, their conditions and the upscaling."""
    generator: object
    name: str
    seed: int
    rows: int
    context: torch.Tensor | None
    labels: torch.Tensor | None
    small: int

    def row_context(self, count: int | None = None):
        return None if self.context is None else self.context[:count or self.rows]


def _sample_conditions(params, generator, num_samples: int):
    """(clips to generate, real truth clips, their labels, their conditions): conditional models draw real val
    clips to condition on, unconditional ones nothing."""
    if not generator.conditional:
        return num_samples, None, None, None
    truth, labels = real_context_clips(params, generator, num_samples)
    labels = labels if generator.num_classes else None
    return len(truth), truth, labels, generator.condition(truth)


def _write_clips(out: _Outputs, videos: np.ndarray, factor: int, mp4: bool) -> list[str]:
    """One GIF (and MP4) per clip, upscaled by ``factor``."""
    from vgan.data.video import encode_mp4

    files = []
    for index, video in enumerate(videos):
        big = upscale(video, factor)
        for suffix, writer in ((".gif", write_gif), (".mp4", encode_mp4))[: 2 if mp4 else 1]:
            path = out.out_dir / f"{out.prefix}_{index:03d}{suffix}"
            writer(big, path, fps=out.fps)
            files.append(path.name)
            out.records.append({"kind": "clip", "file": path.name, "frames": int(len(video)), "index": index})
    return files


def _write_interpolations(out: _Outputs, job: _Extras, steps: int) -> None:
    for method in ("lerp", "slerp"):
        clips = to_uint8(interpolation_clips(job.generator, job.rows, job.seed, steps, method, job.row_context(),
                                             job.labels))
        tiled = video_grid(clips, columns=steps)
        info = {"method": method, "seeds": [job.seed, job.seed + 1], "rows": job.rows, "steps": steps}
        out.gif(f"interp_{method}", upscale(tiled, job.small), "interpolation", **info)
        out.png(f"interp_{method}", upscale(tiled[0], job.small), "interpolation_sheet", **info)


def _write_classes(out: _Outputs, job: _Extras, params, skipped: dict) -> None:
    generator, cfg = job.generator, params.sample
    if not generator.num_classes:
        skipped["classes"] = "unconditional model (model.num_classes = 0)"
        return
    clips = to_uint8(class_clips(generator, cfg.per_class, job.seed, job.row_context(1)))
    tiled = video_grid(clips, columns=cfg.per_class)
    info = {"classes": _label_names(params, generator.num_classes), "per_class": cfg.per_class}
    out.gif("classes", upscale(tiled, job.small), "classes", **info)
    out.png("classes", upscale(tiled[0], job.small), "classes_sheet", **info)


def _write_long(out: _Outputs, job: _Extras, cfg, skipped: dict) -> None:
    generator = job.generator
    if not generator.variable_length:
        skipped["long"] = f"{job.name} generates exactly {generator.frames} frames (not variable_length)"
        return
    total = long_length(generator, cfg)
    if total <= generator.context_frames:
        skipped["long"] = f"sample.long_frames {total} leaves no frame after {generator.context_frames} context frames"
        return
    frames = total - generator.context_frames if generator.context_frames else total
    clips = to_uint8(generate(generator, job.rows, job.seed, labels=job.labels, context=job.row_context(),
                              num_frames=frames))
    out.gif(f"long{total}f", upscale(video_grid(clips), job.small), "long", trained_frames=generator.frames)


def _write_frame_rates(out: _Outputs, job: _Extras, cfg, skipped: dict) -> None:
    generator = job.generator
    if not (generator.continuous_time and not generator.conditional):
        if cfg.frame_rate_factors:
            skipped["frame_rate"] = f"{job.name} renders frames at whole time steps only (not continuous_time)"
        return
    for rate in cfg.frame_rate_factors:
        clips, time_step = frame_rate_clips(generator, job.rows, job.seed, rate, job.labels)
        out.gif(f"rate{rate:g}x_{clips.shape[2]}f", upscale(video_grid(to_uint8(clips)), job.small), "frame_rate",
                fps=cfg.fps * rate, factor=rate, time_step=time_step, trained_frames=generator.frames)


def write_samples(params, generator_path: str | Path = "models/generator.pt") -> dict:
    """Write every sample kind into ``sample.out_dir`` and list them in its index.json."""
    from vgan.train.generator_file import load_generator

    cfg = params.sample
    generator, trained = load_generator(generator_path, use_ema=cfg.use_ema)
    step, seed, name = generator.trained_steps, cfg.seed, trained.model.name
    num_samples, truth, labels, context = _sample_conditions(params, generator, cfg.num_samples)
    rows = min(cfg.num_samples, EXTRA_ROWS, num_samples)
    videos = to_uint8(generate(generator, num_samples, seed, labels=labels, context=context))
    factor = max(1, DISPLAY_SIDE // videos.shape[2])
    small = max(1, factor // 2)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = _Outputs(out_dir, f"{name}_step{step}_seed{seed}", cfg.fps)
    skipped = {}

    files = _write_clips(out, videos, factor, cfg.mp4)
    grid = out.gif("grid", upscale(video_grid(videos), small), "grid")
    sheet = out.png("contact_sheet", upscale(contact_sheet(videos), small), "contact_sheet")
    row_labels = labels[:rows] if labels is not None else cycled_labels(generator, rows)
    job = _Extras(generator, name, seed, rows, context, row_labels, small)
    _write_interpolations(out, job, cfg.interpolation_steps)
    _write_classes(out, job, params, skipped)
    _write_long(out, job, cfg, skipped)
    _write_frame_rates(out, job, cfg, skipped)
    loops = to_uint8(loop_clips(generator, rows, seed, cfg.loop_frames, job.row_context(), row_labels))
    out.gif(f"loop{cfg.loop_frames}f", upscale(video_grid(loops), small), "loop", seeds=[seed, seed + 1])
    if generator.conditional:
        _write_side_by_side(out, generator, videos, truth, factor, rows)

    summary = {"model": name, "step": step, "seed": seed,
               "num_samples": num_samples, "clip_shape": list(videos.shape[1:]),
               "grid": grid, "contact_sheet": sheet, "files": files, "outputs": out.records, "skipped": skipped}
    write_json(out_dir / "index.json", summary, indent=1)
    return summary
