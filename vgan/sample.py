"""Sampling: clips from the trained generator as GIF, MP4 and a PNG contact sheet."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vgan.media import contact_sheet, to_uint8, upscale, video_grid, write_gif, write_png

DISPLAY_SIDE = 128  # upscale small clips to at least this many pixels so people can see them


@torch.no_grad()
def generate(generator, count: int, seed: int, labels: torch.Tensor | None = None, batch_size: int = 32,
             device="cpu") -> torch.Tensor:
    """``count`` clips for a seed: float (N, C, T, H, W) in [-1, 1]; labels cycle over classes when conditional."""
    rng = torch.Generator().manual_seed(seed)
    z = generator.sample_z(count, generator=rng)
    if generator.num_classes and labels is None:
        labels = torch.arange(count) % generator.num_classes
    clips = []
    for start in range(0, count, batch_size):
        batch_labels = None if labels is None else labels[start:start + batch_size].to(device)
        clips.append(generator(z[start:start + batch_size].to(device), batch_labels).float().cpu())
    return torch.cat(clips)


def write_samples(params, generator_path: str | Path = "models/generator.pt") -> dict:
    """Write GIF and MP4 per sample, a grid GIF and a contact sheet PNG into ``sample.out_dir``."""
    from vgan.data.video import encode_mp4
    from vgan.train.checkpoint import load_generator

    cfg = params.sample
    generator, trained = load_generator(generator_path, use_ema=cfg.use_ema)
    if generator.context_frames:
        raise NotImplementedError("prediction models are sampled with context clips; see issue 6")
    videos = to_uint8(generate(generator, cfg.num_samples, cfg.seed))
    factor = max(1, DISPLAY_SIDE // videos.shape[2])
    prefix = f"{trained.model.name}_step{generator.trained_steps}_seed{cfg.seed}"
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for index, video in enumerate(videos):
        big = upscale(video, factor)
        for suffix, writer in ((".gif", write_gif), (".mp4", encode_mp4)):
            path = out_dir / f"{prefix}_{index:03d}{suffix}"
            writer(big, path, fps=cfg.fps)
            files.append(path.name)
    grid = out_dir / f"{prefix}_grid.gif"
    write_gif(upscale(video_grid(videos), max(1, factor // 2)), grid, fps=cfg.fps)
    sheet = out_dir / f"{prefix}_contact_sheet.png"
    write_png(upscale(contact_sheet(videos), max(1, factor // 2)), sheet)
    summary = {"model": trained.model.name, "step": generator.trained_steps, "seed": cfg.seed,
               "num_samples": cfg.num_samples, "clip_shape": list(videos.shape[1:]),
               "grid": grid.name, "contact_sheet": sheet.name, "files": files}
    tmp = out_dir / f".index.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(tmp, out_dir / "index.json")
    return summary
