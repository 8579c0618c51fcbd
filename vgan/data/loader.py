"""Read clip shards (local paths, s3:// or http(s):// URLs, pipe: commands) as deterministic training batches.

Shards are read with WebDataset's tar reader, so any URL it opens works. s3:// is streamed through s3fs
(credentials and endpoint from the usual AWS variables, e.g. AWS_ENDPOINT_URL for an S3-compatible store):
the bytes go from the object store to the decoder without a copy on disk.
"""

from __future__ import annotations

import functools
import io
import multiprocessing
import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vgan.util.errors import DataError
from vgan.util.io import MANIFEST_FILE, join_location, read_manifest

# forkserver workers would each import torch again (seconds apiece); the server imports it once
multiprocessing.set_forkserver_preload(["torch", "numpy", "vgan.data.loader"])


def shard_paths(out_dir: str | Path, split: str, manifest: dict | None = None) -> list[str]:
    """The shard files (or URLs) of one split, as listed by the manifest the shards stage wrote last.

    ``out_dir`` is the shards folder or a URL prefix it was uploaded to (``s3://bucket/shards``); pass
    ``manifest`` when it was read already (a remote one costs a request)."""
    shards = (manifest or read_manifest(out_dir)).get("shards", {})
    if split not in shards:
        raise DataError(f"{join_location(out_dir, MANIFEST_FILE)} has no split {split!r}; it has {sorted(shards)}")
    return [join_location(out_dir, name) for name in shards[split]]


def open_s3(url: str, mode: str = "rb", bufsize: int = 8192, **_):
    """WebDataset's opener for s3:// URLs: a streamed read through s3fs, nothing written to disk."""
    from fsspec.core import url_to_fs

    filesystem, path = url_to_fs(url)
    # readahead: the tar reader reads forward only, so one sequential window serves every member
    return filesystem.open(path, mode, block_size=8 * 2**20, cache_type="readahead")


def _tar_samples(urls):
    from webdataset.gopen import gopen_schemes
    from webdataset.tariterators import tarfile_samples

    gopen_schemes.setdefault("s3", open_s3)  # in each process that reads (DataLoader workers too)
    return tarfile_samples(urls)


def with_channels(clips: np.ndarray, channels: int | None) -> np.ndarray:
    """uint8 clips as stored (..., C) with ``channels`` channels (None: as stored): 1 keeps the first channel (a
    view), which is the clip for grey data (the train stage refuses 1 channel for colour shards)."""
    if channels is None or clips.shape[-1] == channels:
        return clips
    if channels == 1:
        return clips[..., :1]
    raise DataError(f"clips of {clips.shape[-1]} channels cannot be read with {channels}")


def to_model_range(clips_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, C) -> float32 (B, C, T, H, W) in [-1, 1]."""
    return clips_uint8.permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


@functools.lru_cache(maxsize=64)
def _npy_layout(header: bytes) -> tuple[tuple[int, ...], int] | None:
    """(shape, data offset) of a uint8 C-order .npy header, else None; every clip shares one header."""
    stream = io.BytesIO(header)
    version = np.lib.format.read_magic(stream)
    if version not in ((1, 0), (2, 0)):
        return None
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(stream)
    return None if fortran_order or dtype != np.uint8 else (shape, stream.tell())


def _decode_sample(sample: dict) -> tuple[np.ndarray, int]:
    if "frames.npy" not in sample or "cls" not in sample:
        raise DataError(f"sample {sample.get('__key__')!r} in {sample.get('__url__')} lacks frames.npy or cls")
    data = sample["frames.npy"]
    # header length: 2 bytes at offset 8 (version 1) or 4 bytes (version 2)
    header_end = 10 + int.from_bytes(data[8:10], "little") if data[6:7] == b"\x01" else \
        12 + int.from_bytes(data[8:12], "little")
    layout = _npy_layout(bytes(data[:header_end]))
    if layout is None:
        return np.load(io.BytesIO(data)), int(sample["cls"])
    # a view on the tar member's bytes: no copy, no fresh allocation per clip
    return np.frombuffer(data, np.uint8, offset=layout[1]).reshape(layout[0]), int(sample["cls"])


def _new_batch(clips: list[np.ndarray]) -> torch.Tensor:
    """float32 (B, C, T, H, W) in [-1, 1], built in shared memory when inside a DataLoader worker."""
    frames, height, width, channels = clips[0].shape
    shape = (len(clips), channels, frames, height, width)
    if get_worker_info() is not None:
        # allocate where the batch travels to: otherwise pickling copies it into shared memory again
        storage = torch.empty(0)._typed_storage()._new_shared(int(np.prod(shape)))
        batch = torch.empty(0).new(storage).view(shape)
    else:
        batch = torch.empty(shape)
    # transpose in uint8 (a quarter of the bytes), then one contiguous widening copy
    channels_first = np.empty((len(clips), channels, frames, height, width), np.uint8)
    for row, clip in zip(channels_first, clips):
        row[...] = clip.transpose(3, 0, 1, 2)
    batch.copy_(torch.from_numpy(channels_first))
    return batch.mul_(1 / 127.5).sub_(1.0)


class ClipStream(IterableDataset):
    """Batches of float clips for one (rank, worker) slot; every random choice is seeded by
    (seed, epoch, slot), so a given seed and worker count always give the same batches.

    Each pass over the stream is the next epoch; in persistent workers each copy counts its own passes.
    """

    def __init__(self, urls: list[str], batch_size: int, *, shuffle_buffer: int, seed: int, drop_last: bool,
                 num_workers: int, uint8: bool = False, start_epoch: int = 0, channels: int | None = None):
        super().__init__()
        self.uint8, self.channels = uint8, channels
        self.urls, self.batch_size, self.shuffle_buffer = list(urls), batch_size, shuffle_buffer
        self.seed = seed
        self.drop_last, self.num_workers = drop_last, max(1, num_workers)
        self.passes = start_epoch

    def _slot(self) -> tuple[int, int]:
        rank, world = _distributed()
        info = get_worker_info()
        worker = info.id if info is not None else 0
        return rank * self.num_workers + worker, world * self.num_workers

    def _samples(self, slot: int, slots: int):
        order = list(self.urls)
        if self.shuffle_buffer > 0:
            random.Random(f"{self.seed}:{self.epoch}").shuffle(order)  # same order in every slot
        if len(order) >= slots:
            yield from _tar_samples({"url": url} for url in order[slot::slots])
        else:
            # fewer shards than slots: every slot reads them all and keeps every slots-th sample
            for position, sample in enumerate(_tar_samples({"url": url} for url in order)):
                if position % slots == slot:
                    yield sample

    def _shuffled(self, samples, rng: random.Random):
        if self.shuffle_buffer <= 0:
            yield from samples
            return
        buffer = []
        for sample in samples:
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                position = rng.randrange(len(buffer))
                buffer[position], buffer[-1] = buffer[-1], buffer[position]
                yield buffer.pop()
        rng.shuffle(buffer)
        yield from buffer

    def __iter__(self):
        self.epoch, self.passes = self.passes, self.passes + 1
        slot, slots = self._slot()
        rng = random.Random(f"{self.seed}:{self.epoch}:{slot}")
        clips, labels = [], []
        for sample in self._shuffled(self._samples(slot, slots), rng):
            frames, label = _decode_sample(sample)
            clips.append(with_channels(frames, self.channels))  # on uint8: a quarter of the bytes to widen later
            labels.append(label)
            if len(clips) == self.batch_size:
                yield self._batch(clips), torch.tensor(labels, dtype=torch.int64)
                clips, labels = [], []
        if clips and not self.drop_last:
            yield self._batch(clips), torch.tensor(labels, dtype=torch.int64)

    def _batch(self, clips: list[np.ndarray]) -> torch.Tensor:
        # uint8 batches are a quarter of the bytes; the trainer widens them on its device (to_model_range)
        return torch.from_numpy(np.stack(clips)) if self.uint8 else _new_batch(clips)


class ClipLoader:
    """Iterable of (float32 (B, C, T, H, W) in [-1, 1], int64 (B,)); each pass is the next seeded epoch."""

    def __init__(self, stream: ClipStream, num_workers: int, pin_memory: bool):
        self.loader = DataLoader(
            stream,
            batch_size=None,
            num_workers=num_workers,
            pin_memory=pin_memory,
            # fork is unsafe after Prefect or MLflow started threads in this process
            multiprocessing_context="forkserver" if num_workers > 0 else None,
            # workers live across epochs: starting them costs more than an epoch of a small dataset
            persistent_workers=num_workers > 0,
            prefetch_factor=2 if num_workers > 0 else None,
        )

    def __iter__(self):
        yield from self.loader


def make_loader(urls, batch_size: int, *, shuffle_buffer: int = 256, num_workers: int = 2, seed: int = 0,
                pin_memory: bool = False, drop_last: bool = True, uint8: bool = False,
                start_epoch: int = 0, channels: int | None = None) -> ClipLoader:
    """Training batches from shards; the same seed and worker count always give the same batches.

    uint8: yield the clips as stored, uint8 (B, T, H, W, C), for `to_model_range` on the training device
    (4x less to copy and move); otherwise float32 (B, C, T, H, W) in [-1, 1].
    start_epoch: the epoch of the first pass (a resumed run continues the seeded sequence).
    channels: the model's (``with_channels``: 1 reads grey clips' first channel); None = as stored.

    Shards are split over (rank, worker) slots (with fewer shards than slots, every slot reads them all and
    keeps its share of the samples); one pass is one epoch.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise DataError("no shard files to read: the split is empty (see manifest.json counts)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    stream = ClipStream(urls, batch_size, shuffle_buffer=shuffle_buffer, seed=seed, drop_last=drop_last,
                        num_workers=num_workers, uint8=uint8, start_epoch=start_epoch, channels=channels)
    return ClipLoader(stream, num_workers, pin_memory)


def iterate_clips(urls, batch_size: int, channels: int | None = None):
    """Every clip once, in shard order, for evaluation: (float32 (B, C, T, H, W) in [-1, 1], int64 (B,)).

    Runs in this process (no workers) and keeps the last, smaller batch; ``channels`` as in ``make_loader``.
    """
    yield from make_loader(urls, batch_size, shuffle_buffer=0, num_workers=0, drop_last=False, channels=channels)


def keyed_clips(urls):
    """Every sample once, in shard order, as stored: (``__key__``, uint8 (T, H, W, C) clip, int label)."""
    for sample in _tar_samples({"url": url} for url in ([urls] if isinstance(urls, str) else urls)):
        frames, label = _decode_sample(sample)
        yield sample["__key__"], frames, label


def real_clips(out_dir: str | Path, split: str, limit: int | None = None, seed: int | None = None,
               channels: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Real clips of a split (shards in ``out_dir``), float (N, C, T, H, W) in [-1, 1], and labels: the first
    ``limit`` in shard order, or, with ``seed``, a seeded random ``limit`` of them (shards keep a video's clips
    together). ``channels``: a model's (1 reads grey clips' first channel); None = as stored."""
    urls = shard_paths(out_dir, split)
    wanted = None  # None: every clip in order
    if seed is not None and limit:
        available = read_manifest(out_dir)["counts"].get(split, 0)
        if available > limit:
            wanted = np.zeros(available, bool)
            wanted[np.random.default_rng(seed).choice(available, limit, replace=False)] = True
    videos, labels, count, seen = [], [], 0, 0
    for video, label in iterate_clips(urls, 64, channels):
        if wanted is not None:
            keep = np.zeros(len(label), bool)
            window = wanted[seen:seen + len(label)]
            keep[: len(window)] = window
            seen += len(label)
            video, label = video[torch.from_numpy(keep)], label[torch.from_numpy(keep)]
        videos.append(video)
        labels.append(label)
        count += len(label)
        if limit and count >= limit:
            break
    if not count:
        raise DataError(f"no {split} clips in {out_dir}; lower shards.val_fraction's rounding or add videos")
    return torch.cat(videos)[:limit], torch.cat(labels)[:limit]
