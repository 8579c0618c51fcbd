"""Writing videos people can look at: grids, GIFs, MP4s and PNG contact sheets.

Videos here are uint8 (N, T, H, W, C) arrays; PIL and ffmpeg are imported where used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vgan.util.io import atomic_path


def rgb(video, dim: int = 1):
    """``video`` (a torch tensor or numpy array) with 3 channels on axis ``dim``: a grey clip's one channel
    repeated, 3 channels as they are. Where grey clips (``model.channels`` 1) meet what only takes colour: the
    evaluator, the external feature networks, GIFs and MP4s."""
    if video.shape[dim] != 1:
        return video
    if isinstance(video, torch.Tensor):
        return video.expand(*[3 if axis == dim % video.dim() else -1 for axis in range(video.dim())])
    return np.repeat(video, 3, axis=dim)


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """Float (B, C, T, H, W) in [-1, 1] -> uint8 (B, T, H, W, 3) (grey clips widened by ``rgb``)."""
    video = rgb(video.detach()).float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return video.permute(0, 2, 3, 4, 1).cpu().numpy()


def video_grid(videos: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile N videos (N, T, H, W, C) into one video (T, rows*H', cols*W', C)."""
    count, frames, height, width, channels = videos.shape
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    grid = np.full((frames, rows * (height + pad) + pad, columns * (width + pad) + pad, channels), 255, np.uint8)
    for index in range(count):
        top = pad + (index // columns) * (height + pad)
        left = pad + (index % columns) * (width + pad)
        grid[:, top:top + height, left:left + width] = videos[index]
    return grid


def contact_sheet(videos: np.ndarray, pad: int = 2) -> np.ndarray:
    """One image: a row per video, a column per frame."""
    count, frames = videos.shape[:2]
    as_tiles = videos.reshape(count * frames, 1, *videos.shape[2:])
    return video_grid(as_tiles, columns=frames, pad=pad)[0]


def write_png(image: np.ndarray, path: str | Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def write_gif(video: np.ndarray, path: str | Path, fps: float) -> None:
    """Write a (T, H, W, C) uint8 video as a looping GIF."""
    from PIL import Image

    frames = [Image.fromarray(frame) for frame in video]
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=max(1, round(1000 / fps)), loop=0)


def upscale(video: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling so small clips are visible (and even-sized for H.264)."""
    return video.repeat(factor, axis=-3).repeat(factor, axis=-2) if factor > 1 else video


def side_by_side(videos: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """Panels (T, H, W, C) of equal shape next to each other, white gaps between: (T, H, n*W + gaps, C)."""
    return video_grid(np.stack(videos), columns=len(videos), pad=pad)


def framed(video: np.ndarray, colours: list[tuple[int, int, int]], width: int = 2) -> np.ndarray:
    """A ``width``-pixel border around each frame in that frame's colour (e.g. real context vs generated)."""
    frames, height, wide, channels = video.shape
    out = np.empty((frames, height + 2 * width, wide + 2 * width, channels), np.uint8)
    for index, colour in enumerate(colours):
        out[index] = np.asarray(colour, np.uint8)[:channels]
    out[:, width:width + height, width:width + wide] = video
    return out
