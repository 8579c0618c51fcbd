"""Protocol-named distances (fvd2048_16f, fid_frames2048, ...): fixed counts, frames, seeds, cached real features."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from vgan.metrics.baselines import to_float_videos
from vgan.metrics.catalog import PROTOCOLS, Protocol
from vgan.metrics.frechet import frechet_distance
from vgan.metrics.kernel import kernel_distance
from vgan.util.errors import VganError
from vgan.util.io import atomic_path

CACHE_FORMAT = 1  # bump when preprocessing changes, so stale real features are never reused


def get_protocol(name: str) -> Protocol:
    """The protocol called `name`; an unknown name lists the known ones."""
    if name not in PROTOCOLS:
        raise VganError(f"evaluate.protocols: unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def real_clip_indices(protocol: Protocol, num_available: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of the real clips the protocol uses: a fixed-seed sample of `num_real` of them."""
    if num_available < protocol.num_real:
        raise VganError(f"{protocol.name} needs {protocol.num_real} real clips, the data has {num_available}; "
                        "use more videos or shards.clips_per_video, or choose another protocol")
    return np.sort(np.random.default_rng(seed).choice(num_available, protocol.num_real, replace=False))


def take_indices(clip_batches: Iterable, indices: np.ndarray) -> Iterator:
    """From a stream of clip batches, only the clips at the given running indices, batch by batch."""
    wanted, seen = set(int(i) for i in indices), 0
    for batch in clip_batches:
        keep = [offset for offset in range(len(batch)) if seen + offset in wanted]
        seen += len(batch)
        if keep:
            yield batch[keep] if isinstance(batch, torch.Tensor) else np.asarray(batch)[keep]


def protocol_frames(clips, protocol: Protocol, rng: np.random.Generator) -> torch.Tensor:
    """Float (B, C, frames, H, W): the first `num_frames` frames every `subsample`, or one seeded frame."""
    clips = to_float_videos(clips)
    length = clips.shape[2]
    if length < protocol.frames_needed:
        raise VganError(f"{protocol.name} needs clips of at least {protocol.frames_needed} frames, got {length}; "
                        "set shards.clip_frames (real) and the generated length accordingly")
    if protocol.one_frame_per_clip:
        picks = torch.as_tensor(rng.integers(0, length, len(clips)))
        return clips[torch.arange(len(clips)), :, picks][:, :, None]
    return clips[:, :, 0 : protocol.frames_needed : protocol.subsample]


@torch.no_grad()
def protocol_features(protocol: Protocol, clip_batches: Iterable, extractor: Callable, count: int, seed: int) -> np.ndarray:
    """(count, F) features of the first `count` clips of a stream; refuses when the stream runs short."""
    rng, rows, taken = np.random.default_rng(seed), [], 0
    for batch in clip_batches:
        batch = batch[: count - taken]
        rows.append(torch.as_tensor(extractor(protocol_frames(batch, protocol, rng))).double().cpu().numpy())
        taken += len(batch)
        if taken >= count:
            return np.concatenate(rows)
    raise VganError(f"{protocol.name} needs {count} clips, only {taken} were given")


def real_features_cache_path(cache_dir: str | Path, protocol: Protocol, data_fingerprint: str, weights_sha256: str,
                             seed: int) -> Path:
    """Cache file for the real features, keyed by a hash of protocol, data, weights, seed and format."""
    key = json.dumps({"protocol": asdict(protocol), "data": data_fingerprint, "weights": weights_sha256,
                      "seed": seed, "format": CACHE_FORMAT}, sort_keys=True)
    return Path(cache_dir) / f"{protocol.name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npy"


def _save_atomically(path: Path, features: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        np.save(stream, features)


def cached_real_features(protocol: Protocol, real_batches: Callable[[], Iterable], extractor: Callable,
                         cache_path: Path, seed: int) -> np.ndarray:
    """Real features from the cache, or computed from `real_batches()` (the selected clips) and cached."""
    if cache_path.is_file():
        features = np.load(cache_path)
        if features.shape[0] == protocol.num_real:
            return features
    features = protocol_features(protocol, real_batches(), extractor, protocol.num_real, seed)
    _save_atomically(cache_path, features)
    return features


def protocol_distances(protocol_name: str, real_batches: Callable[[], Iterable], generated_batches: Iterable,
                       extractor: Callable, cache_dir: str | Path, data_fingerprint: str, seed: int = 0,
                       kernel_subsets: int = 100) -> dict:
    """{protocol: Fréchet distance, kernel name: KID/KVD} between real and generated clips under a protocol.

    real_batches: called only on a cache miss; yields the clips chosen by `real_clip_indices` (see `take_indices`).
    generated_batches: yields generated clips, float (B, C, T, H, W) in [-1, 1], at least `num_generated` of them.
    extractor: a loaded feature network (`load_i3d`, `load_inception`); its sha256 keys the cache.
    kernel_subsets: KID/KVD subsets of up to 1000 clips (100 as the references).
    """
    protocol = get_protocol(protocol_name)
    cache_path = real_features_cache_path(cache_dir, protocol, data_fingerprint, extractor.sha256, seed)
    real = cached_real_features(protocol, real_batches, extractor, cache_path, seed)
    generated = protocol_features(protocol, generated_batches, extractor, protocol.num_generated, seed + 1)
    return {protocol.name: frechet_distance(real, generated), protocol.kernel_name: kernel_distance(real, generated, kernel_subsets)}
