"""The clips a rating shows: GIF folders (generated samples) and real clips from the shards, all brought to one
length, size and frame rate and re-encoded by one writer, so no file tells its origin by its format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vgan.util.errors import DataError


def read_gif(path: Path) -> np.ndarray:
    """A GIF's frames as uint8 (T, H, W, 3)."""
    from PIL import Image, ImageSequence

    try:
        with Image.open(path) as image:
            frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path} as a GIF: {err}") from None
    return np.stack(frames)


def gif_files(folder: str | Path, what: str) -> list[Path]:
    """The per-clip GIFs of a folder: those ``index.json`` lists as clips (a `vgan sample` folder, whose grids
    and interpolations are GIFs too), else every ``*.gif``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{what} {str(folder)!r} is not a directory")
    index = folder / "index.json"
    if index.exists():
        try:
            records = json.loads(index.read_text()).get("outputs", [])
        except (json.JSONDecodeError, AttributeError):
            raise DataError(f"{index} is not a `vgan sample` index (JSON with an 'outputs' list)") from None
        files = [folder / record["file"] for record in records
                 if isinstance(record, dict) and record.get("kind") == "clip" and str(record.get("file", "")).endswith(".gif")]
        files = [path for path in files if path.exists()]
    else:
        files = sorted(folder.glob("*.gif"))
    if not files:
        raise DataError(f"no GIF clips in {folder}/ ({what}); run `vgan sample` first, or point to a folder of GIFs")
    return files


def folder_clips(folder: str | Path, what: str) -> list[tuple[str, np.ndarray]]:
    """(source name, uint8 (T, H, W, 3)) for every clip GIF of a folder."""
    return [(str(path), read_gif(path)) for path in gif_files(folder, what)]


def real_clips(shards_dir: str, split: str, count: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """``count`` real clips (a seeded random subset) of a split, as (source name, uint8 (T, H, W, 3))."""
    from vgan.data.loader import real_clips as load
    from vgan.util.media import to_uint8

    clips, _ = load(shards_dir, split, limit=count, seed=seed)
    return [(f"{shards_dir} {split} clip {index}", video) for index, video in enumerate(to_uint8(clips))]


def _resize(video: np.ndarray, height: int, width: int) -> np.ndarray:
    if video.shape[1:3] == (height, width):
        return video
    if height % video.shape[1] == 0 and width % video.shape[2] == 0:  # whole factors: the nearest-pixel blow-up
        return video.repeat(height // video.shape[1], axis=1).repeat(width // video.shape[2], axis=2)
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(frame).resize((width, height), Image.NEAREST)) for frame in video])


def common_shape(*groups: list[tuple[str, np.ndarray]]) -> tuple[int, int, int]:
    """(frames, height, width) every clip is brought to: the shortest length, the largest side (so no clip is
    shrunk: a small clip is enlarged pixel by pixel, as `vgan sample` enlarges its GIFs)."""
    videos = [video for group in groups for _, video in group]
    return (min(len(video) for video in videos), max(video.shape[1] for video in videos),
            max(video.shape[2] for video in videos))


def harmonised(video: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    frames, height, width = shape
    return np.ascontiguousarray(_resize(video[:frames], height, width))
