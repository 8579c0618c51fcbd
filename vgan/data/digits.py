"""Moving digits: real handwriting (scikit-learn's digits or MNIST IDX files) bouncing in a frame.

The embedded default data set: no download, deterministic for a seed, written as real mp4 files.
"""

from __future__ import annotations

import gzip
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from vgan.util.errors import DataError
from vgan.util.io import write_json

SUBDIR = "moving_digits"
LABEL_NAMES = [str(d) for d in range(10)]


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dims = data[3]
    shape = struct.unpack(f">{dims}I", data[4:4 + 4 * dims])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: expected {int(np.prod(shape))} values for shape {shape}, found {body.size}")
    return body.reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"data.mnist_dir = {str(folder)!r}: no {stem}[.gz] found there (the MNIST IDX files)")


def load_digit_images(mnist_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Digit images uint8 (N, h, w) with 255 = ink, and labels (N,)."""
    if mnist_dir:
        folder = Path(mnist_dir)
        if not folder.is_dir():
            raise DataError(f"data.mnist_dir = {mnist_dir!r} is not a folder")
        images = _read_idx(_find(folder, "train-images-idx3-ubyte"))
        labels = _read_idx(_find(folder, "train-labels-idx1-ubyte"))
        if images.ndim != 3 or len(images) != len(labels):
            raise DataError(f"data.mnist_dir = {mnist_dir!r}: images {images.shape} and labels {labels.shape} disagree")
        return images, labels.astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(bunch.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    return images, bunch.target.astype(np.int64)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def render_video(digits: list[np.ndarray], frames: int, frame_size: int, rng: np.random.Generator) -> np.ndarray:
    """Digits bouncing off the frame's edges: uint8 (T, H, W, 3)."""
    video = np.zeros((frames, frame_size, frame_size), np.uint8)
    for digit in digits:
        side = digit.shape[0]
        limit = frame_size - side
        position = rng.uniform(0, limit, size=2)
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(2.0, 4.0)
        velocity = np.array([np.sin(angle), np.cos(angle)]) * speed
        for t in range(frames):
            top, left = np.round(position).astype(int)
            np.maximum(video[t, top:top + side, left:left + side], digit, out=video[t, top:top + side, left:left + side])
            position = position + velocity
            for axis in range(2):
                if position[axis] < 0 or position[axis] > limit:
                    velocity[axis] = -velocity[axis]
                    position[axis] = np.clip(position[axis], 0, limit)
    return np.repeat(video[..., None], 3, axis=-1)


def synthesize(data_params) -> dict:
    """Write ``num_videos`` moving-digit mp4s and ``index.json`` into ``data.raw_dir``; return the index."""
    from vgan.data.video import encode_mp4
    from vgan.util.progress import progress_bar

    cfg = data_params
    if cfg.digit_size > cfg.frame_size:
        raise DataError(f"data.digit_size = {cfg.digit_size} does not fit in data.frame_size = {cfg.frame_size}")
    images, labels = load_digit_images(cfg.mnist_dir)
    rng = np.random.default_rng(cfg.seed)
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    raw_dir = Path(cfg.raw_dir)
    (raw_dir / SUBDIR).mkdir(parents=True, exist_ok=True)
    jobs, videos = [], []
    for index in range(cfg.num_videos):
        # round-robin over classes keeps every digit equally represented, even in tiny sets
        classes = [(index + k * 3) % 10 for k in range(cfg.digits_per_video)]
        digits = [_resize(images[rng.choice(by_class[c])], cfg.digit_size) for c in classes]
        video = render_video(digits, cfg.frames, cfg.frame_size, rng)
        relative = f"{SUBDIR}/{index:05d}_{classes[0]}.mp4"
        jobs.append((video, raw_dir / relative))
        videos.append({"path": relative, "label": classes[0], "split": None, "digits": classes})
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(progress_bar(pool.map(lambda job: encode_mp4(job[0], job[1], fps=cfg.fps), jobs), total=len(jobs),
                  desc="fetch: moving digits", unit="video"))
    index = {"source": "moving_digits", "label_names": LABEL_NAMES, "videos": videos,
             "origin": f"mnist:{cfg.mnist_dir}" if cfg.mnist_dir else "sklearn.datasets.load_digits"}
    write_json(raw_dir / "index.json", index, indent=1)
    return index
